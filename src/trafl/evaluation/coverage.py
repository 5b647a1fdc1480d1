"""Solution coverage: how many *different* correct solutions the samples of a prompt find.

Inputs per prompt are its samples' solution keys (``Task.solution_key``: a canonical key for a
correct completion, ``None`` for an incorrect one) and, where the task can enumerate it, the
full solution set (``Task.all_solutions``; ``None`` when unknown). Equal keys are the same
solution. A correct key outside the known solution set means the task's ``solution_key`` and
``all_solutions`` disagree: that is a bug, reported as a ValueError rather than counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TypedDict

import numpy as np

from trafl.evaluation.passk import as_int, check_ks, pass_at_k_matrix

Keys = Sequence[str | None]


class CoverageSummary(TypedDict):
    num_prompts: int
    mean_distinct_correct: float
    num_prompts_with_solution_set: int
    mean_coverage: float | None  # None when no prompt's solution set is known
    num_prompts_with_correct: int
    mean_solution_concentration: float | None  # None when no prompt has a correct sample


class CoverageAtK(TypedDict):
    distinct: dict[int, float]
    coverage: dict[int, float] | None  # None when no prompt's solution set is known
    num_prompts_with_solution_set: int


def _found(keys: Keys) -> Counter[str]:
    """Occurrences of each correct solution among the samples."""
    return Counter(k for k in keys if k is not None)


def _check_known(found: Counter[str] | set[str], all_solutions: set[str]) -> None:
    if not all_solutions:
        raise ValueError("a known solution set must not be empty (give None when unknown)")
    unknown = set(found) - all_solutions
    if unknown:
        raise ValueError(
            f"correct keys not in the task's solution set (solution_key and all_solutions "
            f"disagree): {sorted(unknown)[:5]}"
        )


def _check_aligned(
    per_prompt_keys: Sequence[Keys], per_prompt_solutions: Sequence[set[str] | None]
) -> None:
    if len(per_prompt_keys) == 0:
        raise ValueError("need at least one prompt")
    if len(per_prompt_keys) != len(per_prompt_solutions):
        raise ValueError(
            f"per_prompt_keys ({len(per_prompt_keys)} prompts) and per_prompt_solutions "
            f"({len(per_prompt_solutions)}) must have the same length"
        )


def distinct_correct(keys: Keys) -> int:
    """Number of distinct correct solutions among a prompt's samples: ``|{key} - {None}|``."""
    return len(_found(keys))


def solution_counts(per_prompt_keys: Sequence[Keys]) -> list[dict[str, int]]:
    """Per prompt, how often each correct solution occurs among its samples (``{key: count}``,
    most frequent first; empty when none is correct): eval.json's ``solution_counts``, from
    which the target instrument reads the base's class frequencies."""
    return [dict(_found(keys).most_common()) for keys in per_prompt_keys]


def solution_coverage(keys: Keys, all_solutions: set[str] | None) -> float | None:
    """Share of the prompt's solution set found by its samples:
    ``|distinct correct keys| / |all_solutions|`` (every correct key must lie in the set).
    None when the solution set is unknown."""
    if all_solutions is None:
        return None
    found = _found(keys)
    _check_known(found, all_solutions)
    return len(found) / len(all_solutions)


def solution_concentration(keys: Keys) -> float | None:
    """Share of a prompt's correct samples that are its most frequent correct solution:
    ``max_s m_s / sum_s m_s`` with ``m_s`` the occurrences of solution ``s``. 1 when every
    correct sample is the same solution; None when no sample is correct."""
    found = _found(keys)
    if not found:
        return None
    return max(found.values()) / sum(found.values())


def coverage_summary(
    per_prompt_keys: Sequence[Keys], per_prompt_solutions: Sequence[set[str] | None]
) -> CoverageSummary:
    """Means over prompts of :func:`distinct_correct` (all prompts), :func:`solution_coverage`
    (prompts whose solution set is known) and :func:`solution_concentration` (prompts with at
    least one correct sample), with the number of prompts each mean is over."""
    _check_aligned(per_prompt_keys, per_prompt_solutions)
    distinct = [distinct_correct(keys) for keys in per_prompt_keys]
    coverage = [
        cov
        for keys, sols in zip(per_prompt_keys, per_prompt_solutions, strict=True)
        if (cov := solution_coverage(keys, sols)) is not None
    ]
    concentration = [
        c for keys in per_prompt_keys if (c := solution_concentration(keys)) is not None
    ]
    return CoverageSummary(
        num_prompts=len(per_prompt_keys),
        mean_distinct_correct=float(np.mean(distinct)),
        num_prompts_with_solution_set=len(coverage),
        mean_coverage=float(np.mean(coverage)) if coverage else None,
        num_prompts_with_correct=len(concentration),
        mean_solution_concentration=float(np.mean(concentration)) if concentration else None,
    )


def expected_distinct_at_k(keys: Keys, ks: Sequence[int]) -> np.ndarray:
    """Expected number of distinct correct solutions in a uniformly random size-k subset of the
    prompt's ``n`` samples, for each k: a (len(ks),) float64 array.

    A solution with ``m_s`` occurrences appears in the subset with probability
    ``1 - C(n - m_s, k) / C(n, k)`` (pass@k with ``m_s`` "correct"), so by linearity
    ``E[distinct@k] = sum_s (1 - C(n - m_s, k) / C(n, k))``. Unbiased, unlike using the first k
    samples; at ``k = n`` it is the distinct count itself."""
    n = len(keys)
    ks = check_ks(n, ks)
    found = _found(keys)
    if not found:
        return np.zeros(len(ks), dtype=np.float64)
    return pass_at_k_matrix(list(found.values()), n, ks).sum(axis=0)  # (K,)


def coverage_at_k(
    per_prompt_keys: Sequence[Keys],
    per_prompt_solutions: Sequence[set[str] | None],
    ks: Sequence[int],
) -> CoverageAtK:
    """Expected distinct correct solutions and expected coverage at sampling budget k.

    Per prompt, ``E[distinct@k]`` is :func:`expected_distinct_at_k` and, where the solution set
    is known, ``E[coverage@k] = E[distinct@k] / |all_solutions|``. Returned as means over
    prompts (coverage over prompts with a known set), keyed by k. Every prompt needs at least
    ``max(ks)`` samples."""
    _check_aligned(per_prompt_keys, per_prompt_solutions)
    ks = [as_int("k", k) for k in ks]
    distinct: list[np.ndarray] = []  # (K,) each
    coverage: list[np.ndarray] = []  # (K,) each, prompts with a known set
    for keys, sols in zip(per_prompt_keys, per_prompt_solutions, strict=True):
        expected = expected_distinct_at_k(keys, ks)  # (K,)
        distinct.append(expected)
        if sols is not None:
            _check_known(_found(keys), sols)
            coverage.append(expected / len(sols))
    mean_distinct = np.mean(distinct, axis=0)  # (K,)
    mean_coverage = np.mean(coverage, axis=0) if coverage else None  # (K,)
    return CoverageAtK(
        distinct={k: float(v) for k, v in zip(ks, mean_distinct, strict=True)},
        coverage=(
            None
            if mean_coverage is None
            else {k: float(v) for k, v in zip(ks, mean_coverage, strict=True)}
        ),
        num_prompts_with_solution_set=len(coverage),
    )
