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

A saved adapter names its weights and target modules inside the *transformers* model, as peft
does when it wraps that model itself: a plain ``peft.PeftModel.from_pretrained(model, folder)``
on the base (``AutoModel...from_pretrained``, ``trust_remote_code=True`` for tiny, LLaDA and
Dream) loads it. For tiny the names are the same (trafl's module has the parameter names of
``TraflTinyModel``); an HF adapter holds its transformers model as ``model``, so ``model.`` is
dropped when saving and put back when loading (:func:`wrapper_keys`). Adapters saved by earlier
versions, named inside trafl's adapter, still load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

ALL_LINEAR = "all-linear"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_ROOT = "base_model.model."  # how peft's saved keys begin: the wrapped model's names follow


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


def transformers_prefix(model: nn.Module) -> str:
    """Where the transformers model sits in a trafl model: ``model.`` in the HF adapters (llada,
    dream, hf_masked_lm: they hold it as ``model``, a module with a ``config``); nothing for
    tiny, whose names are its transformers model's."""
    inner = getattr(model, "model", None)
    return "model." if isinstance(inner, nn.Module) and hasattr(inner, "config") else ""


def save_adapter(
    policy: Any, folder: str | Path, base_path: str, state_dict: dict[str, Any] | None = None
) -> None:
    """Write ``policy``'s adapter with peft, named inside the transformers model (see the module
    doc); adapter_config.json also names the base (``base_model_name_or_path``) and the class
    that loads it (``auto_mapping``, for ``peft.AutoPeftModel``)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    policy.save_pretrained(str(folder), state_dict=state_dict)
    model = policy.get_base_model()
    prefix = transformers_prefix(model)
    config_file = Path(folder) / ADAPTER_CONFIG
    config = json.loads(config_file.read_text(encoding="utf-8"))
    targets = config.get("target_modules")
    if isinstance(targets, list):
        config["target_modules"] = sorted(t.removeprefix(prefix) for t in targets)
    config["base_model_name_or_path"] = base_path
    config["auto_mapping"] = auto_mapping(model.model if prefix else model)
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True))
    if prefix:
        file = str(Path(folder) / ADAPTER_WEIGHTS)
        with safe_open(file, framework="pt") as f:
            metadata = f.metadata()
        weights = load_file(file)
        inner = PEFT_ROOT + prefix
        save_file(
            {PEFT_ROOT + k.removeprefix(inner): v for k, v in weights.items()}, file, metadata
        )


def auto_mapping(model: nn.Module) -> dict[str, str]:
    """The class ``peft.AutoPeftModel`` loads the base with: the transformers class itself, or
    ``AutoModel`` for remote code (tiny's code ships in its folder, LLaDA's and Dream's on the
    hub)."""
    cls = type(model)
    if cls.__module__.startswith("transformers."):
        return {"base_model_class": cls.__name__, "parent_library": cls.__module__}
    return {"base_model_class": "AutoModel", "parent_library": "transformers"}


def wrapper_keys(model: nn.Module, weights: dict[str, Any]) -> dict[str, Any]:
    """Saved adapter ``weights`` named for peft around trafl's ``model``: the transformers
    model's prefix put back, unless they already name ``model``'s modules (saved before)."""
    prefix = transformers_prefix(model)
    modules = {name for name, _ in model.named_modules()}
    paths = {key.removeprefix(PEFT_ROOT).split(".lora_")[0] for key in weights}
    if not prefix or paths <= modules:
        return weights
    return {PEFT_ROOT + prefix + k.removeprefix(PEFT_ROOT): v for k, v in weights.items()}


def load_adapter_weights(policy: Any, folder: str | Path) -> None:
    """Load a saved adapter into a policy wrapped by :func:`add_lora` (resume)."""
    import peft
    from safetensors.torch import load_file

    weights = load_file(str(Path(folder) / ADAPTER_WEIGHTS), device=str(policy_device(policy)))
    weights = wrapper_keys(policy.get_base_model(), weights)
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

    if transformers_prefix(model):  # the saved names may lack the prefix: load them ourselves
        config = peft.PeftConfig.from_pretrained(str(folder))
        config.inference_mode = True
        wrapped = peft.PeftModel(model, config)
        load_adapter_weights(wrapped, folder)
        wrapped.eval()
    else:
        wrapped = peft.PeftModel.from_pretrained(model, str(folder))
    return wrapped.merge_and_unload() if merge else wrapped


def policy_device(model: Any) -> Any:
    return next(model.parameters()).device
