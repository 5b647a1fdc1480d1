"""Evaluation metrics against brute force and hand-computed answers."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import numpy as np
import pytest
import torch

from trafl.evaluation import (
    bootstrap_ci,
    coverage_at_k,
    coverage_summary,
    distinct_correct,
    expected_distinct_at_k,
    locking_summary,
    mean_pairwise_rank_distance,
    mean_pass_at_k,
    order_entropy,
    order_share_of_mode,
    pass_at_k,
    pass_at_k_curve,
    pass_at_k_matrix,
    power_of_two_ks,
    reveal_ranks,
    solution_concentration,
    solution_coverage,
)

# ---------------------------------------------------------------------------------------------
# pass@k


def brute_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """Share of the k-subsets of n samples (the first c correct) holding a correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(min(s) < c for s in subsets), len(subsets))


@pytest.mark.parametrize("n", range(1, 11))
def test_pass_at_k_equals_brute_force_over_subsets(n):
    for c in range(n + 1):
        exact = [float(brute_pass_at_k(n, c, k)) for k in range(1, n + 1)]
        got = [pass_at_k(n, c, k) for k in range(1, n + 1)]
        np.testing.assert_allclose(got, exact, rtol=1e-12, atol=1e-15)
        matrix = pass_at_k_matrix([c], n, range(1, n + 1))[0]
        np.testing.assert_allclose(matrix, exact, rtol=1e-12, atol=1e-15)


def test_pass_at_k_matches_exact_binomials_up_to_1024():
    for n in [1, 2, 7, 64, 100, 257, 512, 1000, 1024]:
        cs = sorted({0, 1, 2, n // 7, n // 3, n // 2, n - 2, n - 1, n} & set(range(n + 1)))
        ks = sorted(set(power_of_two_ks(n)) | {max(1, n // 3), max(1, n - 1)})
        matrix = pass_at_k_matrix(cs, n, ks)  # (C, K)
        for row, c in enumerate(cs):
            for col, k in enumerate(ks):
                exact = Fraction(math.comb(n, k) - math.comb(n - c, k), math.comb(n, k))
                got = pass_at_k(n, c, k)
                assert math.isfinite(got) and math.isfinite(matrix[row, col])
                assert abs(got - float(exact)) < 1e-9, (n, c, k)
                assert abs(matrix[row, col] - float(exact)) < 1e-9, (n, c, k)
                if exact > 0:  # relative precision too: -expm1 does not cancel
                    assert abs(got / float(exact) - 1) < 1e-9, (n, c, k)
    assert pass_at_k(1024, 1, 1) == pytest.approx(1 / 1024, rel=1e-13)
    assert pass_at_k(1024, 0, 512) == 0.0
    assert pass_at_k(1024, 513, 512) == 1.0  # n - c < k: exactly one


@pytest.mark.parametrize(
    ("n", "c", "k", "name"),
    [(0, 0, 1, "n=0"), (4, 5, 1, "c=5"), (4, -1, 1, "c=-1"), (4, 1, 0, "k=0"), (4, 1, 5, "k=5")],
)
def test_pass_at_k_rejects_invalid_inputs_naming_them(n, c, k, name):
    with pytest.raises(ValueError, match=name):
        pass_at_k(n, c, k)


def test_pass_at_k_rejects_non_integers_and_accepts_numpy_integers():
    with pytest.raises(ValueError, match="k"):
        pass_at_k(4, 1, 1.5)
    with pytest.raises(ValueError, match="n"):
        pass_at_k(True, 1, 1)
    assert pass_at_k(np.int64(4), np.int32(1), np.int64(2)) == pytest.approx(0.5)


def test_curve_is_mean_over_prompts_and_mean_pass_at_k_agrees():
    counts, n = [0, 1, 5, 16, 3], 16
    ks = power_of_two_ks(n)
    curve = pass_at_k_curve(counts, n, ks)
    assert list(curve) == ks
    for k in ks:
        expected = np.mean([pass_at_k(n, c, k) for c in counts])
        assert curve[k] == pytest.approx(expected, abs=1e-12)
        assert mean_pass_at_k(counts, n, k) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="k"):
        pass_at_k_curve(counts, n, [1, 32])
    with pytest.raises(ValueError, match="correct count"):
        pass_at_k_curve([17], n, [1])
    with pytest.raises(ValueError, match="at least one prompt"):
        pass_at_k_curve([], n, [1])


def test_power_of_two_ks():
    assert power_of_two_ks(1) == [1]
    assert power_of_two_ks(8) == [1, 2, 4, 8]
    assert power_of_two_ks(10) == [1, 2, 4, 8, 10]
    assert power_of_two_ks(1024)[-2:] == [512, 1024]
    with pytest.raises(ValueError, match="n"):
        power_of_two_ks(0)


def random_counts(num_prompts: int, n: int, seed: int) -> list[int]:
    """Correct counts of prompts of varied difficulty (some never solved)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.5, 1.5, size=num_prompts) * (rng.random(num_prompts) > 0.2)
    return rng.binomial(n, p).tolist()


def test_bootstrap_ci_contains_estimate_shrinks_and_is_deterministic():
    n = 64
    ks = power_of_two_ks(n)  # 7 budgets
    widths = {}
    for num_prompts in (30, 300):
        counts = random_counts(num_prompts, n, seed=num_prompts)
        point = pass_at_k_curve(counts, n, ks)
        ci = bootstrap_ci(counts, n, ks, num_resamples=1000, seed=3)
        assert ci == bootstrap_ci(counts, n, ks, num_resamples=1000, seed=3)
        assert ci != bootstrap_ci(counts, n, ks, num_resamples=1000, seed=4)
        for k in ks:
            assert ci[k][0] <= point[k] <= ci[k][1], (num_prompts, k)
        widths[num_prompts] = np.array([ci[k][1] - ci[k][0] for k in ks])
    assert (widths[300] < widths[30]).all()
    assert (widths[300] > 0).all()


def test_bootstrap_ci_width_matches_the_normal_approximation():
    counts, n = random_counts(300, 64, seed=1), 64
    per_prompt = pass_at_k_matrix(counts, n, [1, 8])  # (B, 2)
    ci = bootstrap_ci(counts, n, [1, 8], num_resamples=4000, level=0.95, seed=0)
    for col, k in enumerate([1, 8]):
        normal_width = 2 * 1.96 * per_prompt[:, col].std() / np.sqrt(len(counts))
        assert ci[k][1] - ci[k][0] == pytest.approx(normal_width, rel=0.1)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(counts, n, [1], level=1.0)
    with pytest.raises(ValueError, match="num_resamples"):
        bootstrap_ci(counts, n, [1], num_resamples=0)


# ---------------------------------------------------------------------------------------------
# coverage


def brute_distinct_at_k(keys: list[str | None], k: int) -> Fraction:
    subsets = list(itertools.combinations(keys, k))
    return Fraction(sum(distinct_correct(s) for s in subsets), len(subsets))


def test_expected_distinct_at_k_equals_brute_force_over_subsets():
    rng = random.Random(0)
    cases = [["a", "a", "b", None, "c", "a"], [None] * 4, ["x"] * 5, ["a", "b", "c"]]
    cases += [[rng.choice(["a", "b", "c", "d", None]) for _ in range(n)] for n in range(1, 11)]
    for keys in cases:
        n = len(keys)
        got = expected_distinct_at_k(keys, range(1, n + 1))
        exact = [float(brute_distinct_at_k(keys, k)) for k in range(1, n + 1)]
        np.testing.assert_allclose(got, exact, rtol=1e-12, atol=1e-12)
        assert got[-1] == pytest.approx(distinct_correct(keys))  # k = n: the distinct count


def test_coverage_at_k_means_over_prompts_and_known_sets():
    keys = [["a", "a", "b", None], ["x", None, None, None], [None] * 4]
    solutions = [{"a", "b", "c", "d"}, None, {"z"}]
    out = coverage_at_k(keys, solutions, [1, 2, 4])
    for k in [1, 2, 4]:
        per_prompt = [float(brute_distinct_at_k(ks, k)) for ks in keys]
        assert out["distinct"][k] == pytest.approx(np.mean(per_prompt))
        assert out["coverage"][k] == pytest.approx((per_prompt[0] / 4 + per_prompt[2] / 1) / 2)
    assert out["distinct"][4] == pytest.approx((2 + 1 + 0) / 3)
    assert out["num_prompts_with_solution_set"] == 2
    assert coverage_at_k(keys, [None] * 3, [1])["coverage"] is None
    with pytest.raises(ValueError, match="solution set"):
        coverage_at_k([["a", "q"]], [{"a"}], [1])
    with pytest.raises(ValueError, match="k"):
        coverage_at_k(keys, solutions, [5])  # more than the 4 samples


def test_distinct_coverage_and_concentration():
    keys = ["a", None, "b", "a", "a", None]
    assert distinct_correct(keys) == 2
    assert distinct_correct([None, None]) == 0
    assert solution_coverage(keys, {"a", "b", "c", "d"}) == 0.5
    assert solution_coverage(keys, None) is None
    with pytest.raises(ValueError, match="solution set"):
        solution_coverage(keys, {"a"})  # "b" is correct but unknown to the task: a task bug
    with pytest.raises(ValueError, match="empty"):
        solution_coverage(keys, set())
    assert solution_concentration(keys) == 0.75
    assert solution_concentration([None]) is None


def test_coverage_summary():
    keys = [["a", None, "b", "a"], ["x", "x", "x", "x"], [None] * 4]
    solutions = [{"a", "b", "c"}, None, {"z", "y"}]
    out = coverage_summary(keys, solutions)
    assert out["num_prompts"] == 3
    assert out["mean_distinct_correct"] == pytest.approx((2 + 1 + 0) / 3)
    assert out["num_prompts_with_solution_set"] == 2
    assert out["mean_coverage"] == pytest.approx((2 / 3 + 0) / 2)
    assert out["num_prompts_with_correct"] == 2  # the third prompt has no correct sample
    assert out["mean_solution_concentration"] == pytest.approx((2 / 3 + 1) / 2)
    empty = coverage_summary([[None]], [None])
    assert empty["mean_coverage"] is None and empty["mean_solution_concentration"] is None
    with pytest.raises(ValueError, match="same length"):
        coverage_summary(keys, solutions[:2])


# ---------------------------------------------------------------------------------------------
# trajectory locking

PERMS3 = np.array(list(itertools.permutations(range(3))))  # (6, 3) every reveal order of L=3


def test_identical_orders_are_fully_locked():
    steps = np.tile([2, 0, 3, 1], (5, 1))  # (5, 4)
    assert order_share_of_mode(steps) == 1.0
    assert order_entropy(steps) == 0.0
    assert order_entropy(steps, normalized=True) == 0.0
    assert mean_pairwise_rank_distance(steps) == 0.0


def test_all_distinct_orders():
    # Footrule from one permutation of 3 to the five others (right-invariance: the same from
    # any of them): two adjacent swaps cost 2; the far swap (0 2) and both 3-cycles cost 4.
    # Mean over pairs = (2 + 2 + 4 + 4 + 4) / 5 = 3.2, and the maximum floor(9/2) is 4.
    assert order_share_of_mode(PERMS3) == pytest.approx(1 / 6)
    assert order_entropy(PERMS3) == pytest.approx(math.log(6))
    assert order_entropy(PERMS3, normalized=True) == pytest.approx(1.0)
    assert mean_pairwise_rank_distance(PERMS3) == pytest.approx(3.2 / 4)


@pytest.mark.parametrize("length", [2, 3, 4, 5, 8])
def test_reversed_pair_is_at_distance_one(length):
    steps = np.stack([np.arange(length), np.arange(length)[::-1]])  # (2, L)
    assert mean_pairwise_rank_distance(steps) == pytest.approx(1.0)
    assert order_entropy(steps, normalized=True) == pytest.approx(1.0)


def test_ties_get_average_ranks():
    np.testing.assert_array_equal(reveal_ranks([[2, 0, 2, 1]]), [[2.5, 0.0, 2.5, 1.0]])
    np.testing.assert_array_equal(reveal_ranks([[5, 5, 7, 9]]), [[0.5, 0.5, 2.0, 3.0]])
    np.testing.assert_array_equal(reveal_ranks([[3, 3, 3]]), [[1.0, 1.0, 1.0]])
    # Two positions revealed together vs one at a time: footrule 0.5 + 0.5 over floor(16/2).
    assert mean_pairwise_rank_distance([[0, 0, 1, 2], [0, 1, 2, 3]]) == pytest.approx(1 / 8)
    # Blocks revealed in opposite halves: the tied reversal is still the maximal distance.
    assert mean_pairwise_rank_distance([[0, 0, 1, 1], [1, 1, 0, 0]]) == pytest.approx(1.0)
    # Same tie structure, same order: one path.
    assert order_share_of_mode([[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0]]) == pytest.approx(2 / 3)


def test_rank_distance_equals_pairwise_brute_force_and_accepts_torch():
    rng = np.random.default_rng(0)
    for n, length in [(1, 4), (2, 1), (7, 6), (12, 9)]:
        steps = rng.integers(0, 4, size=(n, length))  # (n, L) with many ties
        ranks = reveal_ranks(steps)
        assert np.allclose(ranks.sum(axis=1), length * (length - 1) / 2)
        pairs = [
            np.abs(ranks[i] - ranks[j]).sum() / (length * length // 2)
            for i, j in itertools.combinations(range(n), 2)
            if length > 1
        ]
        expected = float(np.mean(pairs)) if pairs else 0.0
        got = mean_pairwise_rank_distance(steps)
        assert got == pytest.approx(expected, abs=1e-12)
        assert 0.0 <= got <= 1.0
        assert mean_pairwise_rank_distance(torch.as_tensor(steps)) == got
        assert order_entropy(torch.as_tensor(steps)) == order_entropy(steps)
    with pytest.raises(ValueError, match="shape"):
        order_entropy(np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="integers"):
        order_entropy(np.zeros((2, 3)))


def test_locking_summary_restricted_to_correct_samples():
    locked = np.tile([0, 1, 2], (4, 1))  # (4, 3) one path
    spread = np.concatenate([PERMS3[:4], PERMS3[:1]])  # (5, 3) four paths, the first twice
    prompts = [torch.as_tensor(locked), spread, PERMS3]
    correct = [
        np.array([True, True, False, False]),  # 2 correct: contributes
        [0, 1, 1, 0, 1],  # 3 correct (rows 1, 2, 4 = three distinct orders): contributes
        torch.tensor([True, False, False, False, False, False]),  # 1 correct: skipped
    ]
    out = locking_summary(prompts, correct)
    assert out["num_prompts"] == 3
    assert out["order_share_of_mode"] == pytest.approx((1 + 2 / 5 + 1 / 6) / 3)
    assert out["order_entropy_normalized"] == pytest.approx(
        (0 + order_entropy(spread, normalized=True) + 1) / 3
    )
    assert out["mean_pairwise_rank_distance"] == pytest.approx(
        (0 + mean_pairwise_rank_distance(spread) + 0.8) / 3
    )
    assert out["num_prompts_correct"] == 2
    assert out["correct_order_share_of_mode"] == pytest.approx((1 + 1 / 3) / 2)
    assert out["correct_order_entropy"] == pytest.approx((0 + math.log(3)) / 2)
    assert out["correct_order_entropy_normalized"] == pytest.approx((0 + 1) / 2)
    restricted = mean_pairwise_rank_distance(spread[[1, 2, 4]])
    assert out["correct_mean_pairwise_rank_distance"] == pytest.approx(restricted / 2)

    no_masks = locking_summary(np.stack([locked, locked]))  # a (B, G, L) array works too
    assert no_masks["num_prompts"] == 2 and no_masks["num_prompts_correct"] == 0
    assert no_masks["correct_order_entropy"] is None
    none_correct = locking_summary([locked], [np.zeros(4, dtype=bool)])
    assert none_correct["num_prompts_correct"] == 0
    assert none_correct["correct_mean_pairwise_rank_distance"] is None
    with pytest.raises(ValueError, match="shape"):
        locking_summary([locked], [np.ones(3, dtype=bool)])
    with pytest.raises(ValueError, match="boolean"):
        locking_summary([locked], [np.array([0.5, 1, 0, 0])])


def test_paired_difference_ci_cancels_prompt_difficulty():
    from trafl.evaluation import paired_difference_ci

    counts = [0, 1, 5, 8, 2, 7, 3, 4] * 5
    same = paired_difference_ci(counts, 8, counts, 8, [1, 4])
    assert all(v == (0.0, 0.0, 0.0) for v in same.values())
    better = [min(8, c + 1) for c in counts]  # one more correct sample on every prompt
    diff = paired_difference_ci(better, 8, counts, 8, [1, 4])
    for d, lo, hi in diff.values():
        assert 0 < lo <= d <= hi
