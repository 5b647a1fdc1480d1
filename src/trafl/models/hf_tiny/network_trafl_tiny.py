"""The ``tiny`` denoiser's network, in torch alone: its config, its layers and its forward pass.

Pre-norm blocks (RMSNorm), rotary position embeddings, SwiGLU MLP, tied input/output
embeddings, no causal mask. It is not conditioned on the mask ratio t: like LLaDA and MDLM's
time-independent parametrisation, the number of masks in the input already tells it.

:class:`TinyNetwork` is mixed into two modules that hold the same parameters under the same
names (``embed``, ``blocks.{i}.{attn_norm,qkv,proj,mlp_norm,gate_up,down}``, ``norm``,
``lm_head`` tied to ``embed``): trafl's ``TinyDiffusionLM`` (trafl.models.tiny) and
transformers' ``TraflTinyModel`` (modeling_trafl_tiny.py). This file is copied into every tiny
model folder beside that one, so it imports torch only (no trafl, no transformers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TinyConfig:
    """The network's shape (config.json holds these keys)."""

    vocab_size: int = 100  # trafl's character tokenizer: 3 specials + 97 characters
    hidden_size: int = 192
    num_layers: int = 6
    num_heads: int = 6
    mlp_hidden: int = 512
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 2:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be num_heads ({self.num_heads}) times an "
                "even head size (rotary embeddings rotate pairs of channels)"
            )


def rotary(x: torch.Tensor, theta: float, offset: int = 0) -> torch.Tensor:
    """Apply RoPE to ``x`` (N, heads, T, D), channel pairs (2i, 2i+1) rotated together. Only
    relative offsets matter, so left padding of prompts does not change what a real token sees.

    Done as one complex multiply: the strided real form (``x[..., 0::2]`` etc.) was the largest
    cost after the matmuls in a CPU profile of sampling, and is about 8x slower than this one
    (``benchmarks/rope.py``); both agree to float32 rounding."""
    d, t = x.shape[-1], x.shape[-2]
    inv_freq = theta ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    pos = torch.arange(offset, offset + t, device=x.device, dtype=torch.float32)  # (T,)
    angles = pos[:, None] * inv_freq  # (T, D/2)
    rotation = torch.polar(torch.ones_like(angles), angles)  # (T, D/2) complex64
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], d // 2, 2))
    return torch.view_as_real(pairs * rotation).flatten(-2).to(x.dtype)


@dataclass
class LayerKV:
    keys: torch.Tensor  # (N, heads, T, D), rotary already applied
    values: torch.Tensor  # (N, heads, T, D)


def key_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(N, 1, 1, T) bool (True = attend) for padded batches; None when nothing is padded.
    ``attention_mask`` (N, T): bool or 0/1, true or 1 on real tokens."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return attention_mask.bool()[:, None, None, :]


class Block(nn.Module):
    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.rope_theta = cfg.rope_theta
        self.attn_norm = nn.RMSNorm(cfg.hidden_size, eps=cfg.norm_eps)
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=False)
        self.proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=False)
        self.mlp_norm = nn.RMSNorm(cfg.hidden_size, eps=cfg.norm_eps)
        self.gate_up = nn.Linear(cfg.hidden_size, 2 * cfg.mlp_hidden, bias=False)
        self.down = nn.Linear(cfg.mlp_hidden, cfg.hidden_size, bias=False)

    def forward(
        self,
        h: torch.Tensor,  # (N, W, H): the whole sequence, or the window start:start+W
        mask: torch.Tensor | None,  # (N, 1, 1, T) True = attend
        cache: LayerKV | None = None,
        start: int = 0,
    ) -> tuple[torch.Tensor, LayerKV]:
        """One block. Without ``cache``, ``h`` is the whole sequence and the returned keys and
        values cover it. With ``cache``, ``h`` holds only the window starting at ``start``:
        its queries attend to its own fresh keys and to the cached keys of every other
        position (the Fast-dLLM approximation: cached positions are not updated)."""
        n, w, _ = h.shape
        heads = self.num_heads
        q, k, v = self.qkv(self.attn_norm(h)).view(n, w, 3, heads, -1).permute(2, 0, 3, 1, 4)
        q = rotary(q, self.rope_theta, start)  # (N, heads, W, D)
        k = rotary(k, self.rope_theta, start)
        fresh = LayerKV(k, v)
        if cache is not None:  # splice the window's keys/values into the cached sequence
            k = torch.cat([cache.keys[:, :, :start], k, cache.keys[:, :, start + w :]], dim=2)
            v = torch.cat([cache.values[:, :, :start], v, cache.values[:, :, start + w :]], 2)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=False)
        h = h + self.proj(a.transpose(1, 2).reshape(n, w, -1))
        gate, up = self.gate_up(self.mlp_norm(h)).chunk(2, dim=-1)
        return h + self.down(F.silu(gate) * up), fresh


class TinyNetwork:
    """The layers and the forward pass, mixed into an ``nn.Module`` that calls
    :meth:`build_network` after ``nn.Module.__init__``."""

    def build_network(self, cfg: Any) -> None:
        """Create the layers (in this order: the random stream of weight init depends on it)."""
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.RMSNorm(cfg.hidden_size, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.embed.weight  # tied

    @staticmethod
    def init_module(module: nn.Module) -> None:
        """N(0, 0.02) for every linear and embedding weight (GPT-2)."""
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def scale_residual_init(self) -> None:
        """Redraw the projections that write into the residual stream with std
        0.02 / sqrt(2 layers) (GPT-2's scaled init keeps deep stacks stable)."""
        for block in self.blocks:
            for out in (block.proj, block.down):
                nn.init.normal_(out.weight, std=0.02 / (2 * len(self.blocks)) ** 0.5)

    def final_hidden(
        self,
        input_ids: torch.Tensor,  # (N, T)
        attention_mask: torch.Tensor | None = None,  # (N, T) False / 0 = padding key
        layers: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The last layer's hidden states after the final norm, (N, T, H); each block's input
        is appended to ``layers`` when given (transformers' ``hidden_states`` tuple)."""
        mask = key_mask(attention_mask)
        h = self.embed(input_ids)  # (N, T, H)
        for block in self.blocks:
            if layers is not None:
                layers.append(h)
            h, _ = block(h, mask)
        return self.norm(h)

    def forward_cached(
        self,
        input_ids: torch.Tensor,  # (N, T) the whole current sequence
        attention_mask: torch.Tensor | None,  # (N, T) bool
        start: int,
        end: int,
        cache: list[LayerKV] | None = None,
    ) -> tuple[torch.Tensor, list[LayerKV]]:
        """Logits of positions ``start:end`` (N, W, V) and a key/value cache (trafl's
        ``CachedDenoiser`` protocol, for its Fast-dLLM sampler modes).

        ``cache=None`` runs the full sequence and returns every layer's keys and values: the
        logits are exactly the plain forward's. With a cache only the window is computed;
        positions outside it are seen through their cached keys and values (exact only if
        they were computed on the same tokens)."""
        mask = key_mask(attention_mask)
        if cache is None:
            h, cache = self.embed(input_ids), []
            for block in self.blocks:
                h, kv = block(h, mask)
                cache.append(kv)
            return self.lm_head(self.norm(h[:, start:end])), cache
        h = self.embed(input_ids[:, start:end])  # (N, W, H)
        for block, kv in zip(self.blocks, cache, strict=True):
            h, _ = block(h, mask, kv, start)
        return self.lm_head(self.norm(h)), cache
