"""The benchmark scripts still run against the current API (at toy sizes; nothing is timed).

Speed is measured by the scripts themselves (benchmarks/RESULTS.md); these tests only keep
them working and check what must hold at any size: exact sampler modes replay exactly, and a
step's bookkeeping is consistent."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOY = ["rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.sampler.gen_length=8",
       "rollout.sampler.steps=4"]  # fmt: skip


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("objective", ["trafl", "diffu_grpo"])
def test_step_time_measures_a_step(objective):
    result = load_script("step_time").measure(objective, 1, "cpu", TOY)
    assert result["step_s"] == pytest.approx(result["sample_s"] + result["update_s"])
    assert result["sample_s"] > 0 and result["update_s"] > 0
    assert result["peak_rss_mb"] >= result["rss_after_build_mb"] > 0
    assert result["inner_updates"] == (1 if objective == "trafl" else 12)


def test_sampler_modes_exact_modes_replay_exactly(tmp_path):
    out = tmp_path / "modes.json"
    args = [
        "--problems",
        "3",
        "--samples",
        "2",
        "--gen-length",
        "8",
        "--block-length",
        "4",
        "--steps",
        "8",
        "--out",
        str(out),
    ]
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sampler_modes.py"), *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    modes = json.loads(out.read_text())["modes"]
    assert set(modes) == set(load_script("sampler_modes").MODES)
    for name in ("plain", "parallel_0.9", "parallel_0.7"):  # recorded log-probs are exact
        assert modes[name]["mean_abs_logp_gap_to_exact_replay"] == pytest.approx(0, abs=1e-5)
    assert modes["plain"]["speedup_vs_plain"] == 1.0
    assert modes["plain"]["pass_diff_vs_plain"]["pass@1"] == [0.0, 0.0, 0.0]
    assert modes["plain"]["denoiser_calls_per_batch"] == 8
    assert modes["parallel_0.7"]["denoiser_calls_per_batch"] <= 8


def test_mixed_lengths_rows_equal_one_batch_per_length(tmp_path):
    out = tmp_path / "mixed.json"
    args = [
        "--problems",
        "3",
        "--samples",
        "2",
        "--lengths",
        "8",
        "12",
        "--batch-size",
        "4",
        "--repeats",
        "1",
        "--out",
        str(out),
    ]
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "mixed_lengths.py"), *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    result = json.loads(out.read_text())["result"]
    assert result["rows_identical"] == 1.0  # same per-row noise: the same completions
    # 6 rows per length in micro-batches of 4: lengths 8 and 12 at steps L/2 -> 4 + 6 calls
    # per batch of one length; mixed batches run 6 calls each (their longest row)
    assert result["denoiser_calls_separate"] == 2 * 4 + 2 * 6
    assert result["denoiser_calls_mixed"] == 3 * 6
    for per in result["per_length"].values():
        assert per["mean_reward_separate"] == per["mean_reward_mixed"]


def test_sampler_ab_compares_a_revision_with_the_working_tree():
    args = [
        "--rev",
        "HEAD",
        "--problems",
        "2",
        "--samples",
        "1",
        "--modes",
        "none",
        "--rounds",
        "1",
    ]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sampler_ab.py"), *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    unchanged = (
        subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", "src/trafl/sampling/sampler.py"], cwd=ROOT
        ).returncode
        == 0
    )
    if unchanged:  # (a clean checkout, as in CI): HEAD's sampler is the working tree's
        assert "identical completions: True" in done.stdout
    else:
        assert "identical completions:" in done.stdout
