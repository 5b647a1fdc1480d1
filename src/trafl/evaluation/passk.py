"""pass@k across sampling budgets: the unbiased estimator, its curve, and bootstrap intervals.

With ``n`` samples of a prompt of which ``c`` are correct, the unbiased estimator of the
probability that at least one of ``k`` fresh samples is correct (Chen et al. 2021, "Evaluating
Large Language Models Trained on Code", eq. 1) is

    pass@k = 1 - C(n - c, k) / C(n, k)
           = 1 - prod_{i = n-c+1}^{n} (1 - k / i)          (n - c >= k)

and exactly 1 when ``n - c < k`` (every k-subset holds a correct sample). The binomials overflow
floats long before n = 1024; the product does not, and summing its logarithms (``log1p``) and
taking ``-expm1`` keeps full relative precision when pass@k is tiny.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np


def as_int(name: str, value: object) -> int:
    """``value`` as a Python int (numpy integers accepted), else a ValueError naming it."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got the bool {value}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def check_ks(n: int, ks: Sequence[int]) -> list[int]:
    """``ks`` as Python ints, each a valid budget ``1 <= k <= n``, else a ValueError."""
    out = [as_int("k", k) for k in ks]
    if not out:
        raise ValueError("ks must not be empty")
    bad = [k for k in out if not 1 <= k <= n]
    if bad:
        raise ValueError(f"every k must satisfy 1 <= k <= n={n}, got {bad}")
    return out


def _check_counts(correct_counts: Sequence[int], n: int) -> np.ndarray:
    counts = np.array([as_int("correct count", c) for c in correct_counts], dtype=np.int64)
    if counts.size == 0:
        raise ValueError("correct_counts must hold at least one prompt")
    if (counts < 0).any() or (counts > n).any():
        raise ValueError(f"every correct count must be in [0, n={n}], got {counts.tolist()}")
    return counts


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples with ``c`` correct: ``1 - C(n-c, k) / C(n, k)``.

    Computed as ``-expm1(sum_{i=n-c+1}^{n} log1p(-k/i))`` (the product form, in logs): no
    overflow for any n and relative precision even when the result is tiny. Exactly 1.0 when
    ``n - c < k``. Raises ValueError unless ``n >= 1``, ``0 <= c <= n`` and ``1 <= k <= n``."""
    n, c, k = as_int("n", n), as_int("c", c), as_int("k", k)
    if n < 1 or not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need n >= 1, 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    i = np.arange(n - c + 1, n + 1, dtype=np.float64)  # every i > k here, so log1p is finite
    return float(-np.expm1(np.log1p(-k / i).sum()))


def pass_at_k_matrix(correct_counts: Sequence[int], n: int, ks: Sequence[int]) -> np.ndarray:
    """pass@k of every prompt at every k: a (num_prompts, len(ks)) float64 array.

    Vectorised form of :func:`pass_at_k`: for each k, the log-terms ``log1p(-k/i)`` for
    ``i = n, n-1, ..., 1`` are cumulated once, and a prompt with ``c`` correct reads the sum of
    the first ``c`` of them."""
    n = as_int("n", n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ks = check_ks(n, ks)
    counts = _check_counts(correct_counts, n)
    i_desc = np.arange(n, 0, -1, dtype=np.float64)  # (n,) i = n, n-1, ..., 1
    out = np.empty((counts.size, len(ks)), dtype=np.float64)
    for col, k in enumerate(ks):
        terms = np.log1p(-k / np.maximum(i_desc, k + 1))  # (n,) entries with i <= k never read
        cum = np.concatenate([[0.0], np.cumsum(terms)])  # (n+1,) cum[c] = sum of first c terms
        out[:, col] = np.where(n - counts < k, 1.0, -np.expm1(cum[counts]))
    return out


def pass_at_k_curve(correct_counts: Sequence[int], n: int, ks: Sequence[int]) -> dict[int, float]:
    """Mean over prompts of pass@k, for every k in ``ks``: ``{k: mean_b pass@k(n, c_b)}``.
    Every prompt has ``n`` samples; ``correct_counts[b]`` of them are correct."""
    means = pass_at_k_matrix(correct_counts, n, ks).mean(axis=0)  # (K,)
    return {int(k): float(m) for k, m in zip(ks, means, strict=True)}


def mean_pass_at_k(correct_counts: Sequence[int], n: int, k: int) -> float:
    """pass@k averaged over prompts at a single k (``pass_at_k_curve`` at one budget)."""
    return pass_at_k_curve(correct_counts, n, [k])[int(k)]


def bootstrap_ci(
    correct_counts: Sequence[int],
    n: int,
    ks: Sequence[int],
    num_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[int, tuple[float, float]]:
    """Percentile-bootstrap confidence interval of the mean pass@k, resampling prompts.

    Each resample draws ``num_prompts`` prompts with replacement and recomputes the mean
    pass@k; the interval is the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of those
    means. The variability captured is that of the prompt set (the per-prompt estimator is
    already unbiased over samples). Deterministic for a given ``seed``.

    Vectorised: the per-prompt matrix is computed once, and each resample is a multinomial
    count vector ``w`` (how often each prompt was drawn, the same law as drawing indices), so
    all resampled means are one product ``W @ M / num_prompts``."""
    num_resamples = as_int("num_resamples", num_resamples)
    if num_resamples < 1:
        raise ValueError(f"num_resamples must be >= 1, got {num_resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    per_prompt = pass_at_k_matrix(correct_counts, n, ks)  # (B, K)
    lo, hi = _bootstrap_interval(per_prompt, num_resamples, level, seed)  # (K,) each
    return {int(k): (float(a), float(b)) for k, a, b in zip(ks, lo, hi, strict=True)}


def _bootstrap_interval(
    per_prompt: np.ndarray, num_resamples: int, level: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the column means of ``per_prompt`` (B, K) under resampling of
    its rows; each resample is a multinomial count vector, so all means are one product."""
    num_prompts = per_prompt.shape[0]
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(num_prompts, np.full(num_prompts, 1.0 / num_prompts), num_resamples)
    means = draws @ per_prompt / num_prompts  # (R, K)
    lo, hi = np.quantile(means, [(1.0 - level) / 2.0, (1.0 + level) / 2.0], axis=0)
    return lo, hi


def paired_difference_ci(
    counts_a: Sequence[int],
    n_a: int,
    counts_b: Sequence[int],
    n_b: int,
    ks: Sequence[int],
    num_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[int, tuple[float, float, float]]:
    """Mean pass@k of A minus B on the SAME prompts, with a paired percentile-bootstrap interval
    (prompts resampled jointly, so prompt difficulty cancels): {k: (diff, lo, hi)}."""
    if len(counts_a) != len(counts_b):
        raise ValueError(
            f"paired comparison needs the same prompts: {len(counts_a)} vs {len(counts_b)}"
        )
    diff = pass_at_k_matrix(counts_a, n_a, ks) - pass_at_k_matrix(counts_b, n_b, ks)  # (B, K)
    lo, hi = _bootstrap_interval(diff, num_resamples, level, seed)
    point = diff.mean(axis=0)
    return {
        int(k): (float(d), float(a), float(b)) for k, d, a, b in zip(ks, point, lo, hi, strict=True)
    }


def power_of_two_ks(n: int) -> list[int]:
    """The sampling budgets ``1, 2, 4, ...`` up to ``n``, plus ``n`` itself when it is not a
    power of two (so the largest budget the samples allow is always reported)."""
    n = as_int("n", n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ks = [1 << e for e in range(n.bit_length()) if 1 << e <= n]
    if ks[-1] != n:
        ks.append(n)
    return ks
