"""The command line: config precedence reaches the run, errors are clear, runs resume exactly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import assert_same_weights, make_tiny
from trafl.commands import pretrain as pretrain_module
from trafl.commands.cli import main
from trafl.commands.pretrain import PretrainConfig, pretrain
from trafl.core.config_files import load_config, load_saved_config
from trafl.models import load_model

SMALL = ["arch.hidden_size=16", "arch.num_layers=1", "arch.num_heads=2", "arch.mlp_hidden=32",
         "batch_size=8", "log_every=1", "eval_every=0", "completion_lengths=[16]"]  # fmt: skip


def test_sample_writes_jsonl_with_rewards_and_trajectories(tmp_path, capsys):
    make_tiny().save_pretrained(tmp_path / "m")
    out = tmp_path / "s.jsonl"
    main(
        [
            "sample",
            f"model={tmp_path / 'm'}",
            "num_problems=3",
            "num_samples=2",
            "sampler.temperature=1.0",
            f"output={out}",
            "device=cpu",
        ]
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6
    for row in rows:
        assert row["reward"] in (0.0, 1.0)
        assert sorted(row["reveal_step"]) == list(range(16))  # one reveal per step by default
        assert row["prompt"].endswith(":") and "nums" in row["problem"]


def test_unknown_key_is_a_clear_error_with_exit_code_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sample", "sampler.temprature=0.5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "sampler.temprature" in err and "temperature" in err


def test_bad_choice_lists_valid_values(capsys):
    with pytest.raises(SystemExit):
        main(["sample", "sampler.remasking=lowest"])
    assert "'low_confidence', 'random'" in capsys.readouterr().err


def test_yaml_then_cli_precedence_reaches_the_saved_run_config(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("steps: 2\nseed: 5\noptim:\n  lr: 0.002\n")
    cfg = load_config(PretrainConfig, recipe, [*SMALL, f"out_dir={tmp_path / 'run'}", "seed=9"])
    assert (cfg.steps, cfg.seed, cfg.optim.lr, cfg.batch_size) == (2, 9, 0.002, 8)
    pretrain(cfg)
    saved = load_saved_config(PretrainConfig, tmp_path / "run" / "config.yaml")
    assert saved == cfg
    assert load_model(tmp_path / "run" / "model").num_parameters() > 0


def test_pretrain_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    base = [*SMALL, "steps=4", "ckpt_every=2", "optim.warmup_steps=1"]
    pretrain(load_config(PretrainConfig, None, [*base, f"out_dir={tmp_path / 'full'}"]))

    real_loss, calls = pretrain_module.sft_loss, {"n": 0}

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill after the step-2 checkpoint")
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "sft_loss", crash_on_third)
    crashed = load_config(PretrainConfig, None, [*base, f"out_dir={tmp_path / 'crash'}"])
    with pytest.raises(KeyboardInterrupt):
        pretrain(crashed)
    monkeypatch.setattr(pretrain_module, "sft_loss", real_loss)
    pretrain(
        load_config(PretrainConfig, None, [*base, f"out_dir={tmp_path / 'crash'}", "resume=true"])
    )

    assert_same_weights(tmp_path / "full" / "model", tmp_path / "crash" / "model")
    steps = [
        json.loads(r)["step"]
        for r in (tmp_path / "crash" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4]


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "trafl", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "pretrain" in out.stdout


def test_list_prints_one_section_per_registry_with_docstring_summaries(capsys):
    from trafl.objectives import OBJECTIVES
    from trafl.tasks import TASKS

    main(["list"])
    out = capsys.readouterr().out
    headings = [line.split(" (")[0] for line in out.splitlines() if line and not line[0].isspace()]
    assert headings == ["models", "tasks", "objectives", "estimators", "sampler"]
    rows = {
        line.split()[0]: " ".join(line.split()[1:]) for line in out.splitlines() if line[:2] == "  "
    }
    assert set(TASKS.names()) | set(OBJECTIVES.names()) <= set(rows)
    assert (
        rows["dataset"]
        == "a task from any table of prompts, scored by reward functions written for TRL"
    )
    assert (
        rows["diffu_grpo"]
        == "diffu-GRPO (d1, Zhao et al. 2025): token-level PPO-clip with a k3 KL to the reference"
    )
    from trafl.commands.inspect import choices
    from trafl.sampling import SamplerConfig

    assert "low_confidence" in choices(SamplerConfig, "remasking")
    assert rows["remasking"] == ", ".join(choices(SamplerConfig, "remasking"))
    main(["list", "tasks"])
    assert capsys.readouterr().out.splitlines()[0].startswith("tasks (task=NAME")


def test_config_prints_the_resolved_config_and_runs_nothing(tmp_path, capsys):
    import yaml

    from trafl.commands.train import TrainConfig
    from trafl.core.config_files import format_config

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"out_dir: {tmp_path / 'run'}\nsteps: 50\nobjective: {{name: spg}}\n")
    main(["config", "train", str(recipe), "steps=7", "rollout.group_size=4"])
    out = capsys.readouterr().out
    assert out == format_config(
        load_config(TrainConfig, recipe, ["steps=7", "rollout.group_size=4"])
    )
    resolved = yaml.safe_load(out)
    assert resolved["steps"] == 7 and resolved["rollout"]["group_size"] == 4
    assert resolved["objective"]["name"] == "spg" and resolved["estimator"]["name"] == "blockwise"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["config", "configs/train_trafl.yaml"],
            "say which command 'configs/train_trafl.yaml' is for",
        ),
        (["config", "train", "steps=0"], "steps must be >= 1, got 0"),
        (["list", "widgets"], "SECTION one of models, tasks, objectives, estimators, sampler"),
    ],
)
def test_list_and_config_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and message in err[0]
