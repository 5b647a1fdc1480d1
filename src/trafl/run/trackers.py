"""Where a run's metrics go: a list of sinks, each chosen by name from :data:`TRACKERS`.

Every logged row goes to ``metrics.jsonl`` in the run folder (always: the run's own record, cut
back on resume) and to each tracker that ``log.to`` names:

============  =====================================  ======================================
name          writes                                 needs
============  =====================================  ======================================
tensorboard   event files under ``RUN/tb``           ``pip install 'trafl[tensorboard]'``
wandb         a Weights & Biases run                 ``pip install 'trafl[wandb]'``
trackio       a trackio run (local SQLite database)  ``pip install 'trafl[trackio]'``
============  =====================================  ======================================

``log.to`` unset (the default) is today's behaviour: TensorBoard when it is installed, else
``metrics.jsonl`` alone; ``log.to=[]`` is ``metrics.jsonl`` alone. A tracker named but not
installed stops the command before any model loads (:meth:`LogConfig.check_installed`).

A sink is a class with ``log(step, metrics)`` and ``close()``, built as
``Sink(run_dir, log, config)``: ``log`` is the :class:`LogConfig`, ``config`` the run's resolved
config (the mapping saved as ``config.yaml``), which trackers keep as the run's config. A user's
own sink is named by import path (``log.to=[mylab.sinks:MySink]``) or registered as a plugin in
the entry-point group ``trafl.trackers``. The optional ``rewind(step) -> list[str]`` is called
when a run resumes from its checkpoint of ``step`` (the rows after it are about to be logged
again); the lines it returns are printed as warnings.

A resumed run folder continues its tracker runs: the wandb run id and the trackio run name are
kept in ``RUN/trackers.json`` (deleted with the run by ``overwrite=true``). Only rank 0 of a
distributed run opens the metrics log (:mod:`trafl.commands.train`), so only it writes.
"""

from __future__ import annotations

import importlib.util
import json
import math
import numbers
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from trafl.core.errors import UserError, install_hint
from trafl.core.files import write_text_atomic
from trafl.core.registry import Registry

TRACKER_IDS = "trackers.json"  # in the run folder: the tracker runs a resume continues
DEFAULT_TRACKERS = ("tensorboard",)  # log.to unset: these, where installed


class Sink(Protocol):
    """Where logged rows go; built as ``Sink(run_dir, log, config)``."""

    def log(self, step: int, metrics: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


TRACKERS = Registry("tracker", protocol=Sink)


@dataclass
class LogConfig:
    """The ``log`` section of ``trafl train`` and ``trafl pretrain``: where metrics go besides
    ``metrics.jsonl`` (always written). A resume may change it."""

    # trackers by name (tensorboard, wandb, trackio) or import path; None: TensorBoard where
    # installed (the behaviour before trackers were chosen); []: metrics.jsonl alone
    to: list[str] | None = None
    project: str = "trafl"  # the wandb / trackio project
    name: str | None = None  # the wandb / trackio run name; None: the run folder's name

    def __post_init__(self) -> None:
        for name in self.to or []:
            TRACKERS.get(name)  # an unknown name: one line listing the valid ones

    def names(self, tensorboard: bool = True) -> list[str]:
        """The sinks to open, ``jsonl`` first, each once (``tensorboard=False``: never
        TensorBoard, unless named in ``to``)."""
        if self.to is not None:
            asked = list(self.to)
        else:
            asked = [n for n in DEFAULT_TRACKERS if tensorboard and missing_package(n) is None]
        return list(dict.fromkeys(["jsonl", *asked]))

    def check_installed(self) -> None:
        """A :class:`UserError` for a tracker named in ``to`` whose package is missing; called
        by the commands before a model loads (not when a saved config is read, so a run logged
        to wandb can be evaluated where wandb is not installed)."""
        for name in self.to or []:
            package = missing_package(name)
            if package is not None:
                extra = getattr(TRACKERS.get(name), "extra", None)
                how = install_hint(extra) if extra else f"pip install {package}"
                raise UserError(f"log.to={name} needs {package}: {how}")


def missing_package(name: str) -> str | None:
    """The package tracker ``name`` imports (its class's ``requires``) if it is not installed."""
    package = getattr(TRACKERS.get(name), "requires", None)
    if package is None or importlib.util.find_spec(package) is not None:
        return None
    return package


def open_sinks(run_dir: Path, log: LogConfig, config: dict[str, Any], tensorboard: bool) -> list:
    """The sinks of ``log.names(tensorboard)``, opened in order. A tracker that fails to start
    closes the ones already open and stops the command with one line, except a default one
    (``log.to`` unset) that cannot be imported: it is skipped, as when it is not installed."""
    opened: list[Any] = []
    try:
        for name in log.names(tensorboard):
            sink_cls = TRACKERS.get(name)
            try:
                opened.append(sink_cls(run_dir, log, config))
            except Exception as err:  # noqa: BLE001 - a tracker's own error (login, network)
                if isinstance(err, ImportError) and log.to is None:
                    continue  # TensorBoard by default, broken here: skipped as if missing
                first = (str(err).strip().splitlines() or [""])[0]
                raise UserError(
                    f"log.to={name}: the tracker did not start ({type(err).__name__}: {first})"
                ) from err
    except BaseException:
        close_all(opened)
        raise
    return opened


def close_all(sinks: list[Any]) -> None:
    """Close every sink, even when one fails; the first failure is raised after."""
    failure: BaseException | None = None
    for sink in sinks:
        try:
            sink.close()
        except Exception as err:  # noqa: BLE001 - re-raised below, once all are closed
            failure = failure or err
    if failure is not None:
        raise failure


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The values a chart can draw: finite real numbers (bools as 0/1) as floats. Text, None,
    NaN and infinities are left out (``metrics.jsonl`` keeps them)."""
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, numbers.Real) and math.isfinite(value)
    }


def run_name(run_dir: Path, log: LogConfig) -> str:
    return log.name or Path(run_dir).resolve().name


class TrackerIds:
    """``RUN/trackers.json``: tracker name -> the id of its run for this run folder."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / TRACKER_IDS

    def read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet, or torn: a new tracker run
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, tracker: str) -> str | None:
        value = self.read().get(tracker)
        return value if isinstance(value, str) and value else None

    def set(self, tracker: str, value: str) -> None:
        ids = self.read() | {tracker: value}
        write_text_atomic(self.path, json.dumps(ids, indent=1) + "\n")


# --------------------------------------------------------------------------- the sinks


def _plain(value: Any) -> Any:
    """A value json cannot write: its Python number (numpy or 0-d torch scalar), else text."""
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (ValueError, RuntimeError, TypeError):
            pass
    return str(value)


@TRACKERS.register("jsonl")
class JsonlSink:
    """``RUN/metrics.jsonl``, append-only: one JSON row per logged step, ``{"step", "time"
    (seconds since the log opened), **metrics}``; NaN and infinities as Python's json writes
    them. Always open."""

    def __init__(self, run_dir: Path, log: LogConfig | None = None, config: Any = None) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.start = time.time()

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, "time": round(time.time() - self.start, 3), **metrics}
        with self.path.open("a") as f:
            f.write(json.dumps(row, default=_plain) + "\n")

    def rewind(self, step: int) -> list[str]:
        """On resume, drop rows written after the checkpoint (they will be written again) and
        any line a kill tore in half (returned as warnings). The rewrite goes through a temp
        file, fsync and rename, so a kill during it leaves the old file whole."""
        if not self.path.exists():
            return []
        kept, warnings = [], []
        for number, line in enumerate(self.path.read_bytes().splitlines(), start=1):
            try:
                row = json.loads(line)
                row_step = int(row["step"])
            except (ValueError, KeyError, TypeError):
                if line.strip():
                    warnings.append(
                        f"warning: {self.path} line {number} is not a whole JSON row "
                        "(a write cut short); dropped"
                    )
                continue
            if row_step <= step:
                kept.append(line.decode("utf-8") + "\n")
        write_text_atomic(self.path, "".join(kept))
        return warnings

    def close(self) -> None:
        pass


@TRACKERS.register("tensorboard")
class TensorBoardSink:
    """TensorBoard scalars under ``RUN/tb`` (``tensorboard --logdir RUN/tb``), the resolved
    config as the text ``config`` at step 0. A resume from step N hides the events after N
    (``purge_step``), so the resumed rows replace them."""

    requires = "tensorboard"
    extra = "tensorboard"

    def __init__(self, run_dir: Path, log: LogConfig, config: dict[str, Any]) -> None:
        self.dir = Path(run_dir) / "tb"
        fresh = not any(self.dir.glob("events.out.tfevents.*"))
        self.writer = self._open()
        if fresh and config:
            import yaml

            text = yaml.safe_dump(config, sort_keys=False)
            # four spaces: a code block in TensorBoard's Markdown text view
            self.writer.add_text("config", "\n".join("    " + s for s in text.splitlines()), 0)
            self.writer.flush()

    def _open(self, purge_step: int | None = None) -> Any:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.dir), purge_step=purge_step)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        for key, value in scalars(metrics).items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def rewind(self, step: int) -> list[str]:
        self.writer.close()
        self.writer = self._open(purge_step=step + 1)
        return []

    def close(self) -> None:
        self.writer.close()


@TRACKERS.register("wandb")
class WandbSink:
    """A Weights & Biases run in ``log.project`` named ``log.name`` (default: the run folder's
    name), with the resolved config as its config; its local files go to ``RUN/wandb`` unless
    ``WANDB_DIR`` is set. A resumed run folder continues the same wandb run (its id is kept in
    ``RUN/trackers.json``); rows before the step wandb resumes at are not sent again.
    ``WANDB_MODE=offline`` writes locally only (upload later with ``wandb sync``)."""

    requires = "wandb"
    extra = "wandb"

    def __init__(self, run_dir: Path, log: LogConfig, config: dict[str, Any]) -> None:
        import wandb

        ids = TrackerIds(run_dir)
        run_id = ids.get("wandb") or uuid.uuid4().hex[:12]
        self.run = wandb.init(
            project=log.project,
            name=run_name(run_dir, log),
            id=run_id,
            resume="allow",
            config=config,
            dir=None if os.environ.get("WANDB_DIR") else str(run_dir),
        )
        ids.set("wandb", run_id)
        self.first_step = int(getattr(self.run, "starting_step", 0) or 0)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if step >= self.first_step:  # wandb drops (with a warning) a step it already has
            self.run.log(scalars(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


@TRACKERS.register("trackio")
class TrackioSink:
    """A trackio run (``trackio show`` opens the dashboard; data under ``TRACKIO_DIR``, by
    default ``~/.cache/huggingface/trackio``) in ``log.project`` named ``log.name`` (default: the
    run folder's name), with the resolved config as its config. A resumed run folder continues
    the same trackio run (its name is kept in ``RUN/trackers.json``)."""

    requires = "trackio"
    extra = "trackio"

    def __init__(self, run_dir: Path, log: LogConfig, config: dict[str, Any]) -> None:
        import trackio

        self.trackio = trackio
        ids = TrackerIds(run_dir)
        stored = ids.get("trackio")
        name = stored or run_name(run_dir, log)
        run = trackio.init(
            project=log.project, name=name, config=config, resume="allow" if stored else "never"
        )
        ids.set("trackio", str(getattr(run, "name", None) or name))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self.trackio.log(scalars(metrics), step=step)

    def close(self) -> None:
        self.trackio.finish()
