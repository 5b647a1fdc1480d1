"""Run plumbing shared by every command: device, seeds, progress bars, metrics files."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from trafl.core.errors import UserError
from trafl.core.files import write_text_atomic

# Everything printed holds user text (problems, completions, paths, configs) that may look like
# rich markup ("[/INST]") or emoji codes: neither is ever interpreted. Style with style=... .
console = Console(stderr=True, markup=False, emoji=False)


def resolve_device(name: str) -> torch.device:
    """The torch device ``device=NAME`` names; a :class:`UserError` (one line, exit 2) for a
    name torch does not know or a device this machine does not have."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UserError(f"invalid device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserError(f"device {name!r}: CUDA is not available here; use 'cpu' or 'auto'")
        if device.index is not None and device.index >= count:
            raise UserError(
                f"device {name!r}: this machine has {count} CUDA device(s), "
                f"cuda:0 to cuda:{count - 1}"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"device {name!r}: MPS is not available here; use 'cpu' or 'auto'")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class InfoColumn(ProgressColumn):
    """Free text (latest metrics) from the task's ``info`` field, empty when absent."""

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get("info", "")), style="cyan")


def make_progress(disable: bool = False) -> Progress:
    """A rich progress bar with a free-text metrics column (``fields['info']``)."""
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        InfoColumn(),
        console=console,
        transient=False,
        disable=disable,
    )


class MetricsLog:
    """Append-only ``metrics.jsonl`` (always) and TensorBoard scalars (when installed)."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.start = time.time()
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(Path(run_dir) / "tb"))
            except ImportError:  # TensorBoard is optional
                self.writer = None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, "time": round(time.time() - self.start, 3), **metrics}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def truncate_after(self, step: int) -> None:
        """On resume, drop rows written after the checkpoint (they will be written again) and
        any line a kill tore in half (with a warning). The rewrite goes through a temp file,
        fsync and rename, so a kill during it leaves the old file whole."""
        if not self.path.exists():
            return
        kept = []
        for number, line in enumerate(self.path.read_bytes().splitlines(), start=1):
            try:
                row = json.loads(line)
                row_step = int(row["step"])
            except (ValueError, KeyError, TypeError):
                if line.strip():
                    console.print(
                        f"warning: {self.path} line {number} is not a whole JSON row "
                        "(a write cut short); dropped",
                        style="yellow",
                        markup=False,
                    )
                continue
            if row_step <= step:
                kept.append(line.decode("utf-8") + "\n")
        write_text_atomic(self.path, "".join(kept))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def format_metrics(metrics: dict[str, Any], keys: list[str] | None = None) -> str:
    items = metrics.items() if keys is None else ((k, metrics[k]) for k in keys if k in metrics)
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)
