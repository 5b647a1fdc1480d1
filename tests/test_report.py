"""The Markdown of ``trafl.evaluation.report`` and ``seed_report`` against hand-made eval.json
dicts (exact rows, the below-the-base marks at a known significance), and every figure of
``trafl.evaluation.plots``."""

from __future__ import annotations

import struct

import matplotlib.image
import numpy as np
import pytest

from trafl.evaluation.plots import (
    plot_coverage,
    plot_coverage_locking,
    plot_pass_at_k,
    plot_pass_at_k_grid,
    plot_reveal_heatmaps,
    plot_seed_differences,
)
from trafl.evaluation.report import (
    comparison_sections,
    markdown_table,
    significant_drops,
    verdicts,
)
from trafl.evaluation.seed_report import (
    differences,
    head_to_head_table,
    seed_diversity_table,
    seed_passk_table,
    seed_sections,
    seed_spread_table,
    seed_target_table,
    seed_verdict,
)


def length_result(curve: dict[str, float], counts: list[int] | None = None, **extra) -> dict:
    res = {
        "greedy_accuracy": extra.get("greedy", 0.25),
        "pass_at_k": {k: {"mean": v, "ci": [v - 0.05, v + 0.05]} for k, v in curve.items()},
        "coverage": {"mean_coverage": extra.get("coverage", 0.5), "mean_distinct_correct": 1.5},
        "locking": {
            "mean_pairwise_rank_distance": 0.125,
            "order_share_of_mode": 0.5,
            "order_entropy_normalized": 0.75,
            "correct_order_share_of_mode": None,
        },
    }
    if counts is not None:
        res["correct_counts"] = counts
    return res


def evaluation(name: str, lengths: dict[str, dict], n: int = 4) -> dict:
    return {"model_name": name, "num_samples": n, "lengths": lengths}


@pytest.fixture
def results() -> dict[str, dict]:
    """base; ``same`` equal to the base everywhere; ``drop`` one correct sample fewer on every
    one of 40 problems (a drop every bootstrap resample sees); ``blip`` one fewer on one problem
    only (below the base, within the noise)."""
    curve = {"1": 0.5, "2": 0.75}
    return {
        "base": evaluation(
            "base",
            {
                "16": length_result(curve, [2] * 40),
                "32": length_result(curve, [2] * 40, greedy=None),
            },
        ),
        "same": evaluation(
            "same",
            {
                "16": length_result(curve, [2] * 40),
                "32": length_result(curve, [2] * 40, coverage=None),
            },
        ),
        "drop": evaluation(
            "drop",
            {
                "16": length_result({"1": 0.25, "2": 0.5}, [1] * 40),
                "32": length_result(curve, [2] * 40),
            },
        ),
        "blip": evaluation(
            "blip",
            {
                "16": length_result({"1": 0.494, "2": 0.74}, [1] + [2] * 39),
                "32": length_result(curve, [2] * 40),
            },
        ),
    }


def test_the_comparison_table_rows_are_exact(results):
    assert markdown_table(results, "base").splitlines() == [
        "| method | L | greedy | pass@1 | pass@2 | coverage | rank dist. |",
        "|---|---|---|---|---|---|---|",
        "| base | 16 | 0.250 | 0.500 | 0.750 | 0.500 | 0.125 |",
        "| base | 32 | - | 0.500 | 0.750 | 0.500 | 0.125 |",
        "| same | 16 | 0.250 | 0.500 | 0.750 | 0.500 | 0.125 |",
        "| same | 32 | 0.250 | 0.500 | 0.750 | - | 0.125 |",
        "| drop | 16 | 0.250 | 0.250 ↓ | 0.500 ↓ | 0.500 | 0.125 |",
        "| drop | 32 | 0.250 | 0.500 | 0.750 | 0.500 | 0.125 |",
        "| blip | 16 | 0.250 | 0.494 ↓ | 0.740 ↓ | 0.500 | 0.125 |",
        "| blip | 32 | 0.250 | 0.500 | 0.750 | 0.500 | 0.125 |",
    ]


def test_a_drop_on_every_problem_is_significant_and_a_single_blip_is_not(results):
    assert significant_drops(results, "base") == {
        "same": [],
        "drop": [("16", "1"), ("16", "2")],
        "blip": [],
    }
    text = verdicts(results, "base")
    assert text["same"] == "**same** is at or above base at every k and every length."
    assert text["drop"] == (
        "**drop** falls below base at 2 point(s): L=16 k=1, L=16 k=2; 2 of them with a 95 % "
        "paired-bootstrap interval of the difference below 0 (L=16 k=1, L=16 k=2)."
    )
    assert text["blip"] == (
        "**blip** falls below base at 2 point(s): L=16 k=1, L=16 k=2; none of them beyond the "
        "95 % paired-bootstrap interval of the difference."
    )


def test_without_correct_counts_the_verdict_claims_no_interval(results):
    for res in results.values():
        for length in res["lengths"].values():
            del length["correct_counts"]
    assert significant_drops(results, "base")["drop"] is None
    assert verdicts(results, "base")["drop"].endswith(
        "; no paired interval (no per-problem correct_counts in both eval.json files)."
    )


def test_the_demo_sections_hold_the_verdicts_and_the_table(results):
    lines = comparison_sections(results, "base", verdicts(results, "base"))
    assert lines[0] == "## Does each method stay above the base at every k and length?"
    assert lines[2].startswith("- **same** is at or above base")
    assert lines[-1] == markdown_table(results, "base")


def seeds_of(counts: dict[str, list[list[int]]], n: int = 2) -> dict[str, dict[int, dict]]:
    """{method: {seed: eval.json}} at one length (16) from per-seed correct counts, n = 2."""
    data: dict[str, dict[int, dict]] = {}
    for method, per_seed in counts.items():
        for seed, c in enumerate(per_seed):
            curve = {"1": float(np.mean(c)) / n, "2": float(np.mean([x > 0 for x in c]))}
            data.setdefault(method, {})[seed] = evaluation(
                method, {"16": length_result(curve, c)}, n
            )
    return data


def test_the_seed_tables_and_verdicts_are_exact():
    """Two problems, two seeds. ``up``: pass@1 +0.5 on both problems (every resample: ▲),
    pass@2 +1 on one problem only (a resample can miss it: no mark). ``down``: the mirror."""
    data = seeds_of({"base": [[1, 0], [1, 0]], "up": [[2, 1], [2, 1]], "down": [[0, 0], [0, 0]]})
    labels = {"up": "Up"}
    assert seed_passk_table(data, "16", labels) == [
        "| method | seeds | pass@1 | pass@2 |",
        "|---|---|---|---|",
        "| base | 2 | 0.250 | 0.500 |",
        "| Up | 2 | 0.750 (+0.500 ▲) | 1.000 (+0.500) |",
        "| down | 2 | 0.000 (-0.250) | 0.000 (-0.500) |",
    ]
    assert seed_spread_table(data, ["16"], labels) == [
        "| method | seeds | L=16 pass@1 | L=16 pass@2 |",  # the largest k, not a fixed 64
        "|---|---|---|---|",
        "| Up | 2 | +0.500 .. +0.500 | +0.500 .. +0.500 |",
        "| down | 2 | -0.250 .. -0.250 | -0.500 .. -0.500 |",
    ]
    assert seed_diversity_table(data, "16", labels)[2] == (
        "| base | 0.250 | 1.500 | 0.500 | 0.500 | 0.750 | 0.125 | - |"
    )
    assert seed_verdict(data, "up", ["16"], labels) == (
        "**Up** (2 seeds): at or above the base in all 2 (length, k) cells."
    )
    assert seed_verdict(data, "down", ["16"], labels) == (
        "**down** (2 seeds): below the base in 2 of 2 cells (L=16 k=1, L=16 k=2); none of these "
        "drops is significant (every 95 % interval includes 0)."
    )
    sections = seed_sections(data, ["16"], labels, "fig.png")
    assert "![pass@k and difference to the base](fig.png)" in sections
    assert sections.count("## L = 16") == 1


def test_head_to_head_is_the_paired_difference_of_the_two_methods():
    """``up`` against ``down`` on the data above: per problem pass@1 is 1 vs 0 and 0.5 vs 0,
    so +0.75 with every resample above 0 (▲); pass@2 1 vs 0 on both: +1 ▲. Swapping the two
    negates every difference and its interval exactly (the same resampled rows). ``few``, with
    4 samples per problem and only seed 1, is paired on that seed alone, at its own n (pass@1
    of 2/4 and 0/4 against up's 2/2 and 1/2: -0.5 on both; pass@2 5/6 and 0 against 1 and 1:
    -7/12), and a method with no seed in common gets no row."""
    data = seeds_of({"base": [[1, 0], [1, 0]], "up": [[2, 1], [2, 1]], "down": [[0, 0], [0, 0]]})
    data["few"] = {1: seeds_of({"few": [[2, 0]]}, n=4)["few"][0]}
    data["none"] = {7: data["down"][0]}
    pairs = [("up", "down"), ("few", "up"), ("up", "none"), ("up", "missing")]
    assert head_to_head_table(data, pairs, ["16"], {"up": "Up"}) == [
        "| method | against | seeds | L=16 pass@1 | L=16 pass@2 |",
        "|---|---|---|---|---|",
        "| Up | down | 2 | +0.750 ▲ | +1.000 ▲ |",
        "| few | Up | 1 | -0.500 **▼** | -0.583 **▼** |",
    ]
    for a, b in zip(
        differences(data, "up", "16", against="down"),
        differences(data, "down", "16", against="up"),
        strict=True,
    ):
        assert (a.diff, a.lo, a.hi) == (-b.diff, -b.hi, -b.lo)


def a_target(b, b_hat, spread, sig, fell, predicted, found, gap, at_bound=False):
    """A ``target`` entry of eval.json with the fields the seed table reads (docs/EVAL.md); the
    budgets 8 and 64, so that the largest k is found as a number, not as a string."""
    return {
        "b": b,
        "num_problems": 2,
        "fit": {"b_hat": b_hat, "at_bound": at_bound},
        "shifts": {"std": spread, "noise_floor_std": 0.5},
        "violations": {"num_significant": sig, "num_fell": fell},
        "predicted": {} if predicted is None else {"b_hat": {"distinct": {"64": predicted}}},
        "achieved": {"distinct": {"8": 0.5, "64": found}},
        "balance": None if gap is None else {"gap": gap},
    }


def test_the_seed_target_table_is_exact():
    """Four seeds of one run. b̂ 1 and 2 fitted (mean 1.5, sd 0.71), one at the search bound
    (left out, counted) and one without a fit (no prediction either); the spreads of the two
    fitted seeds, 1 and 2 over a floor of 0.5 (2x and 4x: 3.0 ± 1.4x); fell summed over seeds
    (1 + 0 + 2 + 0 of 4 x 2 problems); distinct@64 over the three seeds with a prediction, the
    run's over the same three (1.0, 0.5, 0.0: 0.5), not all four; a gap in one seed only."""
    data = seeds_of({"base": [[1, 0]] * 4, "up": [[2, 1]] * 4, "down": [[0, 0]] * 4})
    targets = [
        a_target(28.0, 1.0, 1.0, 1, 2, 1.2, 1.0, 0.9),
        a_target(28.0, 2.0, 2.0, 0, 1, 1.4, 0.5, None),
        a_target(28.0, -50.0, 0.1, 2, 2, 0.1, 0.0, None, at_bound=True),
        a_target(28.0, None, 0.0, 0, 0, None, 1.5, None),
    ]
    for seed, target in enumerate(targets):
        data["up"][seed]["lengths"]["16"]["target"] = target
    assert seed_target_table(data, "16", {"up": "Up"}) == [
        "| method | seeds | b | b̂ | shift sd / floor | fell: sig. / all | distinct@k: b̂ / run | gap |",
        "|---|---|---|---|---|---|---|---|",
        "| Up | 4 | 28.00 | 1.50 ± 0.71 (2 of 3 seeds) (and 1 at the bound -50) | 3.0 ± 1.4x | "
        "3 / 5 of 8 | k=64: 0.90 / 0.50 (3 of 4 seeds) | 0.90 (1 of 4 seeds) |",
    ]


def test_one_seed_of_the_reproduction_agrees_with_the_comparison():
    """The demo of a seed and docs/REPRODUCTION.md judge significance with the same bootstrap."""
    rng = np.random.default_rng(2)  # a seed where 1000 and 2000 resamples disagree
    base = rng.binomial(8, rng.uniform(0, 1, 30)).tolist()
    counts = {"base": [base]}
    for i in range(6):  # methods close to the base: some cells borderline
        counts[f"m{i}"] = [np.clip(np.array(base) + rng.integers(-2, 2, 30), 0, 8).tolist()]
    data = seeds_of(counts, n=8)
    results = {m: evals[0] for m, evals in data.items()}
    for method, cells in significant_drops(results, "base").items():
        verdict = seed_verdict(data, method, ["16"], {})
        listed = verdict.partition("significantly (95 % interval below 0) at ")[2].rstrip(".")
        assert sorted(f"L={x} k={k}" for x, k in cells or []) == sorted(
            filter(None, listed.split(", "))
        )


def png_size(path) -> tuple[int, int]:
    """(width, height) in pixels from the PNG header; fails on anything that is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def assert_drawn(path, size: tuple[int, int]) -> None:
    assert png_size(path) == size  # figsize x dpi: the figure has the panels it should
    pixels = matplotlib.image.imread(path)[..., :3]
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # lines, bars, text: not blank


def test_every_plot_writes_its_png(tmp_path, results):
    plot_pass_at_k(results["base"], tmp_path / "a.png")
    assert_drawn(tmp_path / "a.png", (660, 480))
    plot_coverage(results["base"], tmp_path / "b.png")
    assert_drawn(tmp_path / "b.png", (960, 420))
    rng = np.random.default_rng(0)
    steps = [np.argsort(rng.random((6, 8)), axis=1) for _ in range(3)]  # (G, L) reveal steps
    plot_reveal_heatmaps(
        steps, [np.array([1.0, 0, 0, 1, 0, 0])] * 3, ["x", "y", "z"], tmp_path / "c.png"
    )
    assert_drawn(tmp_path / "c.png", (1272, 480))  # three panels
    plot_pass_at_k_grid(results, "base", tmp_path / "d.png")
    assert_drawn(tmp_path / "d.png", (1008, 456))  # one panel per length
    plot_coverage_locking(results, tmp_path / "e.png")
    assert_drawn(tmp_path / "e.png", (1200, 456))
    data = seeds_of({"base": [[1, 0], [1, 0]], "up": [[2, 1], [2, 1]]})
    plot_seed_differences(data, ["16"], {}, tmp_path / "f.png")
    assert_drawn(tmp_path / "f.png", (462, 770))


def test_target_verdict_names_size_and_shape():
    """b̂ as a share of b; 'the shape of a tilt' exactly when the shift spread is within the
    noise floor's 95th percentile; significant falls counted."""
    from trafl.evaluation.report import target_verdict

    t = {
        "b": 4.0,
        "num_problems": 48,
        "fit": {"b_hat": 1.0, "se": 0.1},
        "shifts": {"std": 0.7, "noise_floor_std": 0.6, "noise_floor_q95": 0.75},
        "violations": {"num_significant": 2},
    }
    text = target_verdict("trafl", t)
    assert "b̂ = 1.00 ± 0.10 (25 % of b)" in text and "within sampling noise" in text
    assert "2 of 48 problems lost success significantly" in text
    t["shifts"]["std"] = 1.8
    assert "scatter 3.0x the sampling noise (not one tilt)" in target_verdict("trafl", t)
    t["b"] = None
    assert "no tilt target; the tilt that fits it best is b̂ = 1.00" in target_verdict("d1", t)
