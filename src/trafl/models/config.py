"""``model.*``: which model and how to load it, the same section in every command."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from trafl.models.lora import LoraConfig

AUTO = "auto"


@dataclass
class ModelConfig:
    """``model.*``: the model and how to load it (the same section in every command)."""

    shorthand: ClassVar[str] = "path"  # ``model=PATH`` means ``model.path=PATH``

    path: str = "models/countdown-base"  # folder, hub id, run folder or adapter folder
    type: str = AUTO  # auto, or a registered adapter: tiny, llada, dream, hf_masked_lm
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: as stored
    trust_remote_code: bool = False  # LLaDA and Dream ship their modeling code on the hub
    chat_template: bool = True  # apply the tokenizer's chat template to prompts, if it has one
    # text put after the (templated) prompt, where the response starts: d1's evaluation
    # starts the assistant turn with "<reasoning>"; our default is nothing
    response_prefix: str = ""
    attn_implementation: str | None = None  # transformers': sdpa, eager, flash_attention_2
    gradient_checkpointing: bool = False
    load_in_4bit: bool = False  # NF4 weights via bitsandbytes (CUDA only); train with LoRA
    lora: LoraConfig = field(default_factory=LoraConfig)

    @classmethod
    def coerce(cls, value: str | Path | ModelConfig) -> ModelConfig:
        """A config from a path (the shorthand) or a config."""
        return value if isinstance(value, ModelConfig) else cls(path=str(value))
