"""Evaluation metrics for the coverage claim: pass@k across budgets, solution coverage, and the
locking of denoising paths. Pure functions over plain Python / numpy / torch inputs: no models,
no sampling.

Four modules are imported by their own path: ``trafl.evaluation.plots`` (every PNG figure,
matplotlib, so that ``import trafl.evaluation`` stays light), ``trafl.evaluation.report`` and
``trafl.evaluation.seed_report`` (every ``eval.json`` -> Markdown rendering, returned as strings;
the second for several seeds per method) and ``trafl.evaluation.target`` (the
target instrument: a run against the reward tilt of its base, with its config section)."""

from trafl.evaluation.coverage import (
    CoverageAtK,
    CoverageSummary,
    coverage_at_k,
    coverage_summary,
    distinct_correct,
    expected_distinct_at_k,
    solution_concentration,
    solution_counts,
    solution_coverage,
)
from trafl.evaluation.locking import (
    LockingSummary,
    locking_summary,
    mean_pairwise_rank_distance,
    order_entropy,
    order_share_of_mode,
    reveal_ranks,
)
from trafl.evaluation.passk import (
    bootstrap_ci,
    mean_pass_at_k,
    paired_difference_ci,
    pass_at_k,
    pass_at_k_curve,
    pass_at_k_matrix,
    power_of_two_ks,
)

__all__ = [
    "CoverageAtK",
    "CoverageSummary",
    "LockingSummary",
    "bootstrap_ci",
    "coverage_at_k",
    "coverage_summary",
    "distinct_correct",
    "expected_distinct_at_k",
    "locking_summary",
    "mean_pairwise_rank_distance",
    "mean_pass_at_k",
    "paired_difference_ci",
    "order_entropy",
    "order_share_of_mode",
    "pass_at_k",
    "pass_at_k_curve",
    "pass_at_k_matrix",
    "power_of_two_ks",
    "reveal_ranks",
    "solution_concentration",
    "solution_counts",
    "solution_coverage",
]
