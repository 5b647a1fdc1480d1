"""LoRA through peft: a small trainable adapter on a frozen model, off by default.

Why LoRA matters here: d1, wd1, SPG and TraFL post-train 7-8B diffusion LMs, and a full copy of
the policy for pi_ref plus AdamW state for every weight does not fit next to it. With an adapter
the reference model is the same module with the adapter disabled (:mod:`trafl.run.reference`), the
optimiser sees only the adapter, and a checkpoint is a few MB (the adapter, the log Z head and
the optimiser) instead of a full model. ``trafl export`` merges the adapter back into a full
model folder.

The adapter wraps the whole trafl model (tiny or an HF adapter) with ``peft.PeftModel``, so the
wrapped policy still satisfies :class:`trafl.models.base.DiffusionLM` (peft forwards
attributes) and ``policy.disable_adapter()`` gives pi_ref.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

ALL_LINEAR = "all-linear"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass
class LoraConfig:
    """``model.lora.*``. ``rank: 0`` (the default) trains every weight instead."""

    rank: int = 0
    alpha: float | None = None  # None: 2 * rank
    dropout: float = 0.05
    # module names (suffixes such as q_proj) or "all-linear": every linear layer except the
    # output projection to the vocabulary
    target_modules: list[str] = field(default_factory=lambda: [ALL_LINEAR])

    def __post_init__(self) -> None:
        if self.rank < 0:
            raise ValueError(f"lora.rank must be >= 0 (0: no LoRA), got {self.rank}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ValueError(f"lora.target_modules is empty; name modules or use {ALL_LINEAR!r}")

    @property
    def enabled(self) -> bool:
        return self.rank > 0


def is_lora(model: Any) -> bool:
    """Whether ``model`` is a policy wrapped with a LoRA adapter."""
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def is_adapter_folder(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def linear_targets(model: nn.Module) -> list[str]:
    """Every ``nn.Linear`` except projections onto the vocabulary (the output head, whose
    out_features equal the largest embedding's rows): peft's own "all-linear" only recognises
    the head of a transformers model, not of the trafl adapter around it."""
    vocab = max(
        (m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)), default=-1
    )
    return sorted(
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module.out_features != vocab
    )


def add_lora(model: nn.Module, config: LoraConfig) -> Any:
    """Freeze ``model`` and wrap it with a fresh LoRA adapter (B = 0: outputs unchanged)."""
    import peft

    if not config.enabled:
        raise ValueError("add_lora needs lora.rank > 0")
    targets: Any = list(config.target_modules)
    if ALL_LINEAR in targets:
        targets = sorted(set(linear_targets(model)) | set(targets) - {ALL_LINEAR})
        if not targets:
            raise ValueError("lora.target_modules='all-linear' found no linear layer to adapt")
    if getattr(model, "is_quantized", False):
        peft.prepare_model_for_kbit_training(model.model, use_gradient_checkpointing=False)
    peft_config = peft.LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha if config.alpha is not None else 2 * config.rank,
        lora_dropout=config.dropout,
        target_modules=targets,
    )
    try:
        return peft.get_peft_model(model, peft_config)
    except ValueError as err:  # peft names the unmatched modules; say which key to change
        raise ValueError(f"model.lora.target_modules: {err}") from err


def load_adapter_weights(policy: Any, folder: str | Path) -> None:
    """Load a saved adapter into a policy wrapped by :func:`add_lora` (resume)."""
    import peft
    from safetensors.torch import load_file

    weights = load_file(str(Path(folder) / ADAPTER_WEIGHTS), device=str(policy_device(policy)))
    result = peft.set_peft_model_state_dict(policy, weights)
    if result.unexpected_keys:
        raise ValueError(
            f"the adapter in {folder} does not fit this model (unexpected keys such as "
            f"{result.unexpected_keys[0]!r}); were model.lora.* settings changed?"
        )


def attach_adapter(model: nn.Module, folder: str | Path, merge: bool) -> Any:
    """``model`` with the saved adapter of ``folder``; merged into its weights when ``merge``
    (faster inference, a plain model again), kept separate otherwise."""
    import peft

    wrapped = peft.PeftModel.from_pretrained(model, str(folder))
    return wrapped.merge_and_unload() if merge else wrapped


def policy_device(model: Any) -> Any:
    return next(model.parameters()).device
