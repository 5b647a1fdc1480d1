"""Local data files: every format read_local accepts gives the same records."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from trafl.tasks.data import DataError, read_local

ROWS = [{"question": "1+1?", "answer": "2"}, {"question": 'a, "b"\nc', "answer": "3"}]


def write(path: Path, kind: str) -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as f:
        if kind == "json":
            json.dump({"test": ROWS}, f)
        elif kind == "jsonl":
            f.writelines(json.dumps(r) + "\n" for r in ROWS)
        else:
            writer = csv.DictWriter(f, fieldnames=list(ROWS[0]))
            writer.writeheader()
            writer.writerows(ROWS)
    return path


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("d.json", "json"),
        ("d.jsonl", "jsonl"),
        ("d.jsonl.gz", "jsonl"),
        ("d.csv", "csv"),
        ("d.CSV.gz", "csv"),
    ],
)
def test_every_format_reads_the_same_records(tmp_path, name, kind):
    assert read_local(write(tmp_path / name, kind)) == ROWS  # quotes and newlines survive CSV


def test_parquet(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet")
    assert read_local(tmp_path / "d.parquet") == ROWS


def test_errors_say_what_is_valid(tmp_path):
    (tmp_path / "d.tsv").write_text("a\tb\n")
    with pytest.raises(DataError, match=r"unknown format; use .json, .jsonl, .csv"):
        read_local(tmp_path / "d.tsv")
    with pytest.raises(DataError, match="does not exist"):
        read_local(tmp_path / "missing.csv")
