"""Where benchmark problems come from: a local JSON / JSONL / CSV / parquet file, or a hub dataset.

Every hub-backed task takes ``path`` (a local file; wins when set) and ``dataset`` / ``subset``
/ ``split`` (the public hub id it loads by default through ``datasets``). Offline, a hub id
that is not in the local cache is an error that names both options, never a silent retry.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trafl.core.errors import UserError, install_hint

Record = dict[str, Any]


class DataError(UserError):
    """A task's data could not be found or read; the message names the file (and line or
    record) and says how to fix it. A :class:`UserError`: ``trafl`` prints it as one line."""


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
    ``datasets`` installs). Every error names the file, and the line (JSON, JSONL) or byte
    offset (text that is not UTF-8) where it is."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    name = file.name.lower()
    stem = name[:-3] if name.endswith(".gz") else name
    if stem.endswith(".parquet"):
        return _read_parquet(file)
    readers = {".jsonl": _parse_jsonl, ".json": _parse_json, ".csv": _parse_csv}
    for suffix, parse in readers.items():
        if stem.endswith(suffix):
            return parse(file, _read_text(file))
    raise DataError(f"{path}: unknown format; use .json, .jsonl, .csv (optionally .gz) or .parquet")


def _read_text(file: Path) -> str:
    """The file's text (gunzipped for .gz), a UTF-8 byte-order mark dropped."""
    try:
        data = file.read_bytes()
        if file.name.lower().endswith(".gz"):
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:  # unreadable, or a .gz that is not gzip
        raise DataError(f"cannot read data file {file}: {err}") from err
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(
            f"data file {file} is not UTF-8 text: byte 0x{data[err.start]:02x} at offset "
            f"{err.start} (line {line}); convert it, e.g. iconv -t UTF-8"
        ) from None


def _parse_jsonl(file: Path, text: str) -> list[Record]:
    """One JSON object per line (blank lines skipped)."""
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{file} line {number}: not valid JSON ({err.msg}, column {err.colno})"
            ) from None
        if not isinstance(row, dict):
            raise DataError(
                f"{file} line {number}: expected a JSON object, got {type(row).__name__}"
            )
        rows.append(row)
    return rows


def _parse_json(file: Path, text: str) -> list[Record]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"{file} line {err.lineno}: not valid JSON ({err.msg}, column {err.colno})"
        ) from None
    if isinstance(data, dict):  # {"data": [...]} / {"test": [...]}: the one list inside
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError(f"{file}: expected a list of records or an object holding one")
        data = lists[0]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{file}: expected a list of JSON objects")
    return data


def _parse_csv(file: Path, text: str) -> list[Record]:
    try:
        return list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as err:
        raise DataError(f"{file}: not valid CSV: {err}") from None


def _read_parquet(file: Path) -> list[Record]:
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise DataError(
            f"reading {file} needs pyarrow: {install_hint('data')} (or use JSONL)"
        ) from err
    try:
        return pq.read_table(file).to_pylist()
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"{file}: not a readable parquet file: {err}") from None


def convert_records(
    records: list[Record], to_problem: Callable[[Record], Any], where: str
) -> list[Any]:
    """``to_problem`` of every record; a record it rejects (a missing or bad field) is a
    :class:`DataError` naming ``where`` (task and split or file) and the record's index."""
    problems = []
    for i, record in enumerate(records):
        try:
            problems.append(to_problem(record))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            reason = err.args[0] if isinstance(err, KeyError) and err.args else err
            raise DataError(
                f"{where}: record {i + 1} of {len(records)} is malformed: {reason}"
            ) from err
    return problems


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
        raise DataError(f"{hint}. Loading hub datasets needs: {install_hint('data')}") from err
    try:
        rows = datasets.load_dataset(dataset, subset, split=split)
    except Exception as err:  # noqa: BLE001 - offline errors come in many types
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise DataError(f"{hint}{' (HF_HUB_OFFLINE=1 is set)' if offline else ''}: {err}") from err
    return [dict(r) for r in rows]
