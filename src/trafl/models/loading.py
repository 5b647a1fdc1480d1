"""Which model to load and how: :class:`ModelConfig` and :func:`load_model`.

One config section names a model in train, eval, sample, pretrain and demo alike: a model
folder, a hub id, a run folder (its final ``model`` or its latest checkpoint's), or a saved LoRA
adapter (loaded onto its base model and merged). ``model=PATH`` (command line) and
``model: PATH`` (YAML) fill ``model.path`` and keep the section's other keys.

The adapter (``model.type``) is named, or inferred from, in order: ``trafl_model_type`` in
config.json (written by trafl when it saves a model), its ``model_type`` (``trafl_tiny``,
``llada``, ``Dream``), a known hub id prefix, and a ``*ForMaskedLM`` architecture. Llama, Qwen2
and other decoder checkpoints need ``model.type`` (``llada`` unshifted, ``dream``
right-shifted): that choice changes what the logits mean, so it is never guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from trafl.core.errors import UserError
from trafl.core.layout import latest_checkpoint
from trafl.core.registry import Registry
from trafl.models.base import DiffusionLM
from trafl.models.config import AUTO, ModelConfig
from trafl.models.hf import DTYPES, TRAFL_TYPE_KEY, read_config_json
from trafl.models.lora import LoraConfig, add_lora, attach_adapter, is_adapter_folder

MODEL_TYPES = Registry("model type")
BASE_MODEL_FILE = "trafl_base_model.json"  # beside a saved adapter: which base it adapts
# config.json model_type -> adapter (tiny folders say trafl_tiny, and tiny before)
KNOWN_MODEL_TYPES = {"trafl_tiny": "tiny", "tiny": "tiny", "llada": "llada", "dream": "dream"}
KNOWN_HUB_PREFIXES = {"gsai-ml/llada": "llada", "dream-org/dream": "dream"}
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def load_model(spec: str | Path | ModelConfig) -> DiffusionLM:
    """The model ``spec`` names, ready for inference (call ``.train()`` to train it).

    A saved LoRA adapter is loaded onto its base and merged (kept separate on 4-bit weights).
    ``spec.lora`` is not applied here: adding a fresh adapter is training's business
    (:func:`trafl.models.lora.add_lora`)."""
    cfg = ModelConfig.coerce(spec)
    source = resolve_model_path(cfg.path)
    if is_adapter_folder(source):
        return load_adapter(source, cfg, merge=not cfg.load_in_4bit)
    with model_file_errors(source):
        model_type = cfg.type if cfg.type != AUTO else infer_type(source, read_config_json(source))
        try:
            entry = MODEL_TYPES.get(model_type)
        except UserError as err:
            raise UserError(f"model.type: {err}") from err
        if hasattr(entry, "load"):  # the transformers adapters take the whole config
            return entry.load(source, cfg)  # they pass cfg.response_prefix to HFTokenizer
        for key in ("load_in_4bit", "gradient_checkpointing"):
            if getattr(cfg, key):
                raise UserError(
                    f"model.{key} is supported by the transformers adapters "
                    f"(llada, dream, hf_masked_lm), not by {model_type!r}"
                )
        model = entry.from_pretrained(source)
    model.tokenizer.response_prefix = cfg.response_prefix
    return model.to(DTYPES[cfg.dtype]) if cfg.dtype != AUTO else model


@contextmanager
def model_file_errors(source: str | Path) -> Iterator[None]:
    """Turn what a missing or corrupt model folder raises (a missing file, bad JSON, a bad
    safetensors header, weights that do not fit the config) into a one-line
    :class:`UserError` naming the folder. Other exceptions are bugs and pass unchanged."""
    try:
        yield
    except UserError:
        raise
    except (OSError, ValueError, SafetensorError) as err:
        raise UserError(f"cannot load the model at {str(source)!r}: {_brief(err)}") from err
    except (RuntimeError, TypeError) as err:
        text = str(err)  # load_state_dict's mismatches; a config.json key the model lacks
        if "state_dict" not in text and "unexpected keyword argument" not in text:
            raise
        raise UserError(
            f"the weights or config.json at {str(source)!r} do not fit the model: {_brief(err)}"
        ) from err


def _brief(err: BaseException) -> str:
    """The first two lines of an error (state-dict errors list every tensor)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {' '.join(lines[:2])}"


def load_trainable(cfg: ModelConfig, device: Any) -> Any:
    """A policy to train: the model on ``device``, wrapped with a fresh LoRA adapter when
    ``model.lora.rank > 0`` (then only the adapter trains), in train mode."""
    if cfg.load_in_4bit and not cfg.lora.enabled:
        raise UserError("4-bit weights cannot be trained directly; set model.lora.rank > 0")
    model: Any = load_model(cfg)
    if not cfg.load_in_4bit:  # 4-bit weights are placed on the GPU as they load
        model = model.to(device)
    if cfg.lora.enabled:
        try:
            model = add_lora(model, cfg.lora)
        except ValueError as err:  # peft names modules that model.lora.* does not match
            raise UserError(str(err)) from err
    return model.train()


def load_adapter(folder: str | Path, cfg: ModelConfig, merge: bool = True) -> Any:
    """A LoRA adapter saved by trafl on the base model it was trained from. The folder names
    the base (path and adapter type); how to load it (dtype, remote code, ...) comes from
    ``cfg``, so ``model.trust_remote_code`` must be set again for LLaDA or Dream."""
    base_file = Path(folder) / BASE_MODEL_FILE
    if not base_file.is_file():
        raise UserError(f"{folder} holds a LoRA adapter but no {BASE_MODEL_FILE} naming its base")
    with model_file_errors(folder):
        base = json.loads(base_file.read_text(encoding="utf-8"))
        base_cfg = replace(cfg, path=base["path"], type=base["type"], lora=LoraConfig())
    model = load_model(base_cfg)
    with model_file_errors(folder):
        return attach_adapter(model, folder, merge=merge)


def base_model_record(cfg: ModelConfig, model: Any) -> dict[str, str]:
    """What :data:`BASE_MODEL_FILE` stores: the base's path (absolute when local) and type."""
    path = Path(cfg.path)
    resolved = str(resolve_model_path(cfg.path))
    if path.exists():
        resolved = str(Path(resolved).resolve())
    return {"path": resolved, "type": getattr(model, "model_type", cfg.type)}


def resolve_model_path(path: str | Path) -> Path | str:
    """A model or adapter folder as given; a run or checkpoint folder's ``model``, else a run's
    latest checkpoint's; a hub id (``org/name`` that is not a local path) as given."""
    folder = Path(path)
    if not folder.exists() and _HUB_ID.fullmatch(str(path)) and not str(path).startswith("."):
        return str(path)
    if not folder.is_dir():
        raise UserError(f"no model at {str(path)!r}: expected a folder with config.json")
    if (folder / "config.json").is_file() or is_adapter_folder(folder):
        return folder
    if (folder / "model" / "config.json").is_file() or is_adapter_folder(folder / "model"):
        return folder / "model"
    ckpt = latest_checkpoint(folder)
    if ckpt is not None:
        return ckpt / "model"
    raise UserError(
        f"{str(path)!r} is neither a model folder nor a run folder with a model or checkpoint"
    )


def infer_type(path: str | Path, meta: dict[str, Any]) -> str:
    """The adapter for a checkpoint, from its config.json ``meta`` and its path."""
    if meta.get(TRAFL_TYPE_KEY):
        return str(meta[TRAFL_TYPE_KEY])
    declared = str(meta.get("model_type", ""))
    if ":" in declared or declared in MODEL_TYPES:  # an import path or a trafl adapter name
        return declared
    if declared.lower() in KNOWN_MODEL_TYPES:
        return KNOWN_MODEL_TYPES[declared.lower()]
    for prefix, model_type in KNOWN_HUB_PREFIXES.items():
        if str(path).lower().startswith(prefix):
            return model_type
    if any(str(a).endswith("ForMaskedLM") for a in meta.get("architectures") or []):
        return "hf_masked_lm"
    raise UserError(
        f"cannot tell which adapter loads {str(path)!r} (model_type {declared!r}); set "
        f"model.type; valid: {', '.join(MODEL_TYPES.names())} (llada: logits at i predict "
        "token i; dream: they predict token i + 1), or an import path 'package.module:Name'"
    )
