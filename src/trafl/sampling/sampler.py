"""LLaDA's masked-diffusion sampler, batched, recording the exact denoising trajectory.

Semantics follow LLaDA's ``generate`` (Nie et al. 2025, Alg. "low-confidence remasking"):
the completion starts fully masked; it is revealed in semi-autoregressive blocks of
``block_length`` from left to right; each block gets ``steps / num_blocks`` denoiser calls and
at each call the scheduled number of positions is revealed: the most confident candidates
(``low_confidence``) or uniformly random ones (``random``). Candidates are drawn from
``softmax(logits / temperature)`` (optionally top-p filtered) by Gumbel-max.

The trajectory records, for every completion position, the global step at which it was
revealed and the log-probability of the revealed token under the denoiser at that step
(temperature 1: the quantity an exact-path replay recomputes) and under the distribution that
was actually sampled from (temperature and top-p applied; 0 for greedy decoding).

Fast modes (Fast-dLLM, Wu et al. 2025), all off by default:

* ``parallel_threshold=c``: instead of a fixed schedule, each step reveals every masked
  position of the block whose confidence is at least c, and at least the most confident one;
  a block ends when it is fully revealed. Each revealed token's log-prob is still exact under
  the model at the state it was revealed from, so the trajectory replays exactly.
* ``cache=prefix|dual`` (:mod:`trafl.sampling.cache`): reuse keys/values of positions outside
  the recomputed window. The recorded log-probs are those of the cached computation that was
  sampled from; an exact replay (the ``trajectory`` estimator) differs by the cache's error,
  which ``benchmarks/sampler_modes.py`` measures.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from trafl.models.base import DiffusionLM
from trafl.sampling.cache import CACHE_MODES, StepLogits


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

    def resolved_block_length(self) -> int:
        return self.block_length or self.gen_length

    def resolved_steps(self) -> int:
        return self.steps or self.gen_length


@dataclass
class Trajectory:
    """How a batch of completions was revealed. Exact: replaying it reproduces ``token_logp``."""

    reveal_step: torch.Tensor  # (N, L) long, global step (0-based) at which position was revealed
    token_logp: torch.Tensor  # (N, L) float32, log p_theta(token | state before its step)
    sample_logp: torch.Tensor  # (N, L) float32, same under the sampled (tempered, top-p) law


@dataclass
class Rollout:
    prompt_ids: torch.Tensor  # (N, P) left-padded with pad ids
    prompt_mask: torch.Tensor  # (N, P) bool, False on padding
    completion_ids: torch.Tensor  # (N, L)
    trajectory: Trajectory
    num_steps: int


def reveal_schedule(num_tokens: int, steps: int) -> list[int]:
    """Tokens revealed at each step of a block: as even as possible, the remainder first
    (LLaDA's ``get_num_transfer_tokens``)."""
    base, extra = divmod(num_tokens, steps)
    return [base + (1 if i < extra else 0) for i in range(steps)]


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Set to -inf every token outside the smallest set whose probability reaches ``top_p``."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = (cum - sorted_logits.softmax(dim=-1)) >= top_p  # mass before this token
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


Generators = torch.Generator | Sequence[torch.Generator] | None


def uniform(shape: tuple[int, ...], generator: Generators, device: torch.device) -> torch.Tensor:
    """float64 U(0, 1) noise of ``shape`` (N, ...). With one generator per row, row i's noise
    comes from generator i alone, so a row's sample does not depend on which other rows share
    its batch (what makes sharded rollouts equal unsharded ones, see trafl.distributed)."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand(shape, dtype=torch.float64, device=device, generator=generator)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} row generators for {shape[0]} rows")
    return torch.stack([torch.rand(shape[1:], dtype=torch.float64, device=device, generator=g)
                        for g in generator])  # fmt: skip


def candidates(
    logits: torch.Tensor,  # (N, S, V) float64
    config: SamplerConfig,
    generator: Generators,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a candidate token per position and its log-prob under the sampled law.

    Gumbel-max in float64: LLaDA notes that low-precision Gumbel noise lowers the effective
    temperature (ties and rounding in the argmax), which matters for diversity -- the very
    thing trafl measures."""
    if config.temperature == 0:
        x0 = logits.argmax(dim=-1)  # (N, S)
        return x0, torch.zeros(x0.shape, dtype=torch.float64, device=logits.device)
    scaled = logits / config.temperature
    if config.top_p is not None and config.top_p < 1:
        scaled = top_p_filter(scaled, config.top_p)
    u = uniform(scaled.shape, generator, logits.device)
    gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))
    x0 = (scaled + gumbel).argmax(dim=-1)  # (N, S)
    sample_logp = scaled.log_softmax(dim=-1).gather(-1, x0[..., None])[..., 0]
    return x0, sample_logp


@torch.no_grad()
def sample(
    model: DiffusionLM,
    prompt_ids: torch.Tensor,  # (N, P) left-padded
    prompt_mask: torch.Tensor,  # (N, P) bool
    config: SamplerConfig,
    generator: Generators = None,  # one, or one per row
) -> Rollout:
    """Generate one completion per row and record its trajectory."""
    n, p = prompt_ids.shape
    length, block = config.gen_length, config.resolved_block_length()
    num_blocks = length // block
    steps_per_block = config.resolved_steps() // num_blocks
    device, mask_id = prompt_ids.device, model.mask_token_id

    x = torch.cat([prompt_ids, prompt_ids.new_full((n, length), mask_id)], dim=1)  # (N, P+L)
    attn = torch.cat([prompt_mask.bool(), prompt_mask.new_ones((n, length), dtype=torch.bool)], 1)
    reveal_step = torch.full((n, length), -1, dtype=torch.long, device=device)
    token_logp = torch.zeros((n, length), dtype=torch.float32, device=device)
    sample_logp = torch.zeros((n, length), dtype=torch.float32, device=device)

    step_logits = StepLogits(model, config.cache, config.cache_refresh_every, config.bf16)
    step = 0
    for b in range(num_blocks):
        lo, hi = p + b * block, p + (b + 1) * block  # block span in sequence coordinates
        plan = reveal_schedule(block, steps_per_block)
        for i in itertools.count():
            still_masked = reveal_step[:, lo - p : hi - p] < 0  # (N, S)
            if config.parallel_threshold is None:
                if i == len(plan):  # the block's scheduled steps are done
                    break
            elif not still_masked.any():  # parallel decoding: the block is fully revealed
                break
            logits = step_logits(x, attn, lo, hi, i).double()  # (N, S, V)
            x0, x0_sample_logp = candidates(logits, config, generator)  # (N, S)
            x0_logp = logits.log_softmax(dim=-1).gather(-1, x0[..., None])[..., 0]  # (N, S)
            if config.remasking == "low_confidence":
                confidence = x0_logp.exp()
            else:
                confidence = uniform(x0.shape, generator, device)
            confidence = confidence.masked_fill(~still_masked, float("-inf"))
            if config.parallel_threshold is None:
                chosen = confidence.topk(plan[i], dim=-1).indices  # (N, k)
                reveal = torch.zeros_like(still_masked).scatter(1, chosen, True)  # (N, S)
            else:  # every confident position, and at least the most confident one
                top = torch.zeros_like(still_masked).scatter(1, confidence.argmax(-1, True), True)
                reveal = still_masked & ((confidence >= config.parallel_threshold) | top)
            span = slice(lo - p, hi - p)  # the block in completion coordinates
            x[:, lo:hi] = torch.where(reveal, x0, x[:, lo:hi])
            reveal_step[:, span] = torch.where(reveal, step, reveal_step[:, span])
            token_logp[:, span] = torch.where(reveal, x0_logp.float(), token_logp[:, span])
            sample_logp[:, span] = torch.where(reveal, x0_sample_logp.float(), sample_logp[:, span])
            step += 1

    assert (reveal_step >= 0).all(), "every completion position is revealed exactly once"
    trajectory = Trajectory(reveal_step, token_logp, sample_logp)
    return Rollout(prompt_ids, prompt_mask.bool(), x[:, p:], trajectory, step)


def left_pad(
    rows: list[list[int]],
    pad_id: int,
    device: torch.device | str = "cpu",
    width: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists into (ids (N, P), mask (N, P) bool); P = the longest row, or
    ``width`` when that is larger."""
    width = max([len(r) for r in rows] + [width or 0])
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = True
    return ids.to(device), mask.to(device)


def completion_texts(model: DiffusionLM, completion_ids: torch.Tensor) -> list[str]:
    """Decode completions, cut at the first EOS (what rewards see)."""
    eos, texts = model.eos_token_id, []
    for row in completion_ids.tolist():
        cut = row.index(eos) if eos in row else len(row)
        texts.append(model.tokenizer.decode(row[:cut]))
    return texts
