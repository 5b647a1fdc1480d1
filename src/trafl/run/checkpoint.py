"""Atomic, verified checkpoints: write to a temporary folder, fsync, rename; a ``latest`` pointer.

A run killed at any instant (even ``kill -9`` mid-write) leaves either the previous
checkpoint or the new one complete, never a half-written one that resume would pick up. Every
checkpoint holds ``manifest.json``: the size and SHA-256 of each of its files, written with it
and checked before a resume trusts it, so a flipped byte sends resume to the previous checkpoint
instead of into the weights. ``latest`` is only a hint: resume takes the newest
``checkpoint-N`` of the run folder that verifies and loads (:func:`resume_from`).

The model part of a checkpoint (:func:`save_policy`) is the full model folder for full-weight
training, and only the adapter for a LoRA policy (a few MB instead of a 16 GB copy of the base),
with a note naming the base so the folder alone can be evaluated or exported.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trafl.core.errors import TraflError, UserError
from trafl.core.files import fsync_dir, write_text_atomic
from trafl.core.layout import CHECKPOINT_NAME, LATEST, MANIFEST, checkpoints
from trafl.run.runtime import console


class CheckpointError(Exception):
    """A checkpoint that fails its manifest (missing, resized or changed file)."""


def save_atomic(
    run_dir: str | Path,
    name: str,
    write: Callable[[Path], None],
    keep: int = 2,
    update_latest: bool = True,
    protect: Path | None = None,
) -> Path:
    """Call ``write(tmp_folder)``, add the manifest, fsync, rename the folder to ``run_dir/name``,
    point ``latest`` at it, and prune all but the ``keep`` newest ``checkpoint-*`` folders
    (``keep <= 0`` keeps all; ``protect`` is never pruned). A folder that is not a resumable
    checkpoint (a final model) passes ``update_latest=False``. A full disk is one line naming the
    folder; the ``.tmp`` folder is removed and the previous checkpoint left as it was."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final, tmp = run_dir / name, run_dir / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        write(tmp)
        write_manifest(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(run_dir)
        if update_latest:
            write_text_atomic(run_dir / LATEST, name)
    except Exception as err:
        full = is_disk_full(err, run_dir)
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise TraflError(
                f"no space left on the device while writing {final}; the folder's earlier "
                "checkpoints are intact; free some space and resume with resume=true"
            ) from err
        raise
    if update_latest and keep > 0:
        ckpts = checkpoints(run_dir)
        for old in ckpts[:-keep]:
            if old not in (final, protect):
                shutil.rmtree(old, ignore_errors=True)
    return final


def is_disk_full(err: BaseException, folder: Path) -> bool:
    """ENOSPC, or a writer (torch's zip writer, safetensors) whose own error hides it."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if "no space left" in str(err).lower():
        return True
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    """Size and SHA-256 of every file under ``folder`` (each fsynced) in ``manifest.json``."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with path.open("rb") as f:
            os.fsync(f.fileno())
        files[path.relative_to(folder).as_posix()] = {
            "size": path.stat().st_size,
            "sha256": sha256(path),
        }
    for sub in sorted({p.parent for p in folder.rglob("*")} | {folder}):
        fsync_dir(sub)
    write_text_atomic(folder / MANIFEST, json.dumps({"files": files}, indent=1))


def verify_checkpoint(folder: Path) -> bool:
    """Raise :class:`CheckpointError` naming the first file that does not match the manifest;
    False for a checkpoint written before manifests existed (nothing to check), else True."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return False
    try:
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{manifest} is damaged ({err})") from err
    for rel, record in files.items():
        path = folder / rel
        if not path.is_file():
            raise CheckpointError(f"{path} is missing")
        if path.stat().st_size != record["size"] or sha256(path) != record["sha256"]:
            raise CheckpointError(f"{path} does not match its checksum")
    return True


def resume_from(run_dir: str | Path, load: Callable[[Path], None]) -> Path | None:
    """Load the newest checkpoint of ``run_dir`` that verifies and loads (``load(folder)``
    raises if it cannot), warning about each one passed over; None when the folder has none.
    Checkpoints that all fail are an error naming them: resume never silently starts over."""
    run_dir = Path(run_dir)
    warn_about_pointer(run_dir)
    found = checkpoints(run_dir)
    failures = []
    for ckpt in reversed(found):
        try:
            if not verify_checkpoint(ckpt):
                console.print(
                    f"warning: {ckpt} has no {MANIFEST}; loading it unverified",
                    style="yellow",
                    markup=False,
                )
            load(ckpt)
            return ckpt
        except Exception as err:  # a damaged file can fail anywhere in a loader
            failures.append(f"{ckpt.name} ({err})")
            console.print(
                f"warning: cannot resume from {ckpt}: {err}; trying an earlier one",
                style="yellow",
                markup=False,
            )
    if failures:
        raise UserError(
            f"resume: no checkpoint in {run_dir} verifies and loads: {'; '.join(failures)}"
        )
    return None


def warn_about_pointer(run_dir: Path) -> None:
    """``latest`` must name a checkpoint of this folder; anything else is ignored, loudly."""
    pointer = run_dir / LATEST
    if not pointer.exists():
        return
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        name = "<unreadable>"
    if not CHECKPOINT_NAME.fullmatch(name):
        console.print(
            f"warning: {pointer} holds {name!r}, not a checkpoint of this run; "
            "ignored, resuming from the newest checkpoint that verifies",
            style="yellow",
            markup=False,
        )
    elif not (run_dir / name).is_dir():
        console.print(
            f"warning: {pointer} names {name}, which is missing; ignored",
            style="yellow",
            markup=False,
        )


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


def restore_policy(policy: Any, folder: str | Path, model_cfg: Any, sharded: bool = False) -> None:
    """Load weights written by :func:`save_policy` into the live ``policy`` (resume); a
    ``sharded`` policy takes them through trafl.run.sharding (collective)."""
    from dataclasses import replace

    from trafl.models.loading import load_model
    from trafl.models.lora import LoraConfig, is_lora, load_adapter_weights

    if is_lora(policy):
        load_adapter_weights(policy, folder)
        return
    saved = load_model(replace(model_cfg, path=str(folder), lora=LoraConfig()))
    if sharded:
        from trafl.run.sharding import load_full_state_dict

        load_full_state_dict(policy, saved.state_dict())  # type: ignore[attr-defined]
        return
    policy.load_state_dict(saved.state_dict())  # type: ignore[attr-defined]


@contextlib.contextmanager
def disk_full_is_one_line(out: Path) -> Iterator[None]:
    """A full disk anywhere in a run (metrics, completions, a checkpoint) as one line."""
    try:
        yield
    except OSError as err:
        if is_disk_full(err, out):
            raise TraflError(
                f"no space left on the device writing into {out}; its checkpoints are intact; "
                "free space and resume with resume=true"
            ) from err
        raise


def resume_run(
    out: Path, cfg: Any, free: tuple[str, ...], load: Callable[[Path], None], metrics_log: Any
) -> int | None:
    """Every trainer's ``resume=true``: refuse changed settings (``cfg.allow_changes`` aside),
    load the newest checkpoint that verifies (``load`` sets the step), and cut ``metrics_log``
    (None on ranks that do not log) back to it; returns the checkpoint's step, None if none."""
    from trafl.run.folder import check_resume_config

    check_resume_config(out / "config.yaml", cfg, free, cfg.allow_changes)
    ckpt = resume_from(out, load)
    if ckpt is None:
        console.print(f"resume requested but {out} has no checkpoint; starting fresh",
                      style="yellow")  # fmt: skip
        if metrics_log is not None:  # rows of a run killed before its first checkpoint
            metrics_log.truncate_after(0)
        return None
    step = int(ckpt.name.split("-")[-1])
    if metrics_log is not None:
        metrics_log.truncate_after(step)
        console.print(f"resumed from {ckpt} at step {step}")
    return step
