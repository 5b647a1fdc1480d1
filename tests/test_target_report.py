"""scripts/target_report.py: its training-monitor table against a plain reading of two
synthetic runs' metrics.jsonl, and the committed docs/target reports against what it makes of
the committed runs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import target_report  # noqa: E402


def write_run(folder: Path, ratios: list[float], rewards: list[float], replay: bool) -> None:
    folder.mkdir(parents=True)
    rows = [
        {"step": i + 1, "loss": 0.5 * q, "loss_at_ref": 0.5, "reward": r}
        for i, (q, r) in enumerate(zip(ratios, rewards, strict=True))
    ]
    if replay:  # nothing replayed before REPLAY_FROM (would lower the mean if counted), then 1/4
        for row in rows:
            row["replay_rows"] = 0.25 if row["step"] >= target_report.REPLAY_FROM else 0.0
        rows[-1] |= {"replay_stored": 7.0, "replay_prompts": 3.0}
    rows.insert(3, {"step": 3, "loss": 1.0, "loss_at_ref": 0.0, "reward": 0.0})  # no signal
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_monitor_table_reads_ratio_quantiles_first_blowup_and_reward(tmp_path):
    skip = target_report.MONITOR_FROM
    # seed 0: 1000 and 0.001 in the last skipped steps (1000 counts only for "first > 100";
    # 0.001 would shift every quantile by one if the skip were off by one), then 1..100
    ratios0 = [1.0] * (skip - 2) + [1000.0, 0.001] + [float(v) for v in range(1, 101)]
    rewards0 = [0.1] * 10 + [0.5] * (len(ratios0) - 10)
    # seed 1: 1, 1.5, .., 50.5 after the skipped steps, never above 100; the last 50 rewards
    # are 25 ones then 25 zeros (mean 0.5; any other window gives another mean)
    ratios1 = [1.0] * skip + [v / 2 for v in range(2, 102)]
    rewards1 = [0.0] * 10 + [0.2] * (len(ratios1) - 60) + [1.0] * 25 + [0.0] * 25
    write_run(tmp_path / "trafl-b2-s0", ratios0, rewards0, replay=True)
    write_run(tmp_path / "trafl-b2-s1", ratios1, rewards1, replay=False)
    # seed 2 has not finished (it is not among the seeds given): it would move every column
    write_run(tmp_path / "trafl-b2-s2", [1e6] * len(ratios1), [9.0] * len(ratios1), replay=True)
    lines = target_report.training_monitor(tmp_path, {"trafl-b2": [0, 1]})
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    # 100 values after the skip: indices 50, 10 and 90 of each sorted list, then the seed mean
    median, q10, q90 = (51 + 26) / 2, (11 + 6) / 2, (91 + 46) / 2
    assert cells == [
        "trafl-b2",
        "2",
        f"{median:.1f} ({q10:.1f}, {q90:.1f})",
        f"{skip - 1}",  # only seed 0 passed 100, at step skip - 1
        f"{(0.1 + 0.0) / 2:.3f}",
        f"{(0.5 + 0.5) / 2:.3f}",
        "0.250",  # only seed 0 replayed: the mean is over the seeds that did
        "7 (3)",
    ]


def test_between_checkpoints_averages_each_interval_over_finished_seeds(tmp_path):
    """Reward means and ratio medians per checkpoint interval, by hand: seed 0's ratio is the
    step and seed 1's twice it, so the medians over steps 1-40 are 20.5 and 41; the no-signal
    row (loss_at_ref 0) stays out (counted, seed 0's first reward mean would be 4/41)."""
    write_run(
        tmp_path / "trafl-b4-s0", [float(i) for i in range(1, 81)], [0.1] * 40 + [0.5] * 40, False
    )
    write_run(
        tmp_path / "trafl-b4-s1", [2.0 * i for i in range(1, 81)], [0.0] * 40 + [1.0] * 40, False
    )
    runs = {
        "diffu_grpo": {0: {40: {}}},  # no balance monitor: not a row (and no folder to read)
        "trafl-b4": {0: {40: {}, 80: {}}, 1: {40: {}, 80: {}}, 2: {40: {}}},  # seed 2 unfinished
    }
    lines = target_report.between_checkpoints(tmp_path, runs)
    assert lines[2:] == [
        f"| trafl-b4 | 2 | 1-40 | {(0.1 + 0.0) / 2:.3f} | {(20.5 + 41) / 2:.2f} | nan |",
        f"| trafl-b4 | 2 | 41-80 | {(0.5 + 1.0) / 2:.3f} | {(60.5 + 121) / 2:.2f} | nan |",
    ]


def test_the_logged_gap_is_averaged_over_the_steps_that_logged_both_sides():
    """Steps 1-4: gaps 1 - 0 and 3 - 1 (steps 1, 2), a step with no failure row (NaN), one
    without the monitor: the window's gap is the mean of the two, (1 + 2) / 2."""
    rows = [
        {"step": 1, "loss": 1.0, "loss_at_ref": 1.0, "reward": 0.0,
         "log_ratio_success": 1.0, "log_ratio_failure": 0.0},
        {"step": 2, "loss": 1.0, "loss_at_ref": 1.0, "reward": 0.0,
         "log_ratio_success": 3.0, "log_ratio_failure": 1.0},
        {"step": 3, "loss": 1.0, "loss_at_ref": 1.0, "reward": 1.0,
         "log_ratio_success": 9.0, "log_ratio_failure": math.nan},
        {"step": 4, "loss": 1.0, "loss_at_ref": 1.0, "reward": 1.0},
    ]  # fmt: skip
    ((reward, ratio, gap),) = target_report.windows(rows, [4])
    assert (reward, ratio, gap) == (0.5, 1.0, 1.5)


def test_a_knob_or_variant_is_held_against_the_run_without_it_at_the_same_step():
    at = {300: {0: {300: {}}}, 100: {0: {100: {}}}}
    runs = {
        "trafl-b4": at[300],
        "trafl-replay0.25-b4": at[300],
        "trafl-usq-b4": at[300],
        "trafl-mu4-b4": at[100],  # 100 steps (mu = 4): not comparable at its last step
        "trafl-ref0.25-b8": at[300],  # no trafl-b8 to hold it against
        "trafl_path-b4": at[300],
        "diffu_grpo": at[100],
        "heldout-trafl-b4-tp128": at[300],
        "heldout-trafl-replay0.25-b4-tp128": at[300],
    }
    got = {m: target_report.plain_run(m, runs) for m in runs}
    assert got == {
        "trafl-b4": None,
        "trafl-replay0.25-b4": "trafl-b4",
        "trafl-usq-b4": "trafl-b4",
        "trafl-mu4-b4": None,
        "trafl-ref0.25-b8": None,
        "trafl_path-b4": None,
        "diffu_grpo": None,
        "heldout-trafl-b4-tp128": None,
        "heldout-trafl-replay0.25-b4-tp128": "heldout-trafl-b4-tp128",
    }


def test_finished_seeds_are_those_at_the_last_checkpoint():
    """A seed stopped before the method's last evaluated step is not finished: it stays out of
    the last-checkpoint tables and (through the same seeds) the monitor table."""
    seeds = {0: {100: {}, 300: {}}, 1: {100: {}}, 2: {100: {}, 300: {}}, 3: {}}
    assert target_report.finished(seeds) == (300, [0, 2])


@pytest.mark.parametrize(
    "runs, docs, extra",
    [
        ("results/target/study.tgz", "docs/target", []),
        ("results/target/long.tgz", "docs/target/long", []),
        ("results/target/long2000.tgz", "docs/target/long2000", []),
        ("results/target/usq.tgz", "docs/target/usq", []),
        (
            "results/target/long2000-remade.tgz",
            "docs/target/long2000-remade",
            ["--beside", "committed=results/target/long2000.tgz"],
        ),
        (
            "results/target/random.tgz",
            "docs/target/random",
            ["--beside", "low-confidence=results/target/long.tgz"],
        ),
        (
            "results/target/random-long.tgz",
            "docs/target/random-long",
            ["--beside", "section9=results/target/random.tgz"],
        ),
        ("results/target/quiet.tgz", "docs/target/quiet", ["--rule"]),
        ("results/target/direct.tgz", "docs/target/direct/instrument", []),
        ("results/target/direct-random.tgz", "docs/target/direct-random/instrument", []),
        ("results/target/direct-long.tgz", "docs/target/direct-long/instrument", []),
        ("results/target/direct-longer.tgz", "docs/target/direct-longer/instrument", []),
        ("results/target/drawn.tgz", "docs/target/drawn", []),
        ("results/target/drawn-path.tgz", "docs/target/drawn-path", []),
        ("results/target/drawn-seq.tgz", "docs/target/drawn-seq", []),
        ("results/target/drawn-fresh.tgz", "docs/target/drawn-fresh", []),
    ],
)
def test_committed_report_is_what_the_committed_runs_give(
    runs, docs, extra, tmp_path, monkeypatch, capsys
):
    """The committed results.md is what the report, as it is now, makes of the committed runs:
    a change to the report (or the instrument it reads) that would change a number the docs
    quote fails here until the report is regenerated and the prose checked. The files it says
    it wrote are the files it wrote (no monitor.png without TraFL runs)."""
    monkeypatch.chdir(ROOT)  # the report names its input as given: the docs' relative path
    target_report.main([runs, *extra, "--out", str(tmp_path)])
    assert (tmp_path / "results.md").read_text() == (ROOT / docs / "results.md").read_text()
    said = capsys.readouterr().out.strip().split("\n")[-1].split(", ")
    assert {tmp_path / said[0].removeprefix("wrote ")} | {tmp_path / n for n in said[1:]} == set(
        tmp_path.iterdir()
    )


def fake_eval(b: float, b_hat: float, gap: float) -> dict:
    """The fields ``summary`` reads of one evaluation, with a target section."""
    length = {
        "pass_at_k": {"1": {"mean": 0.1}, "8": {"mean": 0.3}, "16": {"mean": 0.5}},
        "coverage_at_k": {"distinct": {"16": 1.0}, "coverage": {"16": 0.4}},
        "locking": {"order_share_of_mode": 0.2},
        "target": {"b": b, "fit": {"b_hat": b_hat}, "balance": {"gap": gap},
                   "achieved": {"distinct": {"16": 1.0}}},
    }  # fmt: skip
    return {"lengths": {"16": length}}


def test_beside_sets_each_study_at_its_own_last_checkpoint_in_units_of_b():
    """b_hat / b and gap / b per seed by hand; each study at its own last checkpoint (a seed
    that stopped early is left out); a method only one study has, or one not trained for a
    tilt, gets no row."""
    here = {
        "trafl-b4": {0: {1000: fake_eval(4, 2.0, 1.0)}, 1: {1000: fake_eval(4, 3.0, 2.0)}},
        "trafl-b2": {0: {1000: fake_eval(2, 1.0, 0.5)}},
        "d1": {0: {300: fake_eval(math.nan, 1.0, 0.5)}},
    }
    other = {
        "trafl-b4": {
            0: {1000: fake_eval(4, 1.0, 0.4), 2000: fake_eval(4, 1.6, 0.8)},
            1: {1000: fake_eval(4, 1.2, 0.4)},  # stopped before 2000
        },
        "d1": {0: {300: fake_eval(math.nan, 1.0, 0.5)}},
    }
    base = {"config": {"sampler": {"gen_length": 16, "steps": 8, "temperature": 1.0,
                                   "remasking": "low_confidence"}}}  # fmt: skip
    lines = target_report.beside_section(here, "lc", base, other)
    assert lines[0] == (
        "## Beside lc: the same methods, decoded at L = 16, 8 denoiser calls, temperature 1, "
        "low-confidence remasking"
    )
    rows = [line for line in lines if line.startswith("| trafl") or line.startswith("| d1")]
    assert rows == [
        "| trafl-b4 | here | 2 | 1000 | 0.625 ± 0.177 | 0.500, 0.750 | 0.375 ± 0.177 | 0.250, 0.500 |",
        "| trafl-b4 | lc | 1 | 2000 | 0.400 | 0.400 | 0.200 | 0.200 |",
    ]


def test_beside_must_name_its_label():
    with pytest.raises(SystemExit):
        target_report.main(["results/target/long.tgz", "--beside", "results/target/usq.tgz"])


@pytest.mark.parametrize(
    "diffs, verdict",
    [
        # mean 0.3, sd 0.1: every seed above and the mean beyond 2 sd
        ([0.2, 0.3, 0.4], "supported"),
        # mean 0.3, sd 0.2: beyond 1 sd, within 2 sd
        ([0.1, 0.3, 0.5], "not settled"),
        # mean 0.4, sd 0.1 * sqrt(13) = 0.36: beyond 1 sd, but a seed below the control
        ([-0.01, 0.61, 0.6], "not settled"),
        # mean 0.3, sd 0.4: within 1 sd of 0
        ([-0.1, 0.3, 0.7], "refuted"),
        # mean below 0 with a tiny sd
        ([-0.11, -0.1, -0.09], "refuted"),
        ([0.5], "one seed: no rule"),
    ],
)
def test_the_paired_rule_is_the_one_written_before_the_runs(diffs, verdict):
    """docs/TARGET.md's third diagnosis: supported if every seed's difference is positive and
    the mean exceeds twice the sample sd, refuted if the mean is negative or below one sd."""
    assert target_report.paired_rule(diffs) == verdict


def test_variants_are_paired_by_seed_at_the_common_last_step():
    """Seed 2 of the arm has no control at step 2400, so it is left out; b_hat differences by
    hand: 2.5 - 2.0 and 2.9 - 2.2 (mean 0.6, sd 0.1 * sqrt(2) = 0.141)."""
    runs = {
        "trafl-b4": {0: {2400: fake_eval(4, 2.0, 1.0)}, 1: {2400: fake_eval(4, 2.2, 0.9)}},
        "trafl-cool-b4": {
            0: {2400: fake_eval(4, 2.5, 1.2)},
            1: {2400: fake_eval(4, 2.9, 1.1)},
            2: {2400: fake_eval(4, 9.0, 9.0)},
        },
    }
    lines = target_report.variant_seeds(runs, rule=True)
    rows = [line for line in lines if line.startswith("| trafl")]
    assert rows == [
        "| trafl-cool-b4 - trafl-b4 | 2400 | 0 | 2.500 | 2.000 | +0.500 | 1.200 | 1.000 |",
        "| trafl-cool-b4 - trafl-b4 | 2400 | 1 | 2.900 | 2.200 | +0.700 | 1.100 | 0.900 |",
    ]
    assert lines[-1] == (
        "- trafl-cool-b4 - trafl-b4: b_hat difference 0.600 ± 0.141 over 2 seeds; "
        "rule: **supported**"
    )
    assert not target_report.variant_seeds({"trafl-b4": runs["trafl-b4"]}, rule=True)


def test_progress_leaves_out_runs_with_no_tilt_to_divide_by(tmp_path):
    """b_hat / b has no meaning for a run trained at b = 0 (the direct fit's drift) nor for one
    trained for no tilt (d1): with only those there is no figure; with a tilted run there is."""
    runs = {
        "direct-b0": {0: {2000: fake_eval(0.0, -0.1, 0.0)}},
        "d1": {0: {300: fake_eval(math.nan, 1.0, 0.5)}},
    }
    target_report.progress(runs, tmp_path)
    assert not (tmp_path / "progress.png").exists()
    runs["direct-b4"] = {0: {2000: fake_eval(4.0, 2.6, 1.0)}}
    target_report.progress(runs, tmp_path)
    assert (tmp_path / "progress.png").is_file()


def test_the_header_names_the_script_whose_runs_these_are():
    """The direct fit's runs (all ``direct-*``) are not target_study.py's."""
    assert target_report.made_by({"direct-b4": {}, "direct-b0": {}}) == "scripts/direct_fit.py"
    assert target_report.made_by({"direct-b4": {}, "trafl-b4": {}}) == "scripts/target_study.py"
    assert target_report.made_by({}) == "scripts/target_study.py"
