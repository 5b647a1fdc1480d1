"""``trafl eval`` end to end on the shipped base with tiny n: a valid eval.json and plots."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from trafl.commands.eval import (
    EvalConfig,
    default_out_dir,
    evaluate,
    llada_sampler,
    model_name,
    resolve_model_path,
)
from trafl.core.config import ConfigError
from trafl.core.config_files import load_config

BASE = Path(__file__).resolve().parents[1] / "models" / "countdown-base"


def test_eval_writes_a_valid_eval_json_and_plots(tmp_path):
    cfg = load_config(
        EvalConfig,
        None,
        [
            f"model={BASE}",
            "num_problems=6",
            "num_samples=4",
            "gen_lengths=[16,24]",
            f"out_dir={tmp_path}",
            "bootstrap=50",
            "heatmap_problems=2",
            "device=cpu",
        ],
    )
    evaluate(cfg)
    result = json.loads((tmp_path / "eval.json").read_text())
    assert set(result["lengths"]) == {"16", "24"}
    assert len(result["problems_sha1"]) == 40 and "target" not in result["lengths"]["16"]
    for res in result["lengths"].values():
        assert set(res["pass_at_k"]) == {"1", "2", "4"}
        curve = [res["pass_at_k"][k]["mean"] for k in ("1", "2", "4")]
        assert curve == sorted(curve)  # pass@k never decreases in k
        for k in ("1", "2", "4"):
            lo, hi = res["pass_at_k"][k]["ci"]
            assert lo <= res["pass_at_k"][k]["mean"] <= hi
        assert res["pass_at_k"]["1"]["mean"] == pytest.approx(res["mean_reward"])
        assert 0 <= res["greedy_accuracy"] <= 1
        assert res["coverage"]["num_prompts"] == 6
        # per problem, the correct solutions' counts (the target instrument's q_c) and set sizes
        assert [sum(c.values()) for c in res["solution_counts"]] == res["correct_counts"]
        assert len(res["solution_set_sizes"]) == 6
        assert all(size >= 2 for size in res["solution_set_sizes"])  # countdown: min_solutions
        assert 0 <= res["locking"]["order_share_of_mode"] <= 1
    for name in ("pass_at_k.png", "coverage.png", "reveal_orders_L16.png", "reveal_orders_L24.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_an_evaluation_killed_while_writing_its_eval_json_leaves_none(tmp_path, monkeypatch):
    """An eval.json found is taken as done (the demo reuses it): a kill while it is written
    must not leave half of one. Here the kill lands on the fsync before the rename."""
    import trafl.core.files

    def killed(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(trafl.core.files.os, "fsync", killed)
    args = [f"model={BASE}", "num_problems=2", "num_samples=2", "gen_lengths=[16]"]
    cfg = load_config(EvalConfig, None, [*args, f"out_dir={tmp_path}", "device=cpu"])
    with pytest.raises(KeyboardInterrupt):
        evaluate(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval_config.yaml"]


def test_model_path_resolution(tmp_path):
    assert resolve_model_path(str(BASE)) == BASE
    with pytest.raises(ValueError, match="neither a model folder nor a run folder"):
        resolve_model_path(str(tmp_path))


def test_a_runs_model_and_checkpoints_are_evaluated_into_the_run_folder(tmp_path, monkeypatch):
    """RUN/model -> RUN/eval, RUN/checkpoint-N/model -> RUN/eval-checkpoint-N (what an
    interrupted run folder resolves to; RUN/eval-N is the demo's), anything else ->
    runs/eval/NAME; the results name them the same way."""
    run = tmp_path / "trafl-b4"
    for folder in ("model", "checkpoint-300/model", "elsewhere/checkpoint-7/model"):
        (run / folder).mkdir(parents=True)
    (run / "config.yaml").write_text("steps: 300\n")
    cfg = EvalConfig()
    cases = {
        run / "model": (run / "eval", "trafl-b4"),
        run / "checkpoint-300" / "model": (run / "eval-checkpoint-300", "trafl-b4/checkpoint-300"),
        run / "elsewhere" / "checkpoint-7" / "model": (Path("runs/eval/model"), "checkpoint-7"),
        Path("models/countdown-base"): (Path("runs/eval/countdown-base"), "countdown-base"),
    }
    for path, (out, name) in cases.items():
        assert (default_out_dir(cfg, path), model_name(path)) == (out, name), path
    (run / "model").rename(run / "unfinished")  # an interrupted run: its latest checkpoint
    assert default_out_dir(cfg, resolve_model_path(run)) == run / "eval-checkpoint-300"
    monkeypatch.chdir(run)  # `model=.` inside the run folder names the run, not ""
    assert model_name(resolve_model_path(".")) == "trafl-b4/checkpoint-300"
    assert default_out_dir(replace(cfg, out_dir="x"), run / "model") == Path("x")


def test_correctness_is_the_correct_component_when_a_task_reports_one():
    """A weighted total (2 * correct + 0.5 * format) is not correctness: format-only rewards of
    1.0 must not count as solved."""
    import torch

    from trafl.core.batch import Rollout, Trajectory
    from trafl.run.rollouts import solved

    def scored(rewards, components):
        empty = torch.zeros(3, 1)
        traj = Trajectory(empty.long(), empty, empty)
        return Rollout(
            empty,
            empty.bool(),
            empty.long(),
            traj,
            rewards=torch.tensor(rewards),
            components=components,
        )

    weighted = scored([1.0, 2.5, 0.5], {"correct": torch.tensor([0.0, 1.0, 0.0])})
    assert solved(weighted).tolist() == [False, True, False]
    plain = scored([1.0, 0.0, 0.9], {})
    assert solved(plain).tolist() == [True, False, False]


def test_the_default_sampler_is_llada_steps_half_the_length_at_every_length():
    """What steps_per_token=0.5 did before the sampler section: one block of L tokens in L/2
    steps, temperature 1, 512 rows per call; greedy is the same schedule at temperature 0."""
    cfg = EvalConfig()
    for length in (16, 24, 32):
        s = cfg.sampler_at(length)
        assert (s.gen_length, s.resolved_block_length(), s.resolved_steps()) == (
            length,
            length,
            length // 2,
        )
        assert (s.temperature, s.top_p, s.batch_size) == (1.0, None, 512)
        greedy = cfg.sampler_at(length, greedy=True)
        assert greedy == replace(s, temperature=0.0)
    odd = EvalConfig(gen_lengths=[9, 25], sampler=llada_sampler(25))  # an even reference: 26
    assert [odd.sampler_at(n).resolved_steps() for n in (9, 25)] == [round(9 / 2), round(25 / 2)]


def test_sampler_errors_name_the_fix():
    with pytest.raises(ConfigError, match=r"'steps_per_token' is now sampler\.steps"):
        load_config(EvalConfig, None, ["steps_per_token=0.5"])
    with pytest.raises(ConfigError, match=r"'temperature' is now sampler\.temperature"):
        load_config(EvalConfig, None, ["temperature=0.7"])
    with pytest.raises(ConfigError, match=r"gen_lengths has 64 > sampler\.gen_length=32"):
        load_config(EvalConfig, None, ["gen_lengths=[16,64]"])
    with pytest.raises(ConfigError, match="not a multiple of block_length 8"):
        load_config(EvalConfig, None, ["sampler.block_length=8", "gen_lengths=[12]"])
