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


def due_steps(every: int, steps: int) -> list[int]:
    """The steps a ``steps``-step run checkpoints at when saving every ``every`` steps: each
    multiple of ``every`` and the last step, in order."""
    due = set(range(every, steps + 1, every)) if every > 0 else set()
    return sorted(due | {steps})


def scheduled_checkpoints(run_dir: str | Path, every: int, steps: int) -> list[tuple[int, Path]]:
    """(step, checkpoint) of the run's checkpoints at its schedule (every ``every`` steps and the
    last step), oldest first. A checkpoint that a stop signal wrote (e.g. at step 42) is where
    the run resumed, not a point of its schedule: it is left out."""
    due = set(due_steps(every, steps))
    found = [(int(c.name.split("-")[-1]), c) for c in checkpoints(run_dir)]
    return [(step, c) for step, c in found if step in due]


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


def run_of(model_path: str | Path) -> tuple[Path, int | None] | None:
    """The run folder a model folder belongs to and the step it was saved at: ``RUN/model`` is
    (RUN, None), ``RUN/checkpoint-N/model`` is (RUN, N); None for any other folder. A run
    folder is one holding the run's ``config.yaml``."""
    model_path = Path(model_path)
    if model_path.name != "model":
        return None
    if (model_path.parent / "config.yaml").is_file():
        return model_path.parent, None
    found = CHECKPOINT_NAME.fullmatch(model_path.parent.name)
    run = model_path.parent.parent
    if found and (run / "config.yaml").is_file():
        return run, int(found.group(1))
    return None
