"""What lm-eval asks of a model, in plain trafl: the ELBO of a continuation given a context,
whether greedy decoding reproduces it, and where a generation stops. No lm-eval import here.

A masked diffusion model has no left-to-right factorisation, so ``log p(continuation |
context)`` is estimated by its ELBO, as LLaDA's own lm-eval wrapper does (Nie et al. 2025,
Alg. 3; ML-GSAI/LLaDA ``eval_llada.py``): the context is never masked, and each of K masks over
the continuation hides l tokens, l uniform on {1..n}, weighted n / l (trafl's ``elbo``
estimator, :mod:`trafl.likelihood.elbo`):

    e_k = (n / l_k) * sum_{i in M_k} log p_theta(y_i | y_{~M_k}, x),   logp ~ (1/K) sum_k e_k,

an unbiased estimate of the ELBO <= log p(y | x). The sequence is the context followed by the
continuation and nothing else (LLaDA's convention).

Randomness: each request draws its masks from a generator seeded by (seed, its context) (see
:func:`request_seed`), so a result does not depend on the batch, the order or the other requests,
and the choices of one question share their masks where their lengths agree (common random
numbers: less noise in their difference, the quantity a multiple-choice task ranks by).
Rows of equal continuation length share a denoiser call; prompts are left-padded, which
changes values only by floating-point rounding.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from trafl.core.batch import Rollout, Trajectory
from trafl.likelihood.elbo import Elbo, ElboConfig
from trafl.models.base import DiffusionLM, TextTokenizer
from trafl.sampling import SamplerConfig, left_pad, sample

Pair = tuple[list[int], list[int]]  # (context ids, continuation ids)


def request_seed(seed: int, context: str) -> int:
    """The seed of one request's randomness: a hash of (seed, context), stable across runs and
    machines (Python's ``hash`` of a string is salted per process)."""
    digest = hashlib.sha256(f"{seed}\x00{context}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def encode_pair(tokenizer: TextTokenizer, context: str, continuation: str) -> Pair:
    """Context ids (``encode_prompt``: a chat template and response prefix as the model was
    trained with) and continuation ids. Whitespace ending the context moves to the start of
    the continuation, as lm-eval's own models do, so a subword tokenizer sees " word"."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    return tokenizer.encode_prompt(context), tokenizer.encode(continuation)


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """``text`` up to the earliest occurrence of any stop string (lm-eval's ``until``)."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=len(text))
    return text[:cut]


@contextmanager
def inference(model: DiffusionLM) -> Iterator[None]:
    """No gradients and eval mode for the block; the model's mode is restored after."""
    was_training = model.training  # type: ignore[attr-defined]
    model.eval()  # type: ignore[attr-defined]
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)  # type: ignore[attr-defined]


def _rollout(pairs: Sequence[Pair], pad_id: int, device: torch.device | str) -> Rollout:
    """Rows of contexts (left-padded) and continuations of one length, as the estimators read
    them; every continuation position counts, and the trajectory is empty (not replayed)."""
    ids, mask = left_pad([c for c, _ in pairs], pad_id, device)  # (N, P)
    completion = torch.tensor([y for _, y in pairs], dtype=torch.long, device=device)  # (N, L)
    zeros = torch.zeros(completion.shape, dtype=torch.float32, device=device)  # (N, L)
    trajectory = Trajectory(torch.full_like(completion, -1), zeros, zeros.clone())
    valid = torch.ones_like(completion, dtype=torch.bool)  # (N, L)
    return Rollout(ids, mask, completion, trajectory, completion_mask=valid)


def equal_length_chunks(
    items: Sequence[tuple[int, ...]], batch_size: int
) -> Iterator[list[tuple[int, ...]]]:
    """``items`` (tuples led by a length) sorted, in runs of one length, at most ``batch_size``
    each: the rows that can share one denoiser call."""
    for _, run in itertools.groupby(sorted(items), key=lambda item: item[0]):
        rows = list(run)
        for start in range(0, len(rows), batch_size):
            yield rows[start : start + batch_size]


def continuation_masks(estimator: Elbo, length: int, seed: int) -> torch.Tensor:
    """The estimator's K masks over a continuation of ``length`` tokens, (K, L) bool, drawn on
    the CPU from ``seed`` alone (the same on every device)."""
    row = _rollout([([], [0] * length)], pad_id=0, device="cpu")
    return estimator.draw(row, torch.Generator().manual_seed(seed))["masks"][0]  # (K, L)


def continuation_elbos(
    model: DiffusionLM,
    pairs: Sequence[Pair],
    seeds: Sequence[int],
    num_masks: int,
    coupling: str = "complementary",
    batch_size: int = 32,
) -> list[float]:
    """The ELBO estimate of each continuation given its context (module doc), K = ``num_masks``
    masks per pair drawn from its seed; an empty continuation scores 0 (log 1). Rows are
    (pair, mask) couples, ``batch_size`` per denoiser call."""
    estimator = Elbo(ElboConfig(num_masks=num_masks, coupling=coupling))  # type: ignore[arg-type]
    device = next(model.parameters()).device  # type: ignore[attr-defined]
    masks = [
        continuation_masks(estimator, len(y), seed) if y else None
        for (_, y), seed in zip(pairs, seeds, strict=True)
    ]
    values = torch.zeros((len(pairs), num_masks), dtype=torch.float64)  # (pairs, K)
    rows = [(len(y), i, k) for i, (_, y) in enumerate(pairs) if y for k in range(num_masks)]
    with inference(model):
        for chunk in equal_length_chunks(rows, batch_size):
            batch = _rollout([pairs[i] for _, i, _ in chunk], model.pad_token_id, device)
            hidden = torch.stack([masks[i][k] for _, i, k in chunk])  # type: ignore[index]
            draw = {"masks": hidden[:, None, :].to(device)}  # (R, 1, L): one mask per row
            per_draw = estimator.estimate(model, batch, draw).per_draw  # (R, 1)
            for (_, i, k), value in zip(chunk, per_draw[:, 0].tolist(), strict=True):
                values[i, k] = value
    return values.mean(dim=1).tolist()  # (pairs,) zeros for empty continuations


def greedy_matches(model: DiffusionLM, pairs: Sequence[Pair], batch_size: int = 32) -> list[bool]:
    """Whether greedy decoding of ``len(continuation)`` tokens after the context reproduces the
    continuation exactly: trafl's sampler at temperature 0 with low-confidence remasking, one
    token per step in one block, i.e. LLaDA's ``suffix_greedy_prediction`` (reveal the most
    confident argmax token, repeat). An empty continuation is greedy."""
    device = next(model.parameters()).device  # type: ignore[attr-defined]
    matches = [True] * len(pairs)
    rows = [(len(y), i) for i, (_, y) in enumerate(pairs) if y]
    with inference(model):
        for chunk in equal_length_chunks(rows, batch_size):
            length = chunk[0][0]
            config = SamplerConfig(gen_length=length, steps=length, temperature=0.0)
            batch = _rollout([pairs[i] for _, i in chunk], model.pad_token_id, device)
            decoded = sample(model, batch.prompt_ids, batch.prompt_mask, config).completion_ids
            same = (decoded == batch.completion_ids).all(dim=1)  # (R,)
            for (_, i), match in zip(chunk, same.tolist(), strict=True):
                matches[i] = bool(match)
    return matches
