"""Atomic checkpoints: write to a temporary folder, then rename; a ``latest`` pointer file.

A run killed at any instant (even ``kill -9`` mid-write) leaves either the previous
checkpoint or the new one complete, never a half-written one that resume would pick up.

The model part of a checkpoint (:func:`save_policy`) is the full model folder for full-weight
training, and only the adapter for a LoRA policy (a few MB instead of a 16 GB copy of the base),
with a note naming the base so the folder alone can be evaluated or exported.
"""

from __future__ import annotations

import json
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


def save_policy(
    policy: Any, folder: str | Path, model_cfg: Any, state_dict: dict[str, Any] | None = None
) -> None:
    """Write ``policy`` to ``folder``: the adapter and its base's name for a LoRA policy, the
    whole model otherwise (``model_cfg`` is the run's :class:`trafl.models.ModelConfig`).
    ``state_dict``: the whole weights of a sharded policy, gathered (trafl.sharding)."""
    from trafl.models.loading import BASE_MODEL_FILE, base_model_record
    from trafl.models.lora import is_lora

    if state_dict is not None:
        policy.save_pretrained(folder, state_dict=state_dict)
    else:
        policy.save_pretrained(folder)
    if is_lora(policy):
        record = base_model_record(model_cfg, policy)
        (Path(folder) / BASE_MODEL_FILE).write_text(json.dumps(record, indent=1))


def restore_policy(policy: Any, folder: str | Path, model_cfg: Any, sharded: bool = False) -> None:
    """Load weights written by :func:`save_policy` into the live ``policy`` (resume); a
    ``sharded`` policy takes them through trafl.sharding (collective)."""
    from dataclasses import replace

    from trafl.models.loading import load_model
    from trafl.models.lora import LoraConfig, is_lora, load_adapter_weights

    if is_lora(policy):
        load_adapter_weights(policy, folder)
        return
    saved = load_model(replace(model_cfg, path=str(folder), lora=LoraConfig()))
    if sharded:
        from trafl.sharding import load_full_state_dict

        load_full_state_dict(policy, saved.state_dict())  # type: ignore[attr-defined]
        return
    policy.load_state_dict(saved.state_dict())  # type: ignore[attr-defined]
