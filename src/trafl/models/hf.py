"""Adapters for transformers models: ``llada``, ``dream`` and ``hf_masked_lm``.

Each wraps a transformers model and its tokenizer behind :class:`trafl.models.base.DiffusionLM`,
so the sampler, the estimators and the trainer never see which one runs. What differs between
them, and is handled here once:

* **Attention.** Every call builds an explicit additive float mask (N, 1, T, T) that is 0 on real
  keys and the dtype's minimum on padding keys, and passes it even when nothing is padded.
  Reasons, each verified by tests/test_hf_models.py: a Llama/Qwen2 model given no mask (or a 2D
  one) attends causally; a 4D *bool* mask is added as 0/1 under eager attention, so padding is
  not masked; LLaDA's own code turns a 2D ``attention_mask`` with padding into a *causal* bias,
  so for models whose forward takes ``attention_bias`` (LLaDA's) the mask goes there instead.
  Encoder masked LMs (BERT, ModernBERT) are bidirectional by construction and take the 2D mask.
  Position ids count real tokens only, so left padding does not move absolute positions.
* **Logits alignment.** Dream keeps its autoregressive parent's convention: the logits at
  position i predict token i + 1. The ``dream`` adapter shifts them right by one so that
  ``logits[:, i]`` predicts token i like every other adapter (position 0, always a prompt token,
  repeats position 0's raw logits and is never scored).
* **Special ids.** Mask, EOS and pad ids come from the model config (LLaDA and Dream set
  ``mask_token_id`` there), else from the tokenizer; never from constants.
* **Prompts.** With ``model.chat_template`` (the default) and a tokenizer that has a template,
  a prompt becomes one user turn followed by the assistant header, as d1 and its successors do.
  ``model.response_prefix`` is appended after it (d1's evaluation uses ``"<reasoning>"``; the
  completion then starts inside the reasoning block, so d1's strict format reward, which looks
  for the opening tag in the completion, should not be used with a prefix).

transformers and peft are imported only when such a model is loaded (they take seconds).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from trafl.core.files import read_json_object
from trafl.models.base import DenoiserOutput, TokenIdsFromTokenizer
from trafl.models.hf_cache import LLaDACache, llada_blocks, patched_llada, splice_cache_class

if TYPE_CHECKING:
    from trafl.models.config import ModelConfig

TRAFL_TYPE_KEY = "trafl_model_type"  # written into config.json so load_model finds the adapter
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class HFTokenizer:
    """A transformers tokenizer with the special ids trafl uses resolved once."""

    def __init__(
        self, tokenizer: Any, config: Any, chat_template: bool = True, response_prefix: str = ""
    ) -> None:
        self.hf = tokenizer
        self.response_prefix = response_prefix  # encoded after the prompt (model.response_prefix)
        self.mask_token_id = _special_id("mask", config, tokenizer, ("mask_token_id",))
        self.eos_token_id = _special_id("EOS", config, tokenizer, ("eos_token_id", "sep_token_id"))
        try:
            self.pad_token_id = _special_id("pad", config, tokenizer, ("pad_token_id",))
        except ValueError:
            self.pad_token_id = self.eos_token_id  # padding is never attended, any id will do
        if self.mask_token_id in (self.eos_token_id, self.pad_token_id):
            raise ValueError(
                f"the mask id {self.mask_token_id} equals the EOS or pad id; a denoiser needs a "
                "mask token of its own"
            )
        self.use_chat_template = chat_template and bool(getattr(tokenizer, "chat_template", None))

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def encode(self, text: str) -> list[int]:
        return list(self.hf(text, add_special_tokens=False)["input_ids"])

    def encode_prompt(self, text: str) -> list[int]:
        if not self.use_chat_template:
            ids = list(self.hf(text, add_special_tokens=True)["input_ids"])
            return ids + (self.encode(self.response_prefix) if self.response_prefix else [])
        messages = [{"role": "user", "content": text}]
        chat = self.hf.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.encode(chat + self.response_prefix)  # the template spells out BOS itself

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode(ids, skip_special_tokens=True)


def _special_id(what: str, config: Any, tokenizer: Any, names: tuple[str, ...]) -> int:
    """The first integer among the config's then the tokenizer's attributes ``names``."""
    for source in (config, tokenizer):
        for name in names:
            value = getattr(source, name, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    raise ValueError(
        f"cannot find the {what} token id: neither config.json nor the tokenizer sets "
        f"{' / '.join(names)}"
    )


class HFDiffusionLM(TokenIdsFromTokenizer, nn.Module):
    """Shared code of the transformers adapters; subclasses set the class attributes."""

    model_type: ClassVar[str] = ""
    auto_classes: ClassVar[tuple[str, ...]] = ("AutoModelForCausalLM", "AutoModel")
    shifted: ClassVar[bool] = False  # raw logits at i predict token i + 1 (Dream)
    padding_mask_2d: ClassVar[bool] = False  # encoder models: a 2D mask is bidirectional

    def __init__(self, model: Any, tokenizer: HFTokenizer) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        config = getattr(model.config, "get_text_config", lambda: model.config)()
        # LLaDA's config calls the width d_model
        self.hidden_size = int(getattr(config, "hidden_size", None) or config.d_model)
        params = inspect.signature(model.forward).parameters
        self._mask_kwarg = "attention_bias" if "attention_bias" in params else "attention_mask"
        self._takes_position_ids = "position_ids" in params
        self._takes_use_cache = "use_cache" in params
        # where transformers models take a KV cache object ("cache" from transformers 5.x)
        self._cache_kwarg = next((k for k in ("cache", "past_key_values") if k in params), None)

    @property
    def is_quantized(self) -> bool:
        return bool(getattr(self.model, "is_quantized", False))

    def forward(
        self,
        input_ids: torch.Tensor,  # (N, T)
        attention_mask: torch.Tensor | None = None,  # (N, T) bool, False = padding key
        output_hidden_states: bool = False,
    ) -> DenoiserOutput:
        out = self.model(
            input_ids=input_ids,
            output_hidden_states=output_hidden_states,
            **self.model_inputs(input_ids, attention_mask),
        )
        logits = out.logits  # (N, T, V)
        if self.shifted:  # raw[:, i] predicts i + 1 -> aligned[:, i] = raw[:, i - 1]
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        hidden = out.hidden_states[-1] if output_hidden_states else None  # (N, T, H)
        return DenoiserOutput(logits=logits, hidden_states=hidden)

    def model_inputs(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> dict[str, Any]:
        """Keyword arguments for the wrapped model: mask, positions, no KV cache."""
        n, t = input_ids.shape
        keys = (
            torch.ones(n, t, dtype=torch.bool, device=input_ids.device)
            if attention_mask is None
            else attention_mask.bool()
        )  # (N, T)
        kwargs: dict[str, Any] = {"use_cache": False} if self._takes_use_cache else {}
        if self._takes_position_ids:
            kwargs["position_ids"] = (keys.long().cumsum(-1) - 1).clamp_min(0)  # (N, T)
        if self.padding_mask_2d:
            kwargs["attention_mask"] = keys.long()
            return kwargs
        dtype = self.compute_dtype()
        bias = torch.zeros(n, 1, 1, t, dtype=dtype, device=input_ids.device)
        bias = bias.masked_fill(~keys[:, None, None, :], torch.finfo(dtype).min)  # (N, 1, 1, T)
        kwargs[self._mask_kwarg] = bias.expand(n, 1, t, t)  # a view: no (T, T) memory
        return kwargs

    def compute_dtype(self) -> torch.dtype:
        weight = self.model.get_input_embeddings().weight
        return weight.dtype if weight.is_floating_point() else torch.bfloat16

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in the backward pass (memory for compute). transformers'
        switch where the model supports it, else LLaDA's own (OLMo-style) one."""
        if getattr(self.model, "supports_gradient_checkpointing", False):
            enable = getattr(self.model, "activation_checkpointing_enable", None)  # >= 5.x name
            (enable or self.model.gradient_checkpointing_enable)({"use_reentrant": False})
            return
        inner = getattr(self.model, "model", None)
        if inner is not None and hasattr(inner, "set_activation_checkpointing"):
            module = inspect.getmodule(type(inner))
            strategy = getattr(module, "ActivationCheckpointingStrategy", None)
            if strategy is not None:
                inner.set_activation_checkpointing(strategy.whole_layer)
                return
        raise ValueError(
            f"model.gradient_checkpointing: {type(self.model).__name__} supports neither "
            "transformers' gradient checkpointing nor LLaDA's set_activation_checkpointing"
        )

    def save_pretrained(
        self, path: str | Path, state_dict: dict[str, torch.Tensor] | None = None
    ) -> None:
        """A folder transformers (and :func:`trafl.models.load_model`) reloads, custom modeling
        code included; ``config.json`` records which trafl adapter it belongs to.
        ``state_dict`` (this module's keys) replaces the live weights (trafl.run.sharding)."""
        setattr(self.model.config, TRAFL_TYPE_KEY, self.model_type)
        if state_dict is not None:
            inner = {k.removeprefix("model."): v for k, v in state_dict.items()}
            self.model.save_pretrained(str(path), state_dict=inner)
        else:
            self.model.save_pretrained(str(path))
        self.tokenizer.hf.save_pretrained(str(path))

    @classmethod
    def load(cls, path: str, cfg: ModelConfig) -> HFDiffusionLM:
        """Load a local folder or hub id with the settings of ``cfg`` (dtype, remote code,
        attention implementation, 4-bit, gradient checkpointing, chat template)."""
        import transformers

        meta = read_config_json(path)
        if meta.get("auto_map") and not cfg.trust_remote_code:
            raise ValueError(
                f"{path!r} runs its own modeling code (auto_map in config.json); set "
                "model.trust_remote_code=true if you trust it"
            )
        kwargs: dict[str, Any] = {"trust_remote_code": cfg.trust_remote_code}
        kwargs[_dtype_kwarg()] = "auto" if cfg.dtype == "auto" else DTYPES[cfg.dtype]
        if cfg.attn_implementation:
            kwargs["attn_implementation"] = cfg.attn_implementation
        if cfg.load_in_4bit:
            kwargs |= four_bit_kwargs(cfg.dtype)
        auto = getattr(transformers, cls.auto_class(path, meta))
        model = auto.from_pretrained(path, **kwargs)
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            path, trust_remote_code=cfg.trust_remote_code
        )
        adapter = cls(
            model, HFTokenizer(tokenizer, model.config, cfg.chat_template, cfg.response_prefix)
        )
        if cfg.gradient_checkpointing:
            adapter.enable_gradient_checkpointing()
        return adapter.eval()

    @classmethod
    def auto_class(cls, path: str, meta: dict[str, Any]) -> str:
        """The first of ``auto_classes`` the checkpoint provides (a remote-code checkpoint
        lists its classes in ``auto_map``; Dream's has only ``AutoModel``)."""
        auto_map = meta.get("auto_map") or {}
        for name in cls.auto_classes:
            if not auto_map or name in auto_map:
                return name
        raise ValueError(
            f"{path!r}: auto_map in config.json offers {sorted(auto_map)}, none of "
            f"{list(cls.auto_classes)} that the {cls.model_type!r} adapter loads"
        )


class CachedHFDiffusionLM(HFDiffusionLM):
    """An adapter with Fast-dLLM's KV caches (:mod:`trafl.models.hf_cache`): the
    :class:`trafl.sampling.cache.CachedDenoiser` protocol for LLaDA's own modeling code and for
    transformers models that take a KV cache object."""

    def forward_cached(
        self,
        input_ids: torch.Tensor,  # (N, T) the whole current sequence
        attention_mask: torch.Tensor | None,  # (N, T) bool
        start: int,
        end: int,
        cache: Any | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """Aligned logits (N, end-start, V) of positions start:end and the cache. Without a
        cache: a full forward (the logits of ``forward``) that records every layer's keys and
        values; with one: only the window is computed (for Dream from ``start - 1``, whose raw
        logits predict ``start``), other positions are seen through their cached keys."""
        lo = start - 1 if self.shifted else start
        if lo < 0:
            raise ValueError(f"a cached window must start after position 0, got start={start}")
        if cache is None:
            cache = self._new_cache()
            raw = self._cached_call(input_ids, attention_mask, cache, None)  # (N, T, V)
            if self.shifted:
                raw = torch.cat([raw[:, :1], raw[:, :-1]], dim=1)
            return raw[:, start:end], cache
        raw = self._cached_call(input_ids, attention_mask, cache, (lo, end))  # (N, end-lo, V)
        return raw[:, : end - start], cache

    def _new_cache(self) -> Any:
        if self._mask_kwarg == "attention_bias" and llada_blocks(self.model):
            return LLaDACache()
        if self._cache_kwarg and self._takes_position_ids:
            return splice_cache_class()()
        raise ValueError(
            f"sampler.cache needs LLaDA's modeling code or a transformers model that takes "
            f"position_ids and a KV cache; {type(self.model).__name__} has neither: use cache=none"
        )

    def _cached_call(
        self,
        input_ids: torch.Tensor,  # (N, T)
        attention_mask: torch.Tensor | None,  # (N, T) bool
        cache: Any,
        window: tuple[int, int] | None,  # None: the full sequence, recording the cache
    ) -> torch.Tensor:  # (N, W, V) raw logits of the window
        kwargs = self.model_inputs(input_ids, attention_mask)
        mask = kwargs.pop(self._mask_kwarg)  # (N, 1, T, T)
        a, b = window if window is not None else (0, input_ids.shape[1])
        if isinstance(cache, LLaDACache):
            cache.window_start = None if window is None else a
            cache.bias = mask[:, :, a:b]  # (N, 1, W, T)
            if window is None:
                kwargs[self._mask_kwarg] = mask  # LLaDA's own forward, as in ``forward``
            with patched_llada(llada_blocks(self.model), cache):
                return self.model(input_ids=input_ids[:, a:b], **kwargs).logits
        cache.window_start = None if window is None else a
        kwargs[self._mask_kwarg] = mask[:, :, a:b]  # (N, 1, W, T)
        kwargs["position_ids"] = kwargs["position_ids"][:, a:b]  # absolute rotary positions
        if self._takes_use_cache:
            kwargs["use_cache"] = True  # some models only consult a cache when asked to
        kwargs[self._cache_kwarg] = cache
        return self.model(input_ids=input_ids[:, a:b], **kwargs).logits


class LLaDALM(CachedHFDiffusionLM):
    """``llada``: LLaDA (GSAI-ML/LLaDA-8B-*, LLaDA 1.5) or any decoder architecture that
    transformers knows (Llama, Qwen2, ...) run as a bidirectional denoiser, logits unshifted."""

    model_type = "llada"


class DreamLM(CachedHFDiffusionLM):
    """``dream``: Dream (Dream-org/Dream-v0-*-7B) and other denoisers adapted from an
    autoregressive model that keep its right-shifted logits."""

    model_type = "dream"
    shifted = True


class MaskedLM(HFDiffusionLM):
    """``hf_masked_lm``: any ``AutoModelForMaskedLM`` (BERT, RoBERTa, ModernBERT) as a
    denoiser: its ``[MASK]`` is the diffusion mask, its ``[SEP]`` the EOS when it has none."""

    model_type = "hf_masked_lm"
    auto_classes = ("AutoModelForMaskedLM",)
    padding_mask_2d = True


def read_config_json(path: str) -> dict[str, Any]:
    """``config.json`` of a local folder, or of a hub id (downloaded or from the HF cache)."""
    local = Path(path) / "config.json"
    if local.is_file():
        return read_json_object(local)
    try:
        from huggingface_hub import hf_hub_download

        return read_json_object(hf_hub_download(path, "config.json"))
    except Exception as err:  # noqa: BLE001 - offline, unknown id, gated: one clear message
        raise ValueError(
            f"no model at {path!r}: expected a folder with config.json or a reachable hub id "
            f"({type(err).__name__}: {err})"
        ) from None


def four_bit_kwargs(dtype: str) -> dict[str, Any]:
    """from_pretrained arguments for 4-bit NF4 weights (QLoRA); needs bitsandbytes and CUDA."""
    if not torch.cuda.is_available():
        raise ValueError(
            "model.load_in_4bit needs a CUDA GPU (bitsandbytes' 4-bit kernels); none is "
            "available. Set model.load_in_4bit=false"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ValueError(
            "model.load_in_4bit needs bitsandbytes: pip install bitsandbytes"
        ) from None
    from transformers import BitsAndBytesConfig

    compute = DTYPES.get(dtype, torch.bfloat16)
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )
    return {"quantization_config": quant, "device_map": {"": torch.cuda.current_device()}}


def _dtype_kwarg() -> str:
    """transformers renamed ``torch_dtype`` to ``dtype`` in 4.56."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
