"""Run plumbing shared by every command: device, seeds, progress bars, metrics files."""

from __future__ import annotations

import random
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

from trafl.core.config import to_dict
from trafl.core.errors import UserError
from trafl.run.trackers import LogConfig, close_all, open_sinks

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
    """Every logged row to ``metrics.jsonl`` (always) and to the trackers the ``log`` section
    names (TensorBoard when installed, by default): one list of sinks (:mod:`trafl.run.trackers`).

    ``config``: the run's resolved config (a config dataclass or its mapping), given to the
    trackers as the run's config; ``tensorboard=False``: no TensorBoard unless ``log.to`` names
    it. Opened on rank 0 only."""

    def __init__(
        self,
        run_dir: str | Path,
        log: LogConfig | None = None,
        config: Any = None,
        tensorboard: bool = True,
    ) -> None:
        log = log or LogConfig()
        resolved = to_dict(config) if config is not None else {}
        self.sinks = open_sinks(Path(run_dir), log, resolved, tensorboard)
        self.path = self.sinks[0].path  # metrics.jsonl: the JSONL sink is always first

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.log(step, metrics)

    def truncate_after(self, step: int) -> None:
        """On resume from the checkpoint of ``step``: metrics.jsonl loses its rows after it and
        any line a kill tore in half (with a warning); each tracker rewinds as it can."""
        for sink in self.sinks:
            rewind = getattr(sink, "rewind", None)
            for warning in (rewind(step) if rewind is not None else None) or []:
                console.print(warning, style="yellow", markup=False)

    def close(self) -> None:
        close_all(self.sinks)


def format_metrics(metrics: dict[str, Any], keys: list[str] | None = None) -> str:
    items = metrics.items() if keys is None else ((k, metrics[k]) for k in keys if k in metrics)
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)
