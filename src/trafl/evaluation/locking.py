"""Trajectory locking: how concentrated the denoising paths of one prompt's samples are.

Input per prompt: its ``n`` samples' ``Trajectory.reveal_step`` rows, an (n, L) integer array
(numpy or torch) giving the global step at which each completion position was revealed;
positions that share a step were revealed together. The row *is* the sample's reveal order:
two samples follow the same path iff their rows are equal. Reward-maximising post-training is
expected to collapse these onto a few orders (METHOD.md section 2); these metrics measure it.

For ranks, a sample's rank vector gives each position its (0-based) place in the reveal order,
positions revealed at the same step sharing the average of the places they occupy together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor | Sequence[Sequence[int]]


class LockingSummary(TypedDict):
    num_prompts: int
    order_share_of_mode: float
    order_entropy: float
    order_entropy_normalized: float
    mean_pairwise_rank_distance: float
    num_prompts_correct: int  # prompts with >= 2 correct samples: those the correct_* are over
    correct_order_share_of_mode: float | None  # None when no prompt contributed
    correct_order_entropy: float | None
    correct_order_entropy_normalized: float | None
    correct_mean_pairwise_rank_distance: float | None


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def as_reveal_steps(reveal_steps: ArrayLike) -> np.ndarray:
    """A prompt's reveal steps as an (n, L) int64 array, n >= 1 and L >= 1, else ValueError."""
    arr = _to_numpy(reveal_steps)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"reveal_steps must be a non-empty (n, L) array, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"reveal_steps must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def reveal_ranks(reveal_steps: ArrayLike) -> np.ndarray:
    """Each sample's rank vector: an (n, L) float64 array whose entry (i, l) is the 0-based
    place of position l in sample i's reveal order, ties getting their average place (so the
    ranks of a row always sum to L(L-1)/2)."""
    steps = as_reveal_steps(reveal_steps)  # (n, L)
    n, length = steps.shape
    order = np.argsort(steps, axis=1, kind="stable")  # (n, L) positions in reveal order
    sorted_steps = np.take_along_axis(steps, order, axis=1)  # (n, L)
    place = np.broadcast_to(np.arange(length), (n, length))  # (n, L)
    starts = np.ones((n, length), dtype=bool)  # (n, L) first place of each tie group
    starts[:, 1:] = sorted_steps[:, 1:] != sorted_steps[:, :-1]
    ends = np.ones((n, length), dtype=bool)  # (n, L) last place of each tie group
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, place, 0), axis=1)  # (n, L)
    last = np.minimum.accumulate(np.where(ends, place, length - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((n, length), dtype=np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2.0, axis=1)
    return ranks


def _order_counts(reveal_steps: ArrayLike) -> np.ndarray:
    """How many samples follow each distinct order (distinct rows)."""
    return np.unique(as_reveal_steps(reveal_steps), axis=0, return_counts=True)[1]


def order_share_of_mode(reveal_steps: ArrayLike) -> float:
    """Share of the n samples that follow the most common reveal order:
    ``max_o count(o) / n``. 1 when all samples share one path, 1/n when all differ."""
    counts = _order_counts(reveal_steps)
    return float(counts.max() / counts.sum())


def order_entropy(reveal_steps: ArrayLike, normalized: bool = False) -> float:
    """Shannon entropy (nats) of the empirical distribution of reveal orders:
    ``H = -sum_o p_o log p_o`` with ``p_o = count(o) / n``; 0 when all samples share one order.

    With ``normalized=True`` it is divided by its maximum ``log n`` (reached when all n orders
    differ), so it lies in [0, 1]: 1 = all distinct, 0 = all identical; defined as 0 for n = 1."""
    counts = _order_counts(reveal_steps)
    n = int(counts.sum())
    p = counts / n
    entropy = float(max(0.0, -(p * np.log(p)).sum()))  # max: no -0.0 for a single order
    if normalized:
        return entropy / float(np.log(n)) if n > 1 else 0.0
    return entropy


def mean_pairwise_rank_distance(reveal_steps: ArrayLike) -> float:
    """Mean over sample pairs ``i < j`` of the normalised Spearman footrule between their rank
    vectors (:func:`reveal_ranks`):

        d(i, j) = sum_l |r_i(l) - r_j(l)| / floor(L^2 / 2)

    ``floor(L^2/2)`` is the footrule's maximum over permutations of L (reached by a reversal),
    so d is in [0, 1] (also with ties: tied ranks average permutation ranks and the footrule is
    convex); 0 for identical orders. Defined as 0.0 when n = 1 (no pair) or L = 1.

    Vectorised over pairs without forming them: per position, with the n ranks sorted as
    ``s_0 <= ... <= s_{n-1}``, ``sum_{i<j} |s_j - s_i| = sum_j (2j - n + 1) s_j``, which costs
    O(n L log n) instead of the O(n^2 L) of the pairwise differences."""
    ranks = reveal_ranks(reveal_steps)  # (n, L)
    n, length = ranks.shape
    max_footrule = length * length // 2
    if n < 2 or max_footrule == 0:
        return 0.0
    sorted_ranks = np.sort(ranks, axis=0)  # (n, L) each position's ranks, ascending
    weights = 2.0 * np.arange(n) - n + 1  # (n,)
    total = float(weights @ sorted_ranks.sum(axis=1))  # sum over pairs and positions
    return total / (n * (n - 1) / 2) / max_footrule


def _prompt_metrics(steps: np.ndarray) -> np.ndarray:
    """(share of mode, entropy, normalised entropy, mean rank distance) of one prompt."""
    return np.array(
        [
            order_share_of_mode(steps),
            order_entropy(steps),
            order_entropy(steps, normalized=True),
            mean_pairwise_rank_distance(steps),
        ]
    )


def _as_correct_mask(correct: ArrayLike, n: int) -> np.ndarray:
    mask = _to_numpy(correct)
    if mask.shape != (n,):
        raise ValueError(f"a correct mask must have shape ({n},) like its prompt, got {mask.shape}")
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise ValueError("a correct mask must be boolean (or 0/1)")
        mask = mask.astype(bool)
    return mask


def locking_summary(
    per_prompt_reveal_steps: Sequence[ArrayLike],
    per_prompt_correct: Sequence[ArrayLike] | None = None,
) -> LockingSummary:
    """Means over prompts of :func:`order_share_of_mode`, :func:`order_entropy` (raw and
    normalised) and :func:`mean_pairwise_rank_distance`, over all samples of each prompt.

    With ``per_prompt_correct`` ((n,) boolean masks), the ``correct_*`` entries are the same
    means over correct samples only, for prompts with at least two correct samples (locking is
    undefined for fewer); ``num_prompts_correct`` says how many prompts that is, and the
    ``correct_*`` entries are None when it is 0. A (B, G, L) array works as the sequence."""
    if len(per_prompt_reveal_steps) == 0:
        raise ValueError("need at least one prompt")
    if per_prompt_correct is not None and len(per_prompt_correct) != len(per_prompt_reveal_steps):
        raise ValueError(
            f"per_prompt_correct ({len(per_prompt_correct)} prompts) and per_prompt_reveal_steps "
            f"({len(per_prompt_reveal_steps)}) must have the same length"
        )
    all_rows: list[np.ndarray] = []  # (4,) each: the metrics of one prompt
    correct_rows: list[np.ndarray] = []
    for b, raw in enumerate(per_prompt_reveal_steps):
        steps = as_reveal_steps(raw)  # (n, L)
        all_rows.append(_prompt_metrics(steps))
        if per_prompt_correct is not None:
            mask = _as_correct_mask(per_prompt_correct[b], steps.shape[0])  # (n,)
            if mask.sum() >= 2:
                correct_rows.append(_prompt_metrics(steps[mask]))
    share, entropy, entropy_norm, distance = np.mean(all_rows, axis=0).tolist()
    correct = np.mean(correct_rows, axis=0).tolist() if correct_rows else [None] * 4
    return LockingSummary(
        num_prompts=len(all_rows),
        order_share_of_mode=share,
        order_entropy=entropy,
        order_entropy_normalized=entropy_norm,
        mean_pairwise_rank_distance=distance,
        num_prompts_correct=len(correct_rows),
        correct_order_share_of_mode=correct[0],
        correct_order_entropy=correct[1],
        correct_order_entropy_normalized=correct[2],
        correct_mean_pairwise_rank_distance=correct[3],
    )
