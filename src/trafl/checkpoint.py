"""Atomic checkpoints: write to a temporary folder, then rename; a ``latest`` pointer file.

A run killed at any instant (even ``kill -9`` mid-write) leaves either the previous
checkpoint or the new one complete, never a half-written one that resume would pick up.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

LATEST = "latest"


def save_atomic(
    run_dir: str | Path,
    name: str,
    write: Callable[[Path], None],
    keep: int = 2,
    update_latest: bool = True,
) -> Path:
    """Call ``write(tmp_folder)``, rename the folder to ``run_dir/name``, point ``latest`` at it,
    and prune all but the ``keep`` newest ``checkpoint-*`` folders (``keep <= 0`` keeps all).
    A folder that is not a resumable checkpoint (a final model) passes ``update_latest=False``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final, tmp = run_dir / name, run_dir / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    if not update_latest:
        return final
    pointer_tmp = run_dir / f".{LATEST}.tmp"
    pointer_tmp.write_text(name)
    os.replace(pointer_tmp, run_dir / LATEST)
    if keep > 0:
        ckpts = sorted(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
        for old in ckpts[:-keep]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    pointer = Path(run_dir) / LATEST
    if not pointer.is_file():
        return None
    ckpt = Path(run_dir) / pointer.read_text().strip()
    return ckpt if ckpt.is_dir() else None


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
