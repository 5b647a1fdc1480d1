"""The target instrument: how close a trained policy came to the tilt it was trained towards.

TraFL's target is pi*(y|x) = pi_ref(y|x) exp(b r(x, y)) / Z(x). With a 0/1 reward and the base
model's success rate p on a problem, the tilt's success rate is

    p*(p, b) = p e^b / (p e^b + 1 - p) = sigmoid(logit p + b),                       (1)

one shift b of the log-odds, the same on every problem; a tilt with b >= 0 never lowers a
success rate, and it keeps p = 0 at 0 and p = 1 at 1 (it reweights, it cannot create mass).
Given correct, the tilt's solution is drawn from the base's conditional class frequencies q_c
(every correct y is reweighted by the same e^b), so the expected number of distinct correct
classes in k samples is

    E[distinct@k] = sum_c [1 - (1 - p* q_c)^k].                                         (2)

At pi*, the sequence log-ratio D = log pi_theta(y|x) - log pi_ref(y|x) = b r - log Z(x), so
within a prompt mean D(success) - mean D(failure) = b exactly (the balance gap).

Everything here compares a run's evaluation with (1), (2) and the balance gap computed from the
base's evaluation on the same problems: pure functions of counts (c successes of n samples per
problem; letters: B problems, N samples, K budgets), numpy only, no model. p is always the
base's empirical rate c/n, so a problem the base never (always) solved is predicted at 0 (1);
classes the base never sampled get no mass in (2), which therefore undercounts what the exact
tilt would find when the base's n is small. ``trafl eval``'s ``target`` section calls
:func:`target_report` (schema in docs/EVAL.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BOUND = 50.0  # b_hat is searched in [-BOUND, BOUND] nats (p* saturates long before)
CONTINUITY = 0.5  # added to successes and failures in the per-problem empirical logit
ALPHA = 0.05  # significance level of the tilt-violation tests
NOISE_DRAWS = 500  # parametric-bootstrap redraws for the noise floor of the shift spread


@dataclass
class TargetConfig:
    """``trafl eval``'s ``target`` section: compare the evaluated model with the tilt of a base.

    - ``base``: the base model's eval.json (or its folder), evaluated on the same problems at
      the same lengths; None turns the instrument off.
    - ``tilt``: the sequence tilt b; None reads it from the evaluated run folder's config.yaml
      (TraFL: :func:`trafl.objectives.sequence_tilt` at the run's group size and rollout
      length); for another objective or a plain model only the fitted shift b_hat is reported.
    - ``reference``: pi_ref's model path for the balance gap (every evaluated sample scored
      under the evaluated model and the reference with ``mask_mean``, positions ``all``, in
      sequence nats); None skips it. ``balance_masks``: K mask draws for that estimate (even:
      complementary pairs; training's estimator uses 4, the evaluation affords more).
    """

    base: str | None = None
    tilt: float | None = None
    reference: str | None = None
    balance_masks: int = 8

    def __post_init__(self) -> None:
        if self.balance_masks < 2 or self.balance_masks % 2:
            raise ValueError(
                "target.balance_masks must be an even number >= 2 (mask_mean draws complementary "
                f"pairs), got {self.balance_masks}"
            )
        if self.base is None and (self.tilt is not None or self.reference is not None):
            raise ValueError(
                "target.tilt and target.reference need target.base (the base's eval.json on "
                "the same problems): the instrument is off without it"
            )
        if self.tilt is not None and not math.isfinite(self.tilt):
            raise ValueError(f"target.tilt must be a finite number of nats, got {self.tilt}")


def tilted_rate(p: np.ndarray | float, b: float) -> np.ndarray:
    """(1): the success rate of pi_ref exp(b r) / Z for base rate ``p``, shape of ``p``.
    Computed as sigmoid(logit p + b) in log space, so p = 0 stays 0 and p = 1 stays 1."""
    p = np.asarray(p, dtype=np.float64)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("success rates must lie in [0, 1]")
    with np.errstate(divide="ignore"):
        logit = np.log(p) - np.log1p(-p) + b  # -inf at p = 0, +inf at p = 1
    small = np.exp(-np.abs(logit))  # (shape of p) in [0, 1]: no overflow on either side
    return np.where(logit >= 0, 1 / (1 + small), small / (1 + small))


def empirical_logit(c: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """log((c + 1/2) / (n - c + 1/2)) per problem: the logit of the success rate with the
    Haldane-Anscombe continuity correction: finite at c = 0 and c = n, and its bias for the
    logit of a binomial rate is O(1/n^2) instead of O(1/n) (Gart and Zweifel 1967)."""
    c = np.asarray(c, dtype=np.float64)
    return np.log(c + CONTINUITY) - np.log(np.asarray(n, dtype=np.float64) - c + CONTINUITY)


def _counts(c: Sequence[int] | np.ndarray, n: int, what: str) -> np.ndarray:
    c = np.asarray(c, dtype=np.int64)  # (B,)
    if c.ndim != 1 or np.any((c < 0) | (c > n)):
        raise ValueError(f"{what} counts must be a list of integers in [0, {n}]")
    return c


def fit_shift(p_base: np.ndarray, c_run: np.ndarray, n_run: int) -> dict[str, Any]:
    """The single shift b_hat maximising the binomial likelihood of the run's counts under
    p*(p_base, b_hat), over problems with 0 < p_base < 1 (elsewhere p* does not depend on b).

    The log-likelihood is concave in b (a binomial in its natural parameter logit p + b), so
    its maximum is the root of the score S(b) = sum (c - n p*(b)), decreasing in b: bisection
    on [-BOUND, BOUND] finds it to 1e-9. ``se`` = 1 / sqrt(sum n p*(1 - p*)) is the
    asymptotic standard error conditional on the base's rates (the base's own noise is not in
    it). ``at_bound``: the score did not change sign (e.g. the run solved every informative
    problem every time) and b_hat is the bound."""
    use = (p_base > 0) & (p_base < 1)  # (B,)
    if not use.any():
        return {"b_hat": None, "se": None, "at_bound": False, "num_problems": 0}
    p, c = p_base[use], c_run[use]  # (M,), (M,)

    def score(b: float) -> float:
        return float(np.sum(c - n_run * tilted_rate(p, b)))

    lo, hi = -BOUND, BOUND
    if score(lo) <= 0 or score(hi) >= 0:
        b_hat, at_bound = (lo if score(lo) <= 0 else hi), True
    else:
        while hi - lo > 1e-9:
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if score(mid) > 0 else (lo, mid)
        b_hat, at_bound = (lo + hi) / 2, False
    q = tilted_rate(p, b_hat)  # (M,)
    info = float(np.sum(n_run * q * (1 - q)))
    se = 1 / math.sqrt(info) if info > 0 else None
    return {"b_hat": b_hat, "se": se, "at_bound": at_bound, "num_problems": int(use.sum())}


def shift_spread(
    c_base: np.ndarray, n_base: int, c_run: np.ndarray, n_run: int, b_hat: float | None, seed: int
) -> dict[str, Any]:
    """Per-problem shifts logit(p_run) - logit(p_base) (:func:`empirical_logit`, continuity
    correction 1/2) and their spread against the sampling-noise floor.

    Over the problems the fit uses (0 < c_base < n_base): ``std`` is the observed standard
    deviation of the shifts; ``noise_floor_std`` the std they would have if a single tilt
    b_hat held exactly, by a parametric bootstrap of NOISE_DRAWS redraws in which BOTH
    evaluations are binomial draws, the base's at p_base = c_base / n_base and the run's at
    p*(p_base, b_hat), run through the same estimator (the continuity correction's own bias
    is in both); ``noise_floor_q95`` is the 95th percentile of the redrawn std, a one-sided
    test of "one shift explains every problem". ``shifts``: every problem's shift."""
    shifts = empirical_logit(c_run, n_run) - empirical_logit(c_base, n_base)  # (B,)
    use = (c_base > 0) & (c_base < n_base)  # (B,)
    out: dict[str, Any] = {
        "continuity": CONTINUITY,
        "shifts": [float(s) for s in shifts],
        "num_problems": int(use.sum()),
        "mean": None,
        "std": None,
        "noise_floor_std": None,
        "noise_floor_q95": None,
        "noise_draws": NOISE_DRAWS,
    }
    if use.sum() < 2 or b_hat is None:
        return out
    p = c_base[use] / n_base  # (M,)
    rng = np.random.default_rng(seed)
    base_draws = rng.binomial(n_base, p, size=(NOISE_DRAWS, len(p)))  # (R, M)
    run_draws = rng.binomial(n_run, tilted_rate(p, b_hat), size=(NOISE_DRAWS, len(p)))  # (R, M)
    redrawn = empirical_logit(run_draws, n_run) - empirical_logit(base_draws, n_base)  # (R, M)
    floor = redrawn.std(axis=1, ddof=1)  # (R,)
    out.update(
        mean=float(shifts[use].mean()),
        std=float(shifts[use].std(ddof=1)),
        noise_floor_std=float(floor.mean()),
        noise_floor_q95=float(np.quantile(floor, 0.95)),
    )
    return out


def fisher_less(c_run: int, n_run: int, c_base: int, n_base: int) -> float:
    """One-sided Fisher exact test that the run's success rate is below the base's: with the
    margins of the 2x2 table [[c_run, n_run - c_run], [c_base, n_base - c_base]] fixed, the
    run's successes are hypergeometric, X ~ H(N = n_run + n_base, K = c_run + c_base, n_run),
    and the p-value is P(X <= c_run) = sum_x C(K, x) C(N - K, n_run - x) / C(N, n_run),
    summed in exact integers."""
    total, succ = n_run + n_base, c_run + c_base
    low = max(0, succ - n_base)
    num = sum(
        math.comb(succ, x) * math.comb(total - succ, n_run - x) for x in range(low, c_run + 1)
    )
    return num / math.comb(total, n_run)  # exact ints, one correctly rounded division


def holm_rejections(p_values: Sequence[float], family: int, alpha: float = ALPHA) -> int:
    """Holm's step-down count of rejections at level ``alpha`` among ``family`` hypotheses (the
    untested ones count in the family with p = 1)."""
    rejected = 0
    for i, p in enumerate(sorted(p_values)):
        if p > alpha / (family - i):
            break
        rejected += 1
    return rejected


def tilt_violations(
    c_base: np.ndarray, n_base: int, c_run: np.ndarray, n_run: int
) -> dict[str, Any]:
    """Problems whose success rate fell (c_run / n_run < c_base / n_base): a tilt with b >= 0
    never lowers one. Each is tested with :func:`fisher_less`; ``num_significant`` counts
    p < ALPHA (uncorrected), ``num_significant_holm`` after Holm's correction over all B
    problems."""
    fell = np.nonzero(c_run * n_base < c_base * n_run)[0]  # (V,) exact integer comparison
    problems = []
    for i in fell.tolist():
        p_value = fisher_less(int(c_run[i]), n_run, int(c_base[i]), n_base)
        problems.append(
            {"problem": i, "base": int(c_base[i]), "run": int(c_run[i]), "p_value": p_value}
        )
    p_values = [v["p_value"] for v in problems]
    return {
        "alpha": ALPHA,
        "num_fell": len(problems),
        "num_significant": sum(p < ALPHA for p in p_values),
        "num_significant_holm": holm_rejections(p_values, len(c_base)),
        "problems": problems,
    }


def class_frequencies(solution_counts: Sequence[Mapping[str, int]]) -> list[np.ndarray]:
    """Per problem, the base's conditional class frequencies q_c = m_c / sum m (empty when the
    base found no correct sample)."""
    out = []
    for counts in solution_counts:
        m = np.array(list(counts.values()), dtype=np.float64)  # (C,)
        out.append(m / m.sum() if m.size else m)
    return out


def predicted_distinct(
    p_star: np.ndarray, q: Sequence[np.ndarray], ks: Sequence[int]
) -> np.ndarray:
    """(2) per problem and budget: sum_c [1 - (1 - p* q_c)^k], a (B, K) array."""
    k = np.asarray(ks, dtype=np.float64)  # (K,)
    rows = []
    for p, qc in zip(p_star, q, strict=True):
        miss = (1 - p * qc)[:, None] ** k[None, :]  # (C, K)
        rows.append((1 - miss).sum(axis=0))  # (K,)
    return np.array(rows).reshape(len(q), len(k))  # (B, K)


def distinct_prediction(
    p_star: np.ndarray, q: Sequence[np.ndarray], set_sizes: Sequence[int | None], ks: Sequence[int]
) -> dict[str, Any]:
    """Means over problems of (2) (``distinct``) and of (2) / |solution set| over the problems
    whose set is known (``coverage``, None when none is), keyed by k."""
    expected = predicted_distinct(p_star, q, ks)  # (B, K)
    known = [i for i, s in enumerate(set_sizes) if s]
    coverage = None
    if known:
        sizes = np.array([set_sizes[i] for i in known], dtype=np.float64)  # (S,)
        cov = (expected[known] / sizes[:, None]).mean(axis=0)  # (K,)
        coverage = {str(k): float(v) for k, v in zip(ks, cov, strict=True)}
    return {
        "distinct": {str(k): float(v) for k, v in zip(ks, expected.mean(axis=0), strict=True)},
        "coverage": coverage,
    }


def balance_gap(log_ratio: np.ndarray, success: np.ndarray, group: np.ndarray) -> dict[str, Any]:
    """mean D(success) - mean D(failure) within each prompt that has both, averaged over those
    prompts (so log Z(x) cancels); equals b exactly at pi*. ``se`` is the standard error over
    prompts; ``mean_success`` / ``mean_failure`` are pooled means (log Z does not cancel)."""
    d = np.asarray(log_ratio, dtype=np.float64)  # (N,)
    s = np.asarray(success, dtype=bool)  # (N,)
    g = np.asarray(group)  # (N,)
    gaps = []
    for x in np.unique(g):
        rows = g == x  # (N,)
        ok, bad = d[rows & s], d[rows & ~s]
        if ok.size and bad.size:
            gaps.append(ok.mean() - bad.mean())
    m = len(gaps)
    return {
        "gap": float(np.mean(gaps)) if m else None,
        "se": float(np.std(gaps, ddof=1) / math.sqrt(m)) if m > 1 else None,
        "num_prompts": m,
        "mean_success": float(d[s].mean()) if s.any() else None,
        "mean_failure": float(d[~s].mean()) if (~s).any() else None,
        "mean_log_ratio": float(d.mean()),
    }


def agreement(predicted: np.ndarray, achieved: np.ndarray) -> dict[str, Any]:
    """MAE and Pearson correlation between predicted and achieved success rates (correlation
    None when either side is constant)."""
    mae = float(np.abs(predicted - achieved).mean())
    if predicted.std() == 0 or achieved.std() == 0:
        return {"mae": mae, "correlation": None}
    return {"mae": mae, "correlation": float(np.corrcoef(predicted, achieved)[0, 1])}


def predictions_at(
    b: float,
    p_base: np.ndarray,
    achieved: np.ndarray,
    q: Sequence[np.ndarray] | None,
    set_sizes: Sequence[int | None],
    ks: Sequence[int],
) -> dict[str, Any]:
    """What the tilt at ``b`` predicts: success rates (mean, MAE, correlation with the run's)
    and distinct@k / coverage@k (:func:`distinct_prediction`; None without the base's class
    counts ``q``)."""
    p_star = tilted_rate(p_base, b)  # (B,)
    classes = {"distinct": None, "coverage": None}
    if q is not None:
        classes = distinct_prediction(p_star, q, set_sizes, ks)
    return {
        "b": b,
        "mean_success": float(p_star.mean()),
        **agreement(p_star, achieved),
        **classes,
        "success": [float(v) for v in p_star],
    }


def target_report(
    base: Mapping[str, Any],
    n_base: int,
    run: Mapping[str, Any],
    n_run: int,
    b: float | None,
    seed: int = 0,
    balance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The instrument for one length: ``base`` and ``run`` are that length's entries of the two
    eval.json files (``correct_counts``, ``solution_counts``; the run's ``coverage_at_k`` and
    ``solution_set_sizes``), ``n_base`` / ``n_run`` their samples per problem, ``b`` the tilt
    (None: only the fitted b_hat), ``balance`` a :func:`balance_gap` result or None. The
    returned dict is ``lengths.<L>.target`` of eval.json (docs/EVAL.md)."""
    c_base = _counts(base["correct_counts"], n_base, "base")  # (B,)
    c_run = _counts(run["correct_counts"], n_run, "run")  # (B,)
    if len(c_base) != len(c_run):
        raise ValueError(f"base has {len(c_base)} problems, the run {len(c_run)}: need the same")
    p_base, achieved = c_base / n_base, c_run / n_run  # (B,), (B,)
    fit = fit_shift(p_base, c_run, n_run)
    counts = base.get("solution_counts")  # absent in an eval.json from before the instrument
    q = None if counts is None else class_frequencies(counts)
    sizes = run.get("solution_set_sizes") or [None] * len(c_base)
    ks = [int(k) for k in run["coverage_at_k"]["distinct"]]
    predictions = {
        name: predictions_at(value, p_base, achieved, q, sizes, ks)
        for name, value in (("b", b), ("b_hat", fit["b_hat"]))
        if value is not None
    }
    return {
        "b": b,
        "num_problems": len(c_base),
        "base_success": [float(v) for v in p_base],
        "achieved": {
            "mean_success": float(achieved.mean()),
            "success": [float(v) for v in achieved],
            "distinct": dict(run["coverage_at_k"]["distinct"]),
            "coverage": run["coverage_at_k"].get("coverage"),
        },
        "fit": fit,
        "predicted": predictions,
        "shifts": shift_spread(c_base, n_base, c_run, n_run, fit["b_hat"], seed),
        "violations": tilt_violations(c_base, n_base, c_run, n_run),
        "balance": None if balance is None else {**balance, "b": b},
    }
