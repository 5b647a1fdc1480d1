"""The command line: config precedence reaches the run, errors are clear, runs resume exactly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import make_tiny
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

    a = load_model(tmp_path / "full" / "model").state_dict()
    b = load_model(tmp_path / "crash" / "model").state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)
    steps = [
        json.loads(r)["step"]
        for r in (tmp_path / "crash" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4]


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "trafl", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "pretrain" in out.stdout
