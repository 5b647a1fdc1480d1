"""scripts/rerun.py: a packed run trained again from its config is the same run, bit for bit,
and the check names the first number that differs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import packs  # noqa: E402
import rerun  # noqa: E402


def test_a_packed_run_trained_again_is_the_same_run(tmp_path, capsys):
    """A tiny 3-step run, packed (no weights), trained again from the pack: all 3 steps' logs
    equal to the bit, and the weights are back; ``--steps 2`` stops early and compares 2."""
    from tests.conftest import make_tiny
    from trafl.commands.train import train
    from trafl.commands.train_config import TrainConfig
    from trafl.core.config_files import load_config

    make_tiny(seed=3).save_pretrained(tmp_path / "model")
    overrides = [f"model={tmp_path / 'model'}", f"out_dir={tmp_path / 'study' / 'run'}",
                 "rollout.prompts_per_step=2", "rollout.group_size=4", "device=cpu",
                 "rollout.sampler.gen_length=8", "rollout.sampler.steps=4", "steps=3",
                 "save_completions_every=0", "ckpt_every=2"]  # fmt: skip
    train(load_config(TrainConfig, None, overrides))
    packs.pack(tmp_path / "study", tmp_path / "study.tgz")
    rerun.main([str(tmp_path / "study.tgz"), "run", "--out", str(tmp_path / "again")])
    assert "the same run, bit for bit, at all 3 steps" in capsys.readouterr().out
    assert (tmp_path / "again" / "model" / "model.safetensors").is_file()
    rerun.main(
        [str(tmp_path / "study.tgz"), "run", "--out", str(tmp_path / "short"), "--steps", "2"]
    )
    assert "at all 2 steps" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="has no other/metrics.jsonl; its runs: run"):
        rerun.main([str(tmp_path / "study.tgz"), "other"])
    packs.unpack(tmp_path / "study.tgz", tmp_path / "unpacked")  # logs, no checkpoint
    with pytest.raises(SystemExit, match="holds a log but no checkpoint to resume from"):
        rerun.main([str(tmp_path / "study.tgz"), "run", "--out", str(tmp_path / "unpacked/run")])


def test_the_first_difference_is_named_and_wall_clock_time_is_not_one():
    """One ulp of one loss is a difference; the logged time is not, nor a nan against a nan; a
    number logged by one run and not the other is."""
    loss = 0.005978953558951616
    packed = {
        s: {"step": s, "time": 8.2 * s, "loss": loss, "log_ratio_success": math.nan}
        for s in (1, 2, 3)
    }
    same = {s: {**r, "time": r["time"] + 1.0} for s, r in packed.items()}
    assert rerun.first_difference(packed, same) is None
    off = {s: dict(r) for s, r in same.items()}
    off[2]["loss"] = math.nextafter(loss, 1.0)
    off[3]["loss"] = 1.0  # later differences are not reported first
    assert rerun.first_difference(packed, off) == (
        f"step 2, loss: packed {loss!r}, now {math.nextafter(loss, 1.0)!r}"
    )
    extra = {s: {**r, "grad_norm": 0.1} if s == 3 else r for s, r in packed.items()}
    assert rerun.first_difference(packed, extra) == "step 3, grad_norm: packed None, now 0.1"


def test_a_resumed_log_counts_each_step_once_the_last_time_it_was_logged():
    text = "\n".join(
        json.dumps(r)
        for r in ({"step": 1, "loss": 1.0}, {"step": 2, "loss": 2.0}, {"step": 2, "loss": 2.5})
    )
    assert rerun.by_step(text) == {1: {"step": 1, "loss": 1.0}, 2: {"step": 2, "loss": 2.5}}
