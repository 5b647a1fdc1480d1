"""``trafl export RUN_OR_CHECKPOINT OUT``: a trained policy as one full model folder.

A LoRA run saves only its adapter; export loads the base it names, merges the adapter into the
weights and writes a folder that :func:`trafl.models.load_model` (and transformers, for the HF
adapters) loads with no adapter and no trafl run around it. A full-weight run is copied as a
plain model folder the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trafl.core.errors import UserError
from trafl.models import ModelConfig, load_model, resolve_model_path
from trafl.run.runtime import console


@dataclass
class ExportConfig:
    # model.path: a run, checkpoint, model or adapter folder; the other model.* keys say how to
    # load the base (e.g. model.trust_remote_code=true for LLaDA and Dream, model.dtype)
    model: ModelConfig = field(default_factory=ModelConfig)
    out: str = ""  # a new (or empty) folder

    def __post_init__(self) -> None:
        self.model = ModelConfig.coerce(self.model)


def export(cfg: ExportConfig) -> Path:
    if not cfg.out:
        raise UserError("export needs an output folder: trafl export RUN_OR_CHECKPOINT OUT")
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; export into a new folder")
    if cfg.model.load_in_4bit:
        raise UserError("cannot export 4-bit weights; load the base in bfloat16 or float32")
    source = resolve_model_path(cfg.model.path)
    model = load_model(cfg.model)
    model.save_pretrained(out)
    console.print(f"exported {source} to {out}")
    return out
