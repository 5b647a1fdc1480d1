"""A run folder owned by one process at a time, never mixed with another run.

``claim`` is called before a trainer writes anything: it checks that the folder can be written,
takes an exclusive lock (``.lock``, released by the kernel when the process dies, ``kill -9``
included), and refuses to start a fresh run where a run already is unless ``overwrite=true``
(which deletes that run's files first) or ``resume=true``. ``check_resume_config`` refuses to
resume with settings that differ from the ones the run was started with, except the
bookkeeping keys and those named in ``allow_changes``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from trafl.core.config import to_dict
from trafl.core.config_files import load_config
from trafl.core.errors import UserError

LOCK_FILE = ".lock"
# the files and folders a trainer writes; `overwrite=true` deletes exactly these
RUN_FILES = ("config.yaml", "metrics.jsonl", "latest", "model", "completions", "tb",
             "trackers.json")  # fmt: skip
RUN_GLOBS = ("checkpoint-*", ".checkpoint-*.tmp", ".model.tmp", "*.suspect")


class RunFolder:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock: Any = None

    def claim(self, resume: bool, overwrite: bool) -> None:
        """Make the folder, lock it, and clear or refuse an earlier run in it."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise UserError(f"out_dir {self.path} cannot be written: {err.strerror}") from err
        self.lock()
        for stale in [*self.path.glob(".checkpoint-*.tmp"), *self.path.glob(".model.tmp")]:
            shutil.rmtree(stale, ignore_errors=True)  # left by a kill mid-write; ours now
        if resume or not self.holds_a_run():
            return
        if not overwrite:
            raise UserError(
                f"out_dir {self.path} already holds a run; continue it with resume=true, "
                "replace it with overwrite=true, or choose another out_dir"
            )
        self.clear()

    def lock(self) -> None:
        f = (self.path / LOCK_FILE).open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise UserError(
                f"out_dir {self.path} is in use by another trafl process (pid {holder}); "
                "wait for it to finish or choose another out_dir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._lock = f

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def holds_a_run(self) -> bool:
        return any((self.path / name).exists() for name in RUN_FILES) or any(
            next(self.path.glob(pattern), None) is not None for pattern in RUN_GLOBS
        )

    def clear(self) -> None:
        doomed = [self.path / n for n in RUN_FILES]
        doomed += [p for pattern in RUN_GLOBS for p in self.path.glob(pattern)]
        for path in doomed:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return flat


def changed_settings(saved: Path | dict, cfg: Any, free: tuple[str, ...]) -> dict[str, str]:
    """Each key whose value differs from the saved config (a file, or one already read:
    ``key: saved -> now``), except the keys (or whole sections) in ``free``. No saved config:
    nothing to compare."""
    if isinstance(saved, Path):
        if not saved.is_file():
            return {}
        saved = read_saved(saved)
    then = flatten(saved_as_now(type(cfg), saved))
    current = flatten(to_dict(cfg))
    return {
        key: f"{key}: {then.get(key)!r} -> {current.get(key)!r}"
        for key in sorted(set(then) | set(current))
        if then.get(key) != current.get(key)
        and not any(key == f or key.startswith(f"{f}.") for f in free)
    }


def read_saved(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UserError(f"cannot read the saved config {path}: {err}") from None
    return data if isinstance(data, dict) else {}


def saved_as_now(cls: type, saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config as this version reads it: a setting added since it was written takes
    its default, which by the rule of docs/ARCHITECTURE.md is the behaviour from before it
    existed (so a run or an evaluation from an older version is not refused for that alone).
    One this version cannot read (a setting since removed, a value of another type) is
    compared as written, so every setting then differs that it lacks."""
    try:
        return to_dict(load_config(cls, None, saved))
    except (UserError, TypeError, AttributeError):
        return saved


def check_resume_config(
    saved_path: Path, cfg: Any, always: tuple[str, ...], allowed: list[str]
) -> None:
    """Raise naming every key whose value differs from the saved config, except the keys (or
    whole sections) in ``always`` and ``allowed``. No saved config: nothing to compare."""
    changes = changed_settings(saved_path, cfg, (*always, *allowed))
    if changes:
        changed, details = list(changes), ", ".join(changes.values())
        raise UserError(
            f"resume: settings differ from the run's {saved_path} ({details}); resume with the "
            f"same settings, or allow these with allow_changes=[{','.join(changed)}]"
        )
