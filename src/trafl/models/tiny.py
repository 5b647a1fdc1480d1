"""``tiny``: our own small bidirectional transformer denoiser for the embedded tasks.

Pre-norm blocks (RMSNorm), rotary position embeddings, SwiGLU MLP, tied input/output
embeddings, no causal mask. It is not conditioned on the mask ratio t: like LLaDA and MDLM's
time-independent parametrisation, the number of masks in the input already tells it.
Stored as a folder: ``config.json`` + ``model.safetensors`` + ``tokenizer.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

from trafl.core.files import read_json_object
from trafl.models.base import DenoiserOutput, TokenIdsFromTokenizer
from trafl.models.tokenizer import CharTokenizer


@dataclass
class TinyConfig:
    vocab_size: int
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


def _key_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(N, 1, 1, T) bool (True = attend) for padded batches; None when nothing is padded."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return attention_mask.bool()[:, None, None, :]


class Block(nn.Module):
    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.attn_norm = nn.RMSNorm(cfg.hidden_size, eps=cfg.norm_eps)
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=False)
        self.proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=False)
        self.mlp_norm = nn.RMSNorm(cfg.hidden_size, eps=cfg.norm_eps)
        self.gate_up = nn.Linear(cfg.hidden_size, 2 * cfg.mlp_hidden, bias=False)
        self.down = nn.Linear(cfg.mlp_hidden, cfg.hidden_size, bias=False)

    def forward(
        self,
        h: torch.Tensor,  # (N, W, H): the whole sequence, or the window start:start+W
        key_mask: torch.Tensor | None,  # (N, 1, 1, T) True = attend
        cache: LayerKV | None = None,
        start: int = 0,
    ) -> tuple[torch.Tensor, LayerKV]:
        """One block. Without ``cache``, ``h`` is the whole sequence and the returned keys and
        values cover it. With ``cache``, ``h`` holds only the window starting at ``start``:
        its queries attend to its own fresh keys and to the cached keys of every other
        position (the Fast-dLLM approximation: cached positions are not updated)."""
        n, w, _ = h.shape
        heads = self.cfg.num_heads
        q, k, v = self.qkv(self.attn_norm(h)).view(n, w, 3, heads, -1).permute(2, 0, 3, 1, 4)
        q = rotary(q, self.cfg.rope_theta, start)  # (N, heads, W, D)
        k = rotary(k, self.cfg.rope_theta, start)
        fresh = LayerKV(k, v)
        if cache is not None:  # splice the window's keys/values into the cached sequence
            k = torch.cat([cache.keys[:, :, :start], k, cache.keys[:, :, start + w :]], dim=2)
            v = torch.cat([cache.values[:, :, :start], v, cache.values[:, :, start + w :]], 2)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, is_causal=False)
        h = h + self.proj(a.transpose(1, 2).reshape(n, w, -1))
        gate, up = self.gate_up(self.mlp_norm(h)).chunk(2, dim=-1)
        return h + self.down(F.silu(gate) * up), fresh


class TinyDiffusionLM(TokenIdsFromTokenizer, nn.Module):
    """The embedded denoiser; implements :class:`trafl.models.base.DiffusionLM`."""

    model_type = "tiny"

    def __init__(self, config: TinyConfig, tokenizer: CharTokenizer) -> None:
        super().__init__()
        if config.vocab_size != tokenizer.vocab_size:
            raise ValueError(
                f"config.vocab_size={config.vocab_size} but the tokenizer has "
                f"{tokenizer.vocab_size} tokens"
            )
        self.config = config
        self.tokenizer = tokenizer
        self.hidden_size = config.hidden_size
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.lm_head.weight = self.embed.weight  # tied
        self.apply(self._init)
        for block in self.blocks:  # scaled residual init (GPT-2) keeps deep stacks stable
            for out in (block.proj, block.down):
                nn.init.normal_(out.weight, std=0.02 / (2 * config.num_layers) ** 0.5)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def forward(
        self,
        input_ids: torch.Tensor,  # (N, T)
        attention_mask: torch.Tensor | None = None,  # (N, T) bool, False = padding key
        output_hidden_states: bool = False,
    ) -> DenoiserOutput:
        key_mask = _key_mask(attention_mask)
        h = self.embed(input_ids)  # (N, T, H)
        for block in self.blocks:
            h, _ = block(h, key_mask)
        h = self.norm(h)
        logits = self.lm_head(h)  # (N, T, V)
        return DenoiserOutput(logits=logits, hidden_states=h if output_hidden_states else None)

    def forward_cached(
        self,
        input_ids: torch.Tensor,  # (N, T) the whole current sequence
        attention_mask: torch.Tensor | None,  # (N, T) bool
        start: int,
        end: int,
        cache: list[LayerKV] | None = None,
    ) -> tuple[torch.Tensor, list[LayerKV]]:
        """Logits of positions ``start:end`` (N, W, V) and a key/value cache (the
        :class:`trafl.sampling.cache.CachedDenoiser` protocol).

        ``cache=None`` runs the full sequence and returns every layer's keys and values: the
        logits are exactly ``forward``'s. With a cache only the window is computed; positions
        outside it are seen through their cached keys and values (exact only if they were
        computed on the same tokens)."""
        key_mask = _key_mask(attention_mask)
        if cache is None:
            h, cache = self.embed(input_ids), []
            for block in self.blocks:
                h, kv = block(h, key_mask)
                cache.append(kv)
            return self.lm_head(self.norm(h[:, start:end])), cache
        h = self.embed(input_ids[:, start:end])  # (N, W, H)
        for block, kv in zip(self.blocks, cache, strict=True):
            h, _ = block(h, key_mask, kv, start)
        return self.lm_head(self.norm(h)), cache

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(
        self, path: str | Path, state_dict: dict[str, torch.Tensor] | None = None
    ) -> None:
        """Write the model folder; ``state_dict`` (this module's keys) replaces the live weights,
        e.g. the whole weights gathered from a sharded model (trafl.run.sharding)."""
        if state_dict is not None:
            twin = type(self)(self.config, self.tokenizer)
            twin.load_state_dict(state_dict)
            twin.save_pretrained(path)
            return
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"model_type": self.model_type, **asdict(self.config)}
        (path / "config.json").write_text(json.dumps(meta, indent=1))
        self.tokenizer.save(path / "tokenizer.json")
        save_model(self, str(path / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> TinyDiffusionLM:
        path = Path(path)
        meta = read_json_object(path / "config.json")
        if meta.pop("model_type", None) != cls.model_type:
            raise ValueError(f"{path} does not hold a '{cls.model_type}' model")
        model = cls(TinyConfig(**meta), CharTokenizer.load(path / "tokenizer.json"))
        load_model(model, str(path / "model.safetensors"))
        return model
