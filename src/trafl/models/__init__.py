"""Model adapters behind one interface (:class:`DiffusionLM`), found by ``model_type``."""

from __future__ import annotations

import json
from pathlib import Path

from trafl.models.base import DenoiserOutput, DiffusionLM, TextTokenizer
from trafl.models.tiny import TinyConfig, TinyDiffusionLM
from trafl.models.tokenizer import CharTokenizer
from trafl.registry import Registry

MODEL_TYPES = Registry("model type")
MODEL_TYPES.register("tiny")(TinyDiffusionLM)


def load_model(path: str | Path) -> DiffusionLM:
    """Load a saved model folder; its ``config.json`` names the adapter (``model_type``)."""
    folder = Path(path)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ValueError(f"no model at {str(path)!r}: expected a folder with config.json")
    model_type = json.loads(config_file.read_text()).get("model_type", "")
    return MODEL_TYPES.get(model_type).from_pretrained(folder)


__all__ = [
    "CharTokenizer",
    "DenoiserOutput",
    "DiffusionLM",
    "MODEL_TYPES",
    "TextTokenizer",
    "TinyConfig",
    "TinyDiffusionLM",
    "load_model",
]
