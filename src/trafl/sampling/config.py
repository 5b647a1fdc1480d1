"""``sampler.*``: how completions are sampled, one config for rollouts, evaluation and sampling."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from trafl.sampling.cache import CACHE_MODES


@dataclass
class SamplerConfig:
    gen_length: int = 16
    block_length: int | None = None  # None: one block (= gen_length)
    steps: int | None = None  # None: one reveal per step (= gen_length)
    temperature: float = 1.0
    remasking: Literal["low_confidence", "random"] = "low_confidence"
    top_p: float | None = None  # None: no nucleus filtering
    batch_size: int = 256  # sequences per denoiser call in `generate`
    # Fast modes (Fast-dLLM). None / "none" / False: the exact LLaDA sampler above.
    parallel_threshold: float | None = None  # reveal every position this confident (>= 1/step)
    cache: Literal["none", "prefix", "dual"] = "none"  # reuse keys/values (approximate)
    cache_refresh_every: int | None = None  # full forward every r steps in a block (1 = exact)
    bf16: bool = False  # bf16 autocast for the denoiser (slower on CPUs without bf16 units)
    # LLaDA's generate.py options (ML-GSAI/LLaDA), off by default.
    cfg_scale: float = 0.0  # classifier-free guidance: un + (cfg_scale + 1) * (cond - un)
    suppress_eos: bool = False  # LLaDA's logits_eos_inf: EOS is never sampled or revealed

    def __post_init__(self) -> None:
        plan = (self.gen_length, self.resolved_block_length(), self.resolved_steps())
        length, block, steps = plan
        if length < 1 or block < 1 or steps < 1:
            raise ValueError(f"gen_length, block_length and steps must be positive, got {plan}")
        if length % block:
            raise ValueError(f"gen_length ({length}) must be a multiple of block_length ({block})")
        num_blocks = length // block
        if steps % num_blocks:
            raise ValueError(f"steps ({steps}) must be a multiple of the {num_blocks} blocks")
        if steps // num_blocks > block:
            raise ValueError(f"{steps // num_blocks} steps per block exceed its {block} tokens")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.parallel_threshold is not None:
            if not 0 < self.parallel_threshold <= 1:
                raise ValueError(
                    f"parallel_threshold must be in (0, 1], got {self.parallel_threshold}"
                )
            if self.remasking != "low_confidence":
                raise ValueError("parallel_threshold needs remasking=low_confidence")
        if self.cache not in CACHE_MODES:
            raise ValueError(f"unknown cache {self.cache!r}; valid: {', '.join(CACHE_MODES)}")
        if self.cache_refresh_every is not None and self.cache_refresh_every < 1:
            raise ValueError(f"cache_refresh_every must be >= 1, got {self.cache_refresh_every}")
        if not self.cfg_scale >= 0:  # also catches nan
            raise ValueError(f"cfg_scale must be >= 0 (0 = no guidance), got {self.cfg_scale}")

    def resolved_block_length(self) -> int:
        return self.block_length or self.gen_length

    def resolved_steps(self) -> int:
        return self.steps or self.gen_length

    def greedy(self) -> SamplerConfig:
        """The same schedule at temperature 0: the greedy check of a sampler's setting."""
        return replace(self, temperature=0.0)
