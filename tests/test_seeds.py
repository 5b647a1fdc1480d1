"""Seed-pooled pass@k differences (trafl.evaluation.seeds)."""

from __future__ import annotations

import numpy as np
import pytest

from trafl.evaluation import paired_difference_ci, pass_at_k_curve
from trafl.evaluation.seeds import pooled_difference

KS = [1, 2, 4, 8]


def test_one_seed_is_the_paired_comparison():
    m, b = [3, 0, 8, 5, 1], [1, 0, 6, 5, 2]
    pooled = pooled_difference([m], [b], 8, 8, KS, num_resamples=500, seed=3)
    paired = paired_difference_ci(m, 8, b, 8, KS, num_resamples=500, seed=3)
    for d in pooled:
        diff, lo, hi = paired[d.k]
        assert d.diff == pytest.approx(diff) and (d.lo, d.hi) == pytest.approx((lo, hi))
        assert d.seed_min == d.seed_max == pytest.approx(diff) and d.num_seeds == 1


def test_pooled_point_is_the_mean_of_per_seed_differences_and_spread_is_their_range():
    rng = np.random.default_rng(0)
    seeds = [(rng.integers(0, 9, 20).tolist(), rng.integers(0, 9, 20).tolist()) for _ in range(3)]
    pooled = pooled_difference([s[0] for s in seeds], [s[1] for s in seeds], 8, 8, KS)
    for d in pooled:
        per_seed = [
            pass_at_k_curve(m, 8, [d.k])[d.k] - pass_at_k_curve(b, 8, [d.k])[d.k] for m, b in seeds
        ]
        assert d.diff == pytest.approx(np.mean(per_seed))
        assert (d.seed_min, d.seed_max) == pytest.approx((min(per_seed), max(per_seed)))
        assert d.lo <= d.diff <= d.hi and d.num_seeds == 3


def test_a_uniform_gain_has_an_interval_above_zero():
    base = [[2, 3, 1, 4] * 10] * 2
    better = [[4, 5, 3, 6] * 10] * 2
    assert all(d.lo > 0 for d in pooled_difference(better, base, 8, 8, [1, 2, 4]))


def test_mismatched_seeds_or_problems_are_errors():
    with pytest.raises(ValueError, match="same number"):
        pooled_difference([[1, 2]], [[1, 2], [1, 2]], 4, 4, [1])
    with pytest.raises(ValueError, match="same problems"):
        pooled_difference([[1, 2, 3]], [[1, 2]], 4, 4, [1])
