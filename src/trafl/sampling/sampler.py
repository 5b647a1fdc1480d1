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

LLaDA's options (ML-GSAI/LLaDA ``generate.py``), off by default: ``cfg_scale`` (classifier-free
guidance, :class:`trafl.sampling.cache.StepLogits`; the recorded log-probs are the guided ones)
and ``suppress_eos`` (``logits_eos_inf``: :func:`eos_suppressed`).

Per-sequence lengths (``sample(..., lengths=...)``, :mod:`trafl.sampling.lengths`): each row
has its own completion length and schedule in one batch; with one generator per row a row
equals the row sampled alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trafl.core.batch import Rollout, Trajectory
from trafl.models.base import DiffusionLM
from trafl.sampling.cache import StepLogits
from trafl.sampling.config import SamplerConfig
from trafl.sampling.lengths import row_plans


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Set to -inf every token outside the smallest set whose probability reaches ``top_p``."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = (cum - sorted_logits.softmax(dim=-1)) >= top_p  # mass before this token
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


Generators = torch.Generator | Sequence[torch.Generator] | None


def uniform(
    shape: tuple[int, ...],
    generator: Generators,
    device: torch.device,
    spans: Sequence[tuple[int, int] | None] | None = None,
) -> torch.Tensor:
    """float64 U(0, 1) noise of ``shape`` (N, S, ...). With one generator per row, row i's noise
    comes from generator i alone, so a row's sample does not depend on which other rows share
    its batch (what makes sharded rollouts equal unsharded ones, see trafl.run.distributed).

    ``spans`` (per-row generators only): row i draws noise for its own positions
    ``spans[i]`` of the S window, as it would alone, and nothing when its span is None."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand(shape, dtype=torch.float64, device=device, generator=generator)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} row generators for {shape[0]} rows")
    if spans is None:
        return torch.stack(
            [
                torch.rand(shape[1:], dtype=torch.float64, device=device, generator=g)
                for g in generator
            ]
        )
    u = torch.full(shape, 0.5, dtype=torch.float64, device=device)
    for i, (g, span) in enumerate(zip(generator, spans, strict=True)):
        if span is not None:
            lo, hi = span
            u[i, lo:hi] = torch.rand(
                (hi - lo, *shape[2:]), dtype=torch.float64, device=device, generator=g
            )
    return u


def candidates(
    logits: torch.Tensor,  # (N, S, V) float64
    config: SamplerConfig,
    generator: Generators,
    spans: Sequence[tuple[int, int] | None] | None = None,
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
    u = uniform(scaled.shape, generator, logits.device, spans)
    gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))
    x0 = (scaled + gumbel).argmax(dim=-1)  # (N, S)
    sample_logp = scaled.log_softmax(dim=-1).gather(-1, x0[..., None])[..., 0]
    return x0, sample_logp


def eos_suppressed(logits: torch.Tensor, eos_id: int) -> torch.Tensor:
    """``logits`` (R, S, V) with EOS at -inf: LLaDA's ``logits_eos_inf`` (ML-GSAI/LLaDA
    generate.py), applied to the law that is sampled from and ranks confidence. The recorded
    ``token_logp`` stays the denoiser's, so an exact replay still reproduces it."""
    law = logits.clone()
    law[..., eos_id] = float("-inf")
    return law


def choose(
    confidence: torch.Tensor,  # (R, S)
    masked: torch.Tensor,  # (R, S) bool, the candidates: still masked in the row's block
    count: list[int] | None,  # tokens to reveal per row (the schedule), or None
    threshold: float | None,  # parallel decoding's confidence threshold
) -> torch.Tensor:  # (R, S) bool, the positions revealed at this step
    """The ``count[i]`` most confident candidates of row i, or (parallel decoding) every
    candidate at least ``threshold`` confident and at least the most confident one.

    Exact ties (a confident model rounds exp(logp) to 1.0) go to the leftmost position, so
    the choice does not depend on the window's width or the other rows' counts."""
    confidence = confidence.masked_fill(~masked, float("-inf"))
    if count is not None:
        order = confidence.sort(dim=-1, descending=True, stable=True).indices
        chosen = order[:, : max(count)]  # (R, kmax), most confident first
        k = torch.tensor(count, device=chosen.device)
        keep = torch.arange(chosen.shape[1], device=chosen.device)[None] < k[:, None]
        return torch.zeros_like(masked).scatter(1, chosen, keep)
    assert threshold is not None
    top = torch.zeros_like(masked).scatter(1, confidence.argmax(-1, True), True)
    return masked & ((confidence >= threshold) | top)


@dataclass
class _Canvas:
    """The batch being denoised and what is recorded about it (sample's working state)."""

    x: torch.Tensor  # (N, P+L) prompt and completion ids, masks where not yet revealed
    attn: torch.Tensor  # (N, P+L) bool: prompt tokens and each row's own completion positions
    exists: torch.Tensor  # (N, L) bool: position within the row's length
    row_length: torch.Tensor  # (N,) long
    reveal_step: torch.Tensor  # (N, L) long, -1 until revealed
    token_logp: torch.Tensor  # (N, L) float32
    sample_logp: torch.Tensor  # (N, L) float32
    row_step: torch.Tensor  # (N,) long, steps each row has taken


def _canvas(
    model: DiffusionLM,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    plans: list,
    width: int,
    per_row_lengths: bool,
) -> _Canvas:
    """All-masked completions after the prompts; past its length a row holds EOS, outside
    attention."""
    n, device = prompt_ids.shape[0], prompt_ids.device
    row_length = torch.tensor([r.length for r in plans], device=device)  # (N,)
    exists = torch.arange(width, device=device)[None] < row_length[:, None]  # (N, L)
    fill = torch.full_like(exists, model.mask_token_id, dtype=torch.long)
    if per_row_lengths:
        fill = fill.masked_fill(~exists, model.eos_token_id)
    zeros = torch.zeros((n, width), dtype=torch.float32, device=device)
    return _Canvas(
        x=torch.cat([prompt_ids, fill.to(prompt_ids.dtype)], dim=1),  # (N, P+L)
        attn=torch.cat([prompt_mask.bool(), exists], dim=1),
        exists=exists,
        row_length=row_length,
        reveal_step=torch.full((n, width), -1, dtype=torch.long, device=device),
        token_logp=zeros,
        sample_logp=zeros.clone(),
        row_step=torch.zeros(n, dtype=torch.long, device=device),
    )


def _block_window(plans: list, b: int, device: torch.device) -> tuple[list, int, int, torch.Tensor]:
    """Each row's span of block ``b`` (completion coordinates, None when the row has no such
    block), the window [lo, hi) that holds them all, and (N, hi-lo) bool: in the row's span."""
    spans = [r.span(b) for r in plans]
    lo = min(s[0] for s in spans if s is not None)
    hi = max(s[1] for s in spans if s is not None)
    in_block = torch.zeros((len(plans), hi - lo), dtype=torch.bool)
    for i, s in enumerate(spans):
        if s is not None:
            in_block[i, s[0] - lo : s[1] - lo] = True
    return spans, lo, hi, in_block.to(device)


def _reveal_counts(
    config: SamplerConfig, plans: list, spans: list, j: int, still_masked: torch.Tensor
) -> tuple[list[int] | None, list[bool]]:
    """Which rows reveal something at step ``j`` of the block, decided on the host: the
    block's scheduled counts, or (parallel decoding) every row with a masked position left."""
    if config.parallel_threshold is not None:
        return None, still_masked.any(dim=1).tolist()
    count = [
        r.schedule[j] if s is not None and j < len(r.schedule) else 0
        for r, s in zip(plans, spans, strict=True)
    ]
    return count, [c > 0 for c in count]


@torch.no_grad()
def sample(
    model: DiffusionLM,
    prompt_ids: torch.Tensor,  # (N, P) left-padded
    prompt_mask: torch.Tensor,  # (N, P) bool
    config: SamplerConfig,
    generator: Generators = None,  # one, or one per row
    lengths: Sequence[int] | torch.Tensor | None = None,  # per row, <= gen_length; None: all
) -> Rollout:
    """Generate one completion per row and record its trajectory.

    With ``lengths``, row i gets a completion of ``lengths[i]`` tokens, scheduled as
    :mod:`trafl.sampling.lengths` says, and (with one generator per row) the same tokens and
    trajectory as that row sampled alone, up to floating-point rounding of the wider batch.

    Steps are counted per row: ``reveal_step`` is the row's own denoising step, and a row
    that has nothing left to reveal while the others go on is left out of the denoiser call
    (without a cache) and draws no noise."""
    n = prompt_ids.shape[0]
    plans = row_plans(config, lengths, n)
    c = _canvas(model, prompt_ids, prompt_mask, plans, config.gen_length, lengths is not None)
    step_logits = StepLogits(
        model,
        config.cache,
        config.cache_refresh_every,
        config.bf16,
        config.cfg_scale,
        prompt_ids.shape[1],
    )
    calls = 0
    for b in range(max(r.num_blocks for r in plans)):
        spans, lo, hi, in_block = _block_window(plans, b, prompt_ids.device)
        for j in itertools.count():
            still_masked = in_block & (c.reveal_step[:, lo:hi] < 0)  # (N, S)
            count, active = _reveal_counts(config, plans, spans, j, still_masked)
            if not any(active):
                break
            _denoise_step(
                c,
                step_logits,
                config,
                generator,
                spans,
                (lo, hi),
                j,
                still_masked,
                count,
                active,
                prompt_ids.shape[1],
            )
            calls += 1

    assert torch.equal(c.reveal_step >= 0, c.exists), "every position is revealed exactly once"
    trajectory = Trajectory(c.reveal_step, c.token_logp, c.sample_logp)
    p = prompt_ids.shape[1]
    return Rollout(
        prompt_ids,
        prompt_mask.bool(),
        c.x[:, p:],
        trajectory,
        int(c.row_step.max()),
        None if lengths is None else c.row_length,
        calls,
    )


def _denoise_step(
    c: _Canvas,
    step_logits: StepLogits,
    config: SamplerConfig,
    generator: Generators,
    spans: list,
    window: tuple[int, int],
    j: int,
    still_masked: torch.Tensor,  # (N, S)
    count: list[int] | None,
    active: list[bool],
    p: int,
) -> None:
    """One denoiser call on the rows that reveal something (all rows with a cache): draw
    candidates, score them, reveal the chosen positions and record their log-probs."""
    (lo, hi), n, device = window, len(active), c.x.device
    rows = list(range(n))
    if config.cache == "none" and not all(active):
        rows = [i for i in range(n) if active[i]]
    pick = slice(None) if len(rows) == n else torch.tensor(rows, device=device)
    per_row_noise = isinstance(generator, list | tuple)
    gen = [generator[i] for i in rows] if per_row_noise else generator  # type: ignore[index]
    draw = None  # per-row generators draw at each active row's own span, as alone
    if per_row_noise:
        draw = [
            (spans[i][0] - lo, spans[i][1] - lo) if active[i] else None  # type: ignore[index]
            for i in rows
        ]
    logits = step_logits(c.x[pick], c.attn[pick], p + lo, p + hi, j).double()  # (R, S, V)
    law = eos_suppressed(logits, step_logits.model.eos_token_id) if config.suppress_eos else logits
    x0, x0_sample_logp = candidates(law, config, gen, draw)  # (R, S)
    x0_logp = logits.log_softmax(dim=-1).gather(-1, x0[..., None])[..., 0]  # (R, S)
    if config.remasking == "low_confidence" and config.suppress_eos:
        confidence = law.softmax(dim=-1).gather(-1, x0[..., None])[..., 0]  # LLaDA's p
    elif config.remasking == "low_confidence":
        confidence = x0_logp.exp()
    else:
        confidence = uniform(x0.shape, gen, device, draw)
    stepping = torch.tensor(active, device=device)  # (N,) bool
    masked = still_masked[pick] & stepping[pick, None]
    row_count = None if count is None else [count[i] for i in rows]
    reveal = choose(confidence, masked, row_count, config.parallel_threshold)  # (R, S)
    step = c.row_step[pick, None]  # (R, 1)
    x_win, span = (pick, slice(p + lo, p + hi)), (pick, slice(lo, hi))
    c.x[x_win] = torch.where(reveal, x0, c.x[x_win])
    c.reveal_step[span] = torch.where(reveal, step, c.reveal_step[span])
    c.token_logp[span] = torch.where(reveal, x0_logp.float(), c.token_logp[span])
    c.sample_logp[span] = torch.where(reveal, x0_sample_logp.float(), c.sample_logp[span])
    c.row_step += stepping.long()


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
