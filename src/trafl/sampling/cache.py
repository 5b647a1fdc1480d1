"""Where the sampler's logits come from: a full forward each step, or Fast-dLLM's KV caches.

Fast-dLLM (Wu et al. 2025) observes that in block-wise decoding the keys and values of
positions outside the current block barely change between steps, and reuses them:

* ``prefix``: the prompt and the finished blocks are cached; each step recomputes the current
  block and everything after it.
* ``dual``: the suffix (the still-masked later blocks) is cached too; each step recomputes
  only the current block.

The cache is refreshed with a full forward at the start of every block and, with
``cache_refresh_every=r``, every r steps inside a block (r = 1 is the exact setting: every
step is a full forward). In a bidirectional model a cached position's keys depend on tokens
revealed since the refresh, so the cached modes are APPROXIMATIONS of the plain sampler;
their accuracy cost is measured in ``benchmarks/sampler_modes.py``, not assumed.

A model opts in by implementing :class:`CachedDenoiser`: the ``tiny`` model, and the ``llada``
and ``dream`` adapters (:mod:`trafl.models.hf_cache`). Classifier-free guidance runs through the
same path: the conditional and unconditional rows are one batch, cached together.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol, runtime_checkable

import torch

from trafl.models.base import DiffusionLM, denoiser_logits

CACHE_MODES = ("none", "prefix", "dual")


@runtime_checkable
class CachedDenoiser(Protocol):
    def forward_cached(
        self,
        input_ids: torch.Tensor,  # (N, T)
        attention_mask: torch.Tensor | None,  # (N, T) bool
        start: int,
        end: int,
        cache: Any | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """Logits (N, end-start, V) of positions start:end, and the cache. Without a cache: a
        full forward (logits identical to ``__call__``'s) that returns a fresh cache; with one:
        only positions start:end are computed, the others read from the cache."""
        ...


class StepLogits:
    """Float32 logits of the current block at each step (mask token suppressed), from a full
    forward or through the configured cache, optionally classifier-free guided; bf16 autocast
    when asked."""

    def __init__(
        self,
        model: DiffusionLM,
        mode: str,
        refresh_every: int | None,
        bf16: bool,
        cfg_scale: float = 0.0,
        prompt_width: int = 0,
    ):
        if mode not in CACHE_MODES:
            raise ValueError(f"unknown cache mode {mode!r}; valid: {', '.join(CACHE_MODES)}")
        if mode != "none" and not isinstance(model, CachedDenoiser):
            raise ValueError(
                f"cache={mode!r} needs a model with a KV cache (forward_cached); "
                f"{type(model).__name__} has none: use cache=none"
            )
        self.model, self.mode, self.refresh_every, self.bf16 = model, mode, refresh_every, bf16
        self.cfg_scale, self.prompt_width = cfg_scale, prompt_width
        self.cache: Any | None = None

    def __call__(
        self,
        x: torch.Tensor,  # (N, T) current sequence
        attn: torch.Tensor,  # (N, T) bool
        lo: int,
        hi: int,  # current block span
        step_in_block: int,
    ) -> torch.Tensor:  # (N, hi-lo, V) float32
        if self.cfg_scale == 0:
            if self.mode == "none":
                with self._autocast(x.device):
                    return denoiser_logits(self.model, x, attn, lo, hi)
            logits = self._cached(x, attn, lo, hi, step_in_block)
        else:
            logits = self._guided(x, attn, lo, hi, step_in_block)
        logits[..., self.model.mask_token_id] = float("-inf")
        return logits

    def _guided(
        self, x: torch.Tensor, attn: torch.Tensor, lo: int, hi: int, step_in_block: int
    ) -> torch.Tensor:  # (N, hi-lo, V) float32, mask token not yet suppressed
        """Unsupervised classifier-free guidance as LLaDA's generate.py (ML-GSAI/LLaDA,
        ``generate``) does it: a second, unconditional row per sequence with every prompt token
        replaced by the mask, both in one batch, then ``un + (cfg_scale + 1) * (cond - un)``
        (here in float32, before the mask token is suppressed, so no inf - inf)."""
        p = self.prompt_width
        un = x.clone()  # (N, T)
        un[:, :p] = torch.where(attn[:, :p], self.model.mask_token_id, x[:, :p])
        both, both_attn = torch.cat([x, un]), torch.cat([attn, attn])  # (2N, T)
        if self.mode == "none":
            with self._autocast(x.device):
                out = self.model(both, attention_mask=both_attn).logits[:, lo:hi].float()
        else:
            out = self._cached(both, both_attn, lo, hi, step_in_block)
        cond, uncond = out.chunk(2)  # (N, S, V) each
        return uncond + (self.cfg_scale + 1) * (cond - uncond)

    def _cached(
        self, x: torch.Tensor, attn: torch.Tensor, lo: int, hi: int, step_in_block: int
    ) -> torch.Tensor:  # (N, hi-lo, V) float32, mask token not yet suppressed
        refresh = step_in_block == 0 or (
            self.refresh_every is not None and step_in_block % self.refresh_every == 0
        )
        end = x.shape[1] if self.mode == "prefix" else hi  # the recomputed window
        if refresh:
            self.cache = None
        with self._autocast(x.device):
            logits, self.cache = self.model.forward_cached(  # type: ignore[attr-defined]
                x, attn, lo, hi if refresh else end, self.cache
            )
        return logits[:, : hi - lo].float()  # (N, S, V)

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
