"""Model adapters behind one interface (:class:`DiffusionLM`), found by ``model.type``.

``tiny`` is our own small denoiser; ``llada``, ``dream`` and ``hf_masked_lm`` wrap transformers
models (:mod:`trafl.models.hf`); LoRA comes from :mod:`trafl.models.lora`. A user's own adapter
is named by import path (``model.type=mylab.models:MyLM``) and needs ``from_pretrained(path)``.
"""

from __future__ import annotations

from trafl.models.base import DenoiserOutput, DiffusionLM, TextTokenizer
from trafl.models.hf import DreamLM, HFDiffusionLM, HFTokenizer, LLaDALM, MaskedLM
from trafl.models.loading import (
    MODEL_TYPES,
    ModelConfig,
    infer_type,
    load_adapter,
    load_model,
    load_trainable,
    resolve_model_path,
)
from trafl.models.lora import LoraConfig, add_lora, is_lora
from trafl.models.tiny import TinyConfig, TinyDiffusionLM
from trafl.models.tokenizer import CharTokenizer

MODEL_TYPES.register("tiny")(TinyDiffusionLM)
MODEL_TYPES.register("llada")(LLaDALM)
MODEL_TYPES.register("dream")(DreamLM)
MODEL_TYPES.register("hf_masked_lm")(MaskedLM)

__all__ = [
    "CharTokenizer",
    "DenoiserOutput",
    "DiffusionLM",
    "DreamLM",
    "HFDiffusionLM",
    "HFTokenizer",
    "LLaDALM",
    "LoraConfig",
    "MODEL_TYPES",
    "MaskedLM",
    "ModelConfig",
    "TextTokenizer",
    "TinyConfig",
    "TinyDiffusionLM",
    "add_lora",
    "infer_type",
    "is_lora",
    "load_adapter",
    "load_model",
    "load_trainable",
    "resolve_model_path",
]
