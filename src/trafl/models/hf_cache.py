"""Fast-dLLM's KV caches for the ``llada`` and ``dream`` adapters (``sampler.cache=prefix|dual``).

The sampler asks a cached denoiser for the logits of a window ``start:end`` (the
:class:`trafl.sampling.cache.CachedDenoiser` protocol, as the ``tiny`` model answers it): with no
cache, a full forward that records every layer's keys and values; with one, a forward of the
window's tokens only, whose queries attend to the window's fresh keys and values spliced into
the recorded ones of every other position. Fast-dLLM (Wu et al. 2025) does this by shipping
modified modeling files (``llada/model/modeling_llada.py`` and ``dream/model/modeling_dream.py``
in NVlabs/Fast-dLLM: a ``replace_position`` argument that writes the block's keys into the
cached ones). Here the model's own code runs unmodified and one of two hooks does the splice:

* **transformers attention** (Llama, Qwen2, Dream's modeling code): every attention layer
  hands its rotated keys and values to ``cache.update(keys, values, layer_idx, ...)`` and
  attends to what it returns. :func:`splice_cache` is a ``DynamicCache`` whose ``update``
  records (full forward) or splices (window forward). Positions are passed explicitly, so the
  window's rotary angles are its absolute ones.
* **LLaDA's attention** (GSAI-ML's ``modeling_llada.py``, OLMo-derived): its own cache
  prepends past keys and rotates queries as the LAST positions of the keys, which fits a prefix
  but not a dual cache, and it takes no position ids. During a cached call each block's
  ``attention(q, k, v, attention_bias, layer_past, use_cache)`` is replaced on the instance
  (restored afterwards): the full forward runs LLaDA's own method with ``use_cache=True`` and
  keeps its pre-rotary ``present``; a window forward splices the window's keys into them and
  applies LLaDA's own rotary tables (``rotary_emb.get_rotary_embedding``) at the window's
  positions.

Dream's logits are right-shifted (raw position i predicts token i + 1), so the adapter's window
starts one position early: the logits of ``start:end`` come from raw positions
``start-1:end-1``, and position ``start-1`` (a fixed token) is recomputed with the window.
Fast-dLLM's Dream code instead decodes the block's first token in the full forward of each
block and shifts inside the window.

A full forward through either hook computes exactly what the plain forward computes (same
modules, same order), so ``cache_refresh_every=1`` reproduces the plain sampler bit for bit.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


def splice(
    cached: torch.Tensor,  # (N, heads, T, D)
    fresh: torch.Tensor,  # (N, heads, W, D) of positions start:start+W
    start: int,
) -> torch.Tensor:  # (N, heads, T, D)
    end = start + fresh.shape[2]
    return torch.cat([cached[:, :, :start], fresh.to(cached.dtype), cached[:, :, end:]], dim=2)


@functools.cache
def splice_cache_class() -> type:
    """A transformers ``DynamicCache`` that records a full forward's keys and values and
    splices a window's into them (created on first use: transformers loads slowly)."""
    from transformers.cache_utils import DynamicCache

    class SpliceCache(DynamicCache):
        def __init__(self) -> None:
            super().__init__()
            self.kv: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer, (N, kvh, T, D)
            self.window_start: int | None = None  # None: recording a full forward

        def update(  # type: ignore[override]
            self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *a, **k
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if self.window_start is None:
                self.kv.append((key_states, value_states))
                return key_states, value_states
            keys, values = self.kv[layer_idx]
            return (
                splice(keys, key_states, self.window_start),
                splice(values, value_states, self.window_start),
            )

        def get_seq_length(self, layer_idx: int | None = 0, *a, **k) -> int:  # type: ignore[override]
            return self.kv[0][0].shape[2] if self.kv else 0

    return SpliceCache


@dataclass
class LLaDACache:
    """Pre-rotary keys and values of every LLaDA block, as its own ``present`` holds them."""

    kv: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (N, kvh, T, D)
    window_start: int | None = None
    bias: torch.Tensor | None = None  # (N, 1, W, T) additive key mask of the window's queries


def llada_blocks(model: nn.Module) -> list[nn.Module]:
    """LLaDA's transformer blocks (an ``attention`` method and a ``rotary_emb``), in order."""
    return [
        m
        for m in model.modules()
        if callable(getattr(m, "attention", None)) and hasattr(m, "rotary_emb")
    ]


@contextlib.contextmanager
def patched_llada(blocks: list[nn.Module], cache: LLaDACache) -> Iterator[None]:
    """Route each block's ``attention`` through the cache for the duration of one call."""
    for layer, block in enumerate(blocks):
        original = type(block).attention.__get__(block)
        block.attention = functools.partial(_llada_attention, block, original, cache, layer)
    try:
        yield
    finally:
        for block in blocks:
            del block.attention  # the class's method again


def _llada_attention(
    block: nn.Module,
    original: Any,
    cache: LLaDACache,
    layer: int,
    q: torch.Tensor,  # (N, W, C) projections, before heads and rotary
    k: torch.Tensor,  # (N, W, C_kv)
    v: torch.Tensor,  # (N, W, C_kv)
    attention_bias: torch.Tensor | None = None,
    layer_past: Any = None,
    use_cache: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, Any]:
    if cache.window_start is None:  # full forward: LLaDA's own code, keeping its keys
        out, present = original(q, k, v, attention_bias, layer_past=layer_past, use_cache=True)
        cache.kv.append(present)
        return out, present if use_cache else None
    keys, values = cache.kv[layer]  # (N, kvh, T, D)
    n, w, c = q.shape
    kv_heads, d = keys.shape[1], keys.shape[3]
    if getattr(block, "q_norm", None) is not None and getattr(block, "k_norm", None) is not None:
        q, k = block.q_norm(q).to(k.dtype), block.k_norm(k).to(k.dtype)
    q = q.view(n, w, c // d, d).transpose(1, 2)  # (N, heads, W, D)
    k = splice(keys, k.view(n, w, kv_heads, d).transpose(1, 2), cache.window_start)
    v = splice(values, v.view(n, w, kv_heads, d).transpose(1, 2), cache.window_start)
    q, k = _llada_rotary(block.rotary_emb, q, k, cache.window_start)  # (N, h, W, D), (N, kvh, T, D)
    assert cache.bias is not None
    bias = cache.bias.to(q.dtype)  # (N, 1, W, T)
    att = block._scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (N, heads, W, D)
    return block.attn_out(att.transpose(1, 2).contiguous().view(n, w, c)), None


def _llada_rotary(
    rope: nn.Module,
    q: torch.Tensor,  # (N, heads, W, D) queries of positions start:start+W
    k: torch.Tensor,  # (N, kv_heads, T, D) all keys
    start: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """LLaDA's ``RotaryEmbedding.forward`` with the queries at ``start`` instead of at the end."""
    full = getattr(rope.config, "rope_full_precision", True)
    q_, k_ = (q.float(), k.float()) if full else (q, k)
    with torch.autocast(q.device.type, enabled=False):
        pos_sin, pos_cos = rope.get_rotary_embedding(k_.shape[-2], k_.device)  # (1, 1, T, D)
        pos_sin, pos_cos = pos_sin.type_as(q_), pos_cos.type_as(q_)
        window = slice(start, start + q.shape[-2])
        q_ = rope.apply_rotary_pos_emb(pos_sin[:, :, window], pos_cos[:, :, window], q_)
        k_ = rope.apply_rotary_pos_emb(pos_sin, pos_cos, k_)
    return q_.type_as(q), k_.type_as(k)
