"""Where benchmark problems come from: a local JSON / JSONL / CSV / parquet file, or a hub dataset.

Every hub-backed task takes ``path`` (a local file; wins when set) and ``dataset`` / ``subset``
/ ``split`` (the public hub id it loads by default through ``datasets``). Offline, a hub id
that is not in the local cache is an error that names both options, never a silent retry.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path
from typing import Any

Record = dict[str, Any]


class DataError(RuntimeError):
    """A task's data could not be found or read; the message says how to provide it."""


def load_records(
    path: str | None,
    dataset: str | None,
    split: str,
    subset: str | None = None,
    task: str = "task",
) -> list[Record]:
    """Rows of a local file when ``path`` is given, else of the hub dataset ``dataset``."""
    if path:
        return read_local(path)
    if not dataset:
        raise DataError(f"{task}: no data source; set task.path=FILE (.json/.jsonl/.csv/.parquet)")
    return read_hub(dataset, split, subset, task)


def read_local(path: str | Path) -> list[Record]:
    """JSON (a list of objects, or an object holding one such list), JSONL or CSV (a header
    row; values stay strings), each optionally .gz, or parquet (needs pyarrow, which
    ``datasets`` installs)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    name = file.name.lower()
    opener = gzip.open if name.endswith(".gz") else open
    stem = name[:-3] if name.endswith(".gz") else name
    if stem.endswith(".jsonl"):
        with opener(file, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    if stem.endswith(".json"):
        with opener(file, "rt", encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict):  # {"data": [...]} / {"test": [...]}: the one list inside
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise DataError(f"{path}: expected a list of records or an object holding one")
            data = lists[0]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataError(f"{path}: expected a list of JSON objects")
        return data
    if stem.endswith(".csv"):
        with opener(file, "rt", encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    if stem.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError as err:
            raise DataError(
                f"reading {path} needs pyarrow: pip install 'trafl[data]' (or use JSONL)"
            ) from err
        return pq.read_table(file).to_pylist()
    raise DataError(f"{path}: unknown format; use .json, .jsonl, .csv (optionally .gz) or .parquet")


def read_hub(dataset: str, split: str, subset: str | None, task: str) -> list[Record]:
    """Load ``dataset`` (``subset``, ``split``) with ``datasets``; clear errors offline."""
    hint = (
        f"{task}: could not load hub dataset {dataset!r} (subset {subset!r}, split {split!r}). "
        f"Either make it reachable (online, or in the local HF cache) or point the task at a "
        f"local copy: task.path=FILE (.json/.jsonl/.csv/.parquet)"
    )
    try:
        import datasets
    except ImportError as err:
        raise DataError(f"{hint}. Loading hub datasets needs: pip install 'trafl[data]'") from err
    try:
        rows = datasets.load_dataset(dataset, subset, split=split)
    except Exception as err:  # noqa: BLE001 - offline errors come in many types
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise DataError(f"{hint}{' (HF_HUB_OFFLINE=1 is set)' if offline else ''}: {err}") from err
    return [dict(r) for r in rows]
