"""Several seeds of the same comparison: pooled pass@k differences with intervals.

Each seed ``s`` evaluates a method and the base on the same problems (``correct_counts`` in
problem order). Per problem and k, the difference of the unbiased pass@k estimates is averaged
over seeds, d_b(k) = mean_s [pass@k(method, s, b) - pass@k(base, s, b)]; the point estimate is
mean_b d_b(k) and its interval a percentile bootstrap over problems (rows resampled jointly,
so problem difficulty cancels and the seed-to-seed variation of each problem stays inside d_b).
The spread of the per-seed means (min, max) is reported beside it: with 3 seeds that is a
description of the runs, not an interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trafl.evaluation.passk import _bootstrap_interval, pass_at_k_matrix


@dataclass
class PooledDifference:
    k: int
    diff: float  # mean over problems of the seed-averaged difference
    lo: float  # bootstrap interval over problems
    hi: float
    seed_min: float  # smallest / largest per-seed mean difference
    seed_max: float
    num_seeds: int


def pooled_difference(
    method_counts: Sequence[Sequence[int]],  # per seed: correct samples per problem
    base_counts: Sequence[Sequence[int]],  # per seed, the same problems in the same order
    n_method: int,
    n_base: int,
    ks: Sequence[int],
    num_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> list[PooledDifference]:
    """Seed-pooled pass@k(method) - pass@k(base) with a paired bootstrap over problems."""
    if len(method_counts) != len(base_counts) or not method_counts:
        raise ValueError(
            f"need the same number (>= 1) of method and base seeds, got "
            f"{len(method_counts)} and {len(base_counts)}"
        )
    diffs = []
    for m, b in zip(method_counts, base_counts, strict=True):
        if len(m) != len(b):
            raise ValueError(f"paired seeds need the same problems: {len(m)} vs {len(b)}")
        diffs.append(pass_at_k_matrix(m, n_method, ks) - pass_at_k_matrix(b, n_base, ks))
    if len({d.shape for d in diffs}) != 1:
        raise ValueError("every seed must be evaluated on the same number of problems")
    stacked = np.stack(diffs)  # (S, B, K)
    per_problem = stacked.mean(axis=0)  # (B, K)
    lo, hi = _bootstrap_interval(per_problem, num_resamples, level, seed)
    per_seed = stacked.mean(axis=1)  # (S, K)
    return [
        PooledDifference(
            int(k),
            float(per_problem[:, i].mean()),
            float(lo[i]),
            float(hi[i]),
            float(per_seed[:, i].min()),
            float(per_seed[:, i].max()),
            len(diffs),
        )
        for i, k in enumerate(ks)
    ]
