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
  keeps its pre-rotary ``present``; the first window forward rotates them once with LLaDA's own
  rotary tables (``rotary_emb.get_rotary_embedding``), and every window rotates only its own
  queries and keys, at the window's positions.

Either way a window's keys and values are written into the cached tensors in place
(:class:`LayerKV`), not concatenated into a new copy of all T positions per layer and call.

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


class LayerKV:
    """One layer's cached keys and values (N, kv_heads, T, D). A window's fresh keys and values
    are written over the cached ones IN PLACE (no copy of all T positions per call); what they
    replaced is kept, so a later window elsewhere sees the refresh's values there again, exactly
    as if each window had been spliced into an untouched copy."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.keys, self.values = keys, values  # (N, kvh, T, D)
        self.saved: tuple[int, int, torch.Tensor, torch.Tensor] | None = None  # under the window

    def write(
        self,
        start: int,
        keys: torch.Tensor,  # (N, kvh, W, D) of positions start:start+W
        values: torch.Tensor,  # (N, kvh, W, D)
    ) -> tuple[torch.Tensor, torch.Tensor]:  # (N, kvh, T, D) each
        end = start + keys.shape[2]
        if self.saved is not None and self.saved[:2] != (start, end):
            s, e, k0, v0 = self.saved  # another window: put the refresh's values back
            self.keys[:, :, s:e], self.values[:, :, s:e] = k0, v0
            self.saved = None
        if self.saved is None:
            window = slice(start, end)
            self.saved = (
                start,
                end,
                self.keys[:, :, window].clone(),
                self.values[:, :, window].clone(),
            )
        self.keys[:, :, start:end] = keys
        self.values[:, :, start:end] = values
        return self.keys, self.values


@functools.cache
def splice_cache_class() -> type:
    """A transformers ``DynamicCache`` that records a full forward's keys and values and
    splices a window's into them (created on first use: transformers loads slowly)."""
    from transformers.cache_utils import DynamicCache

    class SpliceCache(DynamicCache):
        def __init__(self) -> None:
            super().__init__()
            self.kv: list[LayerKV] = []  # per layer
            self.window_start: int | None = None  # None: recording a full forward

        def update(  # type: ignore[override]
            self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *a, **k
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if self.window_start is None:
                self.kv.append(LayerKV(key_states, value_states))
                return key_states, value_states
            return self.kv[layer_idx].write(self.window_start, key_states, value_states)

        def get_seq_length(self, layer_idx: int | None = 0, *a, **k) -> int:  # type: ignore[override]
            return self.kv[0].keys.shape[2] if self.kv else 0

    return SpliceCache


@dataclass
class LLaDACache:
    """Every LLaDA block's keys and values: after the full forward, the pre-rotary ``present``
    LLaDA's own code returns; from the first window on, the keys rotated once (rotary is
    position-wise, so rotating all T keys once and each window's fresh keys at their positions
    gives the same numbers as rotating the spliced keys every call)."""

    present: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    kv: list[LayerKV] = field(default_factory=list)  # rotated keys, per layer
    tables: tuple[torch.Tensor, torch.Tensor] | None = None  # rotary (sin, cos), (1, 1, T, D)
    window_start: int | None = None
    bias: torch.Tensor | None = None  # (N, 1, W, T) additive key mask of the window's queries

    def layer(self, layer: int, rope: nn.Module) -> LayerKV:
        """The layer's rotated cache, made from its ``present`` on first use."""
        if self.tables is None:
            keys = self.present[0][0]
            with torch.autocast(keys.device.type, enabled=False):
                self.tables = rope.get_rotary_embedding(keys.shape[-2], keys.device)
        while len(self.kv) <= layer:
            keys, values = self.present[len(self.kv)]
            rotated = _rotate(rope, keys, self.tables, slice(None))
            self.kv.append(LayerKV(rotated, values.contiguous()))
        return self.kv[layer]


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
        cache.present.append(present)
        return out, present if use_cache else None
    kv = cache.layer(layer, block.rotary_emb)
    assert cache.tables is not None and cache.bias is not None
    n, w, c = q.shape
    kv_heads, d, dtype = kv.keys.shape[1], kv.keys.shape[3], kv.keys.dtype
    if getattr(block, "q_norm", None) is not None and getattr(block, "k_norm", None) is not None:
        q, k = block.q_norm(q).to(k.dtype), block.k_norm(k).to(k.dtype)
    window = slice(cache.window_start, cache.window_start + w)
    q = _rotate(block.rotary_emb, q.view(n, w, c // d, d).transpose(1, 2), cache.tables, window)
    k = k.view(n, w, kv_heads, d).transpose(1, 2).to(dtype)  # (N, kvh, W, D), as LLaDA splices
    k = _rotate(block.rotary_emb, k, cache.tables, window)
    k, v = kv.write(cache.window_start, k, v.view(n, w, kv_heads, d).transpose(1, 2))
    bias = cache.bias.to(q.dtype)  # (N, 1, W, T)
    att = block._scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (N, heads, W, D)
    return block.attn_out(att.transpose(1, 2).contiguous().view(n, w, c)), None


def _rotate(
    rope: nn.Module,
    x: torch.Tensor,  # (N, heads, S, D) queries or keys of positions ``window``
    tables: tuple[torch.Tensor, torch.Tensor],  # (1, 1, T, D) sin, cos
    window: slice,
) -> torch.Tensor:  # (N, heads, S, D)
    """LLaDA's ``RotaryEmbedding.forward`` for one tensor at the positions ``window`` (in full
    precision when the model asks for it, as LLaDA does)."""
    full = getattr(rope.config, "rope_full_precision", True)
    x_ = x.float() if full else x
    with torch.autocast(x.device.type, enabled=False):
        pos_sin, pos_cos = (t[:, :, window].type_as(x_) for t in tables)
        return rope.apply_rotary_pos_emb(pos_sin, pos_cos, x_).type_as(x)
