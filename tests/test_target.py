"""The target instrument (trafl.evaluation.target) against hand-made counts, and ``trafl eval``'s
``target`` section end to end on the shipped base."""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from trafl.evaluation.report import comparison_sections, target_rows
from trafl.evaluation.target import (
    TargetConfig,
    balance_gap,
    fisher_less,
    fit_shift,
    holm_rejections,
    predicted_distinct,
    shift_spread,
    target_report,
    tilt_violations,
    tilted_rate,
)

BASE = Path(__file__).resolve().parents[1] / "models" / "countdown-base"


def test_the_tilted_rate_by_hand():
    """p* = p e^b / (p e^b + 1 - p): 1/2 at b = log 3 -> 3/4; 1/5 at log 2 -> 1/3; 1/2 at
    -log 3 -> 1/4; b = 0 is the identity; a tilt keeps 0 at 0 and 1 at 1, even at b = 28."""
    got = tilted_rate(np.array([0.5, 0.2]), math.log(3))
    assert got == pytest.approx([0.75, 0.6 / (0.6 + 0.8)], abs=1e-15)
    assert tilted_rate(0.2, math.log(2)) == pytest.approx(1 / 3, abs=1e-15)
    assert tilted_rate(0.5, -math.log(3)) == pytest.approx(0.25, abs=1e-15)
    p = np.linspace(0, 1, 11)
    assert tilted_rate(p, 0.0) == pytest.approx(p, abs=1e-15)
    assert tilted_rate(np.array([0.0, 1.0]), 28.0).tolist() == [0.0, 1.0]
    assert tilted_rate(np.array([0.0, 1.0]), -28.0).tolist() == [0.0, 1.0]
    assert tilted_rate(1e-3, 28.0) == pytest.approx(1.0, abs=1e-8)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tilted_rate(1.5, 1.0)


def test_the_fitted_shift_recovers_a_tilted_binomial():
    """Run counts drawn from Bin(n, p*(p_i, b)) with p_i the base's empirical rates.

    Tolerance, from the binomial arithmetic: b_hat is the maximum-likelihood estimate of the one
    parameter of an exponential family (Bin(n, sigmoid(logit p_i + b)), natural parameter
    logit p_i + b), so it is asymptotically normal around b with variance 1 / I(b), where
    I(b) = sum_i n p*_i (1 - p*_i). Here I ~ 300 * 64 * 0.2, se ~ 0.016; |b_hat - b| < 4 se
    fails with probability 6e-5."""
    rng = np.random.default_rng(0)
    num, n, b = 300, 64, 1.5
    c_base = rng.binomial(n, rng.uniform(0.05, 0.6, num))  # (B,)
    p_base = c_base / n
    c_run = rng.binomial(n, tilted_rate(p_base, b))  # (B,)
    fit = fit_shift(p_base, c_run, n)
    q = tilted_rate(p_base[(p_base > 0) & (p_base < 1)], b)
    se = 1 / math.sqrt(np.sum(n * q * (1 - q)))  # 1 / sqrt(I(b))
    assert abs(fit["b_hat"] - b) < 4 * se
    assert fit["se"] == pytest.approx(se, rel=0.05)  # the reported se is 1 / sqrt(I(b_hat))
    assert not fit["at_bound"]
    # a run that solved every informative problem every time: the likelihood grows without end
    top = fit_shift(p_base, np.full(num, n), n)
    assert top["at_bound"] and top["b_hat"] == 50.0
    assert fit_shift(np.array([0.0, 1.0]), np.array([3, 4]), 4)["b_hat"] is None


def test_the_shift_spread_against_its_noise_floor():
    """Both evaluations drawn from true rates: the base at p_i, the run at p*(p_i, b). With one
    shift for every problem the observed std of the per-problem shifts is within the noise
    floor's 95th percentile; with a shift of its own per problem (sd 1.5 nats) it is far
    beyond."""
    rng = np.random.default_rng(1)
    num, n, b = 200, 64, 1.0
    p_true = rng.uniform(0.1, 0.6, num)  # (B,)
    c_base = rng.binomial(n, p_true)
    one = shift_spread(c_base, n, rng.binomial(n, tilted_rate(p_true, b)), n, b, seed=0)
    assert one["std"] < one["noise_floor_q95"]
    assert one["noise_floor_std"] < one["noise_floor_q95"]
    assert one["mean"] == pytest.approx(b, abs=0.2)
    own = tilted_rate(p_true, b + 1.5 * rng.standard_normal(num))
    many = shift_spread(c_base, n, rng.binomial(n, own), n, b, seed=0)
    assert many["std"] > 1.5 * many["noise_floor_q95"]
    # the continuity correction: c = 0 of 4 against c = 4 of 4 is log(4.5/0.5) - log(0.5/4.5)
    edge = shift_spread(np.array([0, 2]), 4, np.array([4, 2]), 4, None, seed=0)
    assert edge["shifts"] == pytest.approx([2 * math.log(9), 0.0])


def hypergeometric_tail(c_run: int, n_run: int, c_base: int, n_base: int) -> Fraction:
    """P(X <= c_run) from the hypergeometric pmf written out, as a fraction."""
    total, succ = n_run + n_base, c_run + c_base
    return sum(
        (
            Fraction(math.comb(succ, x) * math.comb(total - succ, n_run - x))
            / math.comb(total, n_run)
            for x in range(0, c_run + 1)
            if n_run - x <= total - succ
        ),
        Fraction(0),
    )


def test_fisher_p_values_by_hand():
    """0/4 vs 3/4: only the table with x = 0 is as extreme, C(3,0) C(5,4) / C(8,4) = 5/70.
    1/5 vs 4/5: (C(5,0) C(5,5) + C(5,1) C(5,4)) / C(10,5) = 26/252. 2/4 vs 2/4:
    (1 + 16 + 36) / 70."""
    assert fisher_less(0, 4, 3, 4) == pytest.approx(5 / 70, rel=1e-15)
    assert fisher_less(1, 5, 4, 5) == pytest.approx(26 / 252, rel=1e-15)
    assert fisher_less(2, 4, 2, 4) == pytest.approx(53 / 70, rel=1e-15)
    for case in [(3, 10, 7, 12), (0, 6, 6, 6), (0, 128, 38, 128), (27, 128, 77, 128)]:
        assert fisher_less(*case) == pytest.approx(float(hypergeometric_tail(*case)), rel=1e-12)
    # Holm: the i-th smallest against 0.05 / (family - i): 0.05/3, 0.05/2, 0.05
    assert holm_rejections([0.001, 0.02, 0.04], family=3) == 3
    assert holm_rejections([0.001, 0.03, 0.04], family=3) == 1  # 0.03 > 0.05/2 stops it
    assert holm_rejections([0.02], family=4) == 0  # 0.02 > 0.05/4


def test_violations_flag_a_real_fall_and_not_a_noisy_one():
    """60/64 -> 10/64 fell far beyond noise (flagged, significant); 30/64 -> 28/64 fell within
    noise (listed, not significant); 10/64 -> 40/64 rose (not a violation)."""
    viol = tilt_violations(np.array([60, 30, 10]), 64, np.array([10, 28, 40]), 64)
    assert viol["num_fell"] == 2 and viol["num_significant"] == 1
    by_problem = {v["problem"]: v for v in viol["problems"]}
    assert set(by_problem) == {0, 1}
    assert by_problem[0]["p_value"] < 1e-10
    assert by_problem[1]["p_value"] > 0.3
    # equal rates at different n are no fall: 8/32 against 16/64
    assert tilt_violations(np.array([16]), 64, np.array([8]), 32)["num_fell"] == 0


def test_predicted_distinct_matches_exact_enumeration():
    """k = 3 samples, each a failure (1 - p*) or class c (p* q_c): enumerate all 4^3 outcomes
    and count distinct correct classes; the formula sum_c [1 - (1 - p* q_c)^k] must agree."""
    p_star, q = 0.6, np.array([0.5, 0.3, 0.2])
    probs = [1 - p_star, *(p_star * q)]  # outcome 0 = failure
    for k in (1, 2, 3):
        exact = 0.0
        for outcome in itertools.product(range(4), repeat=k):
            weight = math.prod(probs[o] for o in outcome)
            exact += weight * len({o for o in outcome if o > 0})
        got = predicted_distinct(np.array([p_star]), [q], [k])
        assert got[0, 0] == pytest.approx(exact, abs=1e-14)
    # no correct sample in the base: nothing predicted, whatever the tilt
    assert predicted_distinct(np.array([0.0]), [np.zeros(0)], [4]).tolist() == [[0.0]]


def test_the_balance_gap_is_b_exactly_at_the_target():
    """D = b r - log Z(x) with a different log Z per prompt: within-prompt gaps are b, so the
    gap is b; pooled means mix prompts and do not show b. A prompt whose samples all failed has
    no gap and is left out."""
    rng = np.random.default_rng(2)
    b, num, g = 2.75, 6, 8
    rewards = (rng.random((num, g)) < 0.5).astype(float)  # (B, G)
    rewards[:, 0], rewards[:, 1] = 1.0, 0.0  # every prompt mixed
    rewards[5] = 0.0  # ... but the last
    log_z = np.array([-3.0, 0.5, 7.0, 1.0, -12.0, 4.0])  # (B,)
    d = b * rewards - log_z[:, None]  # (B, G)
    group = np.repeat(np.arange(num), g)  # (N,)
    out = balance_gap(d.reshape(-1), rewards.reshape(-1) > 0, group)
    assert out["gap"] == pytest.approx(b, abs=1e-12)
    assert out["se"] == pytest.approx(0.0, abs=1e-12)
    assert out["num_prompts"] == 5
    assert out["mean_success"] - out["mean_failure"] != pytest.approx(b, abs=0.1)


def test_target_report_on_counts():
    """The report's pieces on a small hand-made case: b = 0 predicts the base itself."""
    base = {"correct_counts": [2, 0, 4], "solution_counts": [{"a": 1, "b": 1}, {}, {"a": 4}]}
    run = {
        "correct_counts": [3, 1, 4],
        "coverage_at_k": {"distinct": {"1": 0.5, "4": 1.0}, "coverage": None},
        "solution_set_sizes": [2, 3, None],
    }
    t = target_report(base, 4, run, 4, b=0.0)
    assert t["predicted"]["b"]["success"] == [0.5, 0.0, 1.0]
    assert t["predicted"]["b"]["mae"] == pytest.approx((0.25 + 0.25 + 0) / 3)
    # distinct@1 at b = 0: p* q_c summed = p*, here (0.5 + 0 + 1) / 3
    assert t["predicted"]["b"]["distinct"]["1"] == pytest.approx(0.5)
    assert t["predicted"]["b"]["coverage"]["1"] == pytest.approx((0.5 / 2 + 0 / 3) / 2)
    assert t["fit"]["num_problems"] == 1 and t["fit"]["b_hat"] == pytest.approx(math.log(3))
    assert t["violations"]["num_fell"] == 0
    json.dumps(t)  # plain JSON
    header, rows = target_rows({"run": {"lengths": {"16": {"target": t}}}})
    assert len(rows) == 1 and len(rows[0]) == len(header)
    assert rows[0][2:4] == ["0.00", f"{math.log(3):.2f} ({t['fit']['se']:.2f})"]
    # distinct@4 at b = 0: (2 (1 - (1 - 0.5 / 2)^4) + 0 + 1) / 3 = 0.79; at b_hat = log 3,
    # p* = 3/4 on the first problem: (2 (1 - (1 - 0.75 / 2)^4) + 0 + 1) / 3 = 0.90
    at_b = (2 * (1 - 0.75**4) + 1) / 3
    at_b_hat = (2 * (1 - 0.625**4) + 1) / 3
    assert t["predicted"]["b"]["distinct"]["4"] == pytest.approx(at_b)
    assert t["predicted"]["b_hat"]["distinct"]["4"] == pytest.approx(at_b_hat)
    assert rows[0][-3:] == ["0 / 0", f"k=4: {at_b:.2f} / {at_b_hat:.2f} / 1.00", "- (0.00)"]


def test_target_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="need target.base"):
        TargetConfig(tilt=1.0)
    with pytest.raises(ValueError, match="even number >= 2"):
        TargetConfig(base="runs/eval/base", balance_masks=3)
    with pytest.raises(ValueError, match="finite"):
        TargetConfig(base="runs/eval/base", tilt=float("inf"))


# trafl eval with the target section ---------------------------------------------------------


def run_eval(model: Path, out: Path, *extra: str) -> dict:
    from trafl.commands.eval import EvalConfig, evaluate
    from trafl.core.config_files import load_config

    args = [
        f"model={model}",
        "num_problems=4",
        "task.num_test=8",
        "num_samples=4",
        "gen_lengths=[16]",
        "sampler.gen_length=16",
        "sampler.steps=8",
        "greedy=false",
        "bootstrap=20",
        "heatmap_problems=1",
        "device=cpu",
        f"out_dir={out}",
        *extra,
    ]
    evaluate(load_config(EvalConfig, None, args))
    return json.loads((out / "eval.json").read_text())


def test_eval_target_section_end_to_end(tmp_path):
    """The base evaluated, then a TraFL "run" folder (the base's weights, a config.yaml with
    beta = 8, center_loo: b = 8) against it, the reference the base itself (D = 0)."""
    from trafl.commands.eval import EvalConfig
    from trafl.commands.eval_target import check_same_decoding, check_same_problems
    from trafl.commands.train_config import RolloutConfig, TrainConfig
    from trafl.core.config_files import load_config, save_config
    from trafl.core.errors import UserError
    from trafl.objectives import TraFLConfig

    base = run_eval(BASE, tmp_path / "base")
    counts = base["lengths"]["16"]["solution_counts"]
    assert len(counts) == 4
    assert [sum(c.values()) for c in counts] == base["lengths"]["16"]["correct_counts"]
    run = tmp_path / "run"
    shutil.copytree(BASE, run / "model")
    objective = TraFLConfig(beta=8.0, reward_norm="center_loo")
    save_config(
        TrainConfig(objective=objective, rollout=RolloutConfig(group_size=4)), run / "config.yaml"
    )
    result = run_eval(
        run,
        tmp_path / "out",
        f"target.base={tmp_path / 'base'}",
        f"target.reference={BASE}",
        "target.balance_masks=2",
        "heatmap_problems=0",  # no heatmap figure: nothing to draw, no error
    )
    t = result["lengths"]["16"]["target"]
    assert t["b"] == 8.0 and "trafl beta=8" in t["tilt_source"]
    assert set(t) >= {"fit", "predicted", "achieved", "shifts", "violations", "balance"}
    assert len(t["achieved"]["success"]) == len(t["base_success"]) == 4
    assert set(t["predicted"]["b"]["distinct"]) == {"1", "2", "4"}
    assert t["balance"]["mean_log_ratio"] == 0.0  # the model is its own reference
    assert (tmp_path / "out" / "target_L16.png").stat().st_size > 1000
    assert not (tmp_path / "out" / "reveal_orders_L16.png").exists()
    # trafl compare's Markdown (the demo's report) gets the target table for the run only
    sections = "\n".join(comparison_sections({"base": base, "run": result}, "base", {}))
    assert "## Does each method reach its tilt target?" in sections
    assert "| run | 16 | 8.00 |" in sections and "| base | 16 |" not in sections.split("target?")[1]
    # a base evaluated on other problems is refused in one line, before any model loads
    cfg = load_config(
        EvalConfig,
        None,
        [f"model={run}", "num_problems=4", "task.num_test=8", "gen_lengths=[16]"]
        + ["sampler.gen_length=16", "sampler.steps=8"],
    )
    for field, value, says in [
        ("num_problems", 5, "num_problems=5 (here 4)"),
        ("problems_sha1", "0" * 40, "different problems"),
        ("config", {"task": {**base["config"]["task"], "pool": 2}}, "task.pool=2 (here 0)"),
        ("lengths", {"24": {}}, "no correct_counts at L=16 (it has L=24)"),
    ]:
        with pytest.raises(UserError, match=re.escape(says)):
            check_same_problems({**base, field: value}, base, cfg)
    trained = {**base, "config": {"task": {**base["config"]["task"], "train_pool": 64}}}
    check_same_problems(trained, base, cfg)  # a training-only setting: the same problems
    # ... and a base decoded otherwise (another distribution) too; batch size is not decoding
    check_same_decoding(base, cfg)
    for field, value, says in [
        ("remasking", "random", "sampler.remasking='random' (here 'low_confidence')"),
        ("steps", 16, "sampler.steps=16 (here 8)"),
        ("temperature", 0.7, "sampler.temperature=0.7 (here 1.0)"),
    ]:
        other = {**base, "config": {**base["config"], "sampler": {**base["config"]["sampler"],
                 field: value}}}  # fmt: skip
        with pytest.raises(UserError, match=re.escape(says)):
            check_same_decoding(other, cfg)
    batch = {**base["config"]["sampler"], "batch_size": 1}
    check_same_decoding({**base, "config": {**base["config"], "sampler": batch}}, cfg)
