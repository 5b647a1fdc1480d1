"""What a run folder holds, named once: its checkpoints, the ``latest`` pointer, manifests.

Both the checkpoint code (:mod:`trafl.run.checkpoint`) and model loading (a run folder loads as
its final model or its latest checkpoint's) read these names from here.
"""

from __future__ import annotations

import re
from pathlib import Path

LATEST = "latest"
MANIFEST = "manifest.json"
CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")


def checkpoints(run_dir: str | Path) -> list[Path]:
    """The run folder's ``checkpoint-N`` folders, oldest first."""
    found = [
        p
        for p in Path(run_dir).glob("checkpoint-*")
        if p.is_dir() and CHECKPOINT_NAME.fullmatch(p.name)
    ]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint ``latest`` names if it is one of this folder's, else the newest one."""
    run_dir = Path(run_dir)
    pointer = run_dir / LATEST
    try:
        name = pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else ""
    except (OSError, UnicodeDecodeError):
        name = ""
    if CHECKPOINT_NAME.fullmatch(name) and (run_dir / name).is_dir():
        return run_dir / name
    found = checkpoints(run_dir)
    return found[-1] if found else None
