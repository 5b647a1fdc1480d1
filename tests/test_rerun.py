"""scripts/rerun.py: a packed run trained again from its config is the same run, bit for bit,
and the check names the first number that differs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from trafl.core.errors import RunStopped

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import packs  # noqa: E402
import rerun  # noqa: E402


@pytest.fixture(scope="module")
def packed_run(tmp_path_factory) -> Path:
    """A tiny 3-step run at a constant lr (checkpoints at 2 and 3), packed: no weights."""
    from tests.conftest import make_tiny
    from trafl.commands.train import train
    from trafl.commands.train_config import TrainConfig
    from trafl.core.config_files import load_config

    root = tmp_path_factory.mktemp("packed")
    make_tiny(seed=3).save_pretrained(root / "model")
    overrides = [f"model={root / 'model'}", f"out_dir={root / 'study' / 'run'}",
                 "rollout.prompts_per_step=2", "rollout.group_size=4", "device=cpu",
                 "rollout.sampler.gen_length=8", "rollout.sampler.steps=4", "steps=3",
                 "save_completions_every=0", "ckpt_every=2", "optim.warmup_steps=0",
                 "optim.min_lr_ratio=1"]  # fmt: skip
    train(load_config(TrainConfig, None, overrides))
    packs.pack(root / "study", root / "study.tgz")
    return root / "study.tgz"


def test_a_packed_run_trained_again_is_the_same_run(packed_run, tmp_path, capsys):
    """Trained again from the pack: all 3 steps' logs equal to the bit, the weights back; a
    rerun stopped early (``--steps 2``) continues to the end when started again."""
    rerun.main([str(packed_run), "run", "--out", str(tmp_path / "again")])
    assert "the same run, bit for bit, at all 3 steps" in capsys.readouterr().out
    assert (tmp_path / "again" / "model" / "model.safetensors").is_file()
    rerun.main([str(packed_run), "run", "--out", str(tmp_path / "short"), "--steps", "2"])
    assert "at all 2 steps" in capsys.readouterr().out
    rerun.main([str(packed_run), "run", "--out", str(tmp_path / "short")])  # resumes at 2
    assert "at all 3 steps" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="has no other/metrics.jsonl; its runs: run"):
        rerun.main([str(packed_run), "other"])
    packs.unpack(packed_run, tmp_path / "unpacked")  # logs, no checkpoint
    with pytest.raises(SystemExit, match="holds a log but no checkpoint to resume from"):
        rerun.main([str(packed_run), "run", "--out", str(tmp_path / "unpacked/run")])


@pytest.fixture
def tampered(packed_run, tmp_path) -> Path:
    """The pack with its loss at step 2 off by one ulp: a run that is not the packed one."""
    packs.unpack(packed_run, tmp_path / "study")
    log = tmp_path / "study" / "run" / "metrics.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    rows[1]["loss"] = math.nextafter(rows[1]["loss"], math.inf)
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    packs.pack(tmp_path / "study", tmp_path / "tampered.tgz")
    return tmp_path / "tampered.tgz"


def logged_steps(run: Path) -> list[int]:
    return [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_rerun_that_differs_stops_at_the_first_difference(tampered, tmp_path):
    """The rerun stops once step 2's row is logged (checked after each step), naming it: it
    trains no step 3 and saves no checkpoint of the differing step."""
    with pytest.raises(SystemExit, match=r"first difference at step 2, loss: .*--anew trains it"):
        rerun.main([str(tampered), "run", "--out", str(tmp_path / "again")])
    assert logged_steps(tmp_path / "again") == [1, 2]
    assert not list((tmp_path / "again").glob("checkpoint-*"))


def test_a_stop_signal_is_one_line_and_its_exit_code(packed_run, tmp_path, monkeypatch, capsys):
    """A run stopped by a signal (checkpointed by the trainer) ends the rerun with the stop's one
    line and exit code, no traceback: the same command resumes it."""

    def stopped(*_args, **_kwargs):
        raise RunStopped("stopped by SIGTERM after step 3; saved X/checkpoint-3", exit_code=143)

    monkeypatch.setattr(rerun, "rerun", stopped)
    with pytest.raises(SystemExit) as exit_:
        rerun.main([str(packed_run), "run", "--out", str(tmp_path / "again")])
    assert exit_.value.code == 143
    err = capsys.readouterr().err
    assert err.startswith("stopped by SIGTERM after step 3") and err.count("\n") == 1


def test_anew_trains_through_a_difference_and_names_it(tampered, tmp_path, capsys):
    """``--anew`` (another kind of CPU): the same pack trains all 3 steps and ends by naming the
    first difference. Into the folder the stopped rerun left (a log, no checkpoint) it is
    refused in one line that says what to do, not with the pack's evaluations' advice."""
    with pytest.raises(SystemExit):
        rerun.main([str(tampered), "run", "--out", str(tmp_path / "stopped")])
    with pytest.raises(
        SystemExit, match=r"no checkpoint to resume from .*: delete it or train into another --out$"
    ):
        rerun.main([str(tampered), "run", "--out", str(tmp_path / "stopped"), "--anew"])
    rerun.main([str(tampered), "run", "--out", str(tmp_path / "anew"), "--anew"])
    assert logged_steps(tmp_path / "anew") == [1, 2, 3]
    assert "trained anew to step 3; first difference from the pack: step 2, loss" in (
        capsys.readouterr().out
    )


def test_fewer_steps_of_a_run_whose_schedule_depends_on_its_length_is_refused(packed_run, tmp_path):
    """With warm-up, the lr at step 2 of a 2-step run is not the 3-step run's: refused."""
    packs.unpack(packed_run, tmp_path / "study")
    config = tmp_path / "study" / "run" / "config.yaml"
    config.write_text(config.read_text().replace("warmup_steps: 0", "warmup_steps: 10"))
    packs.pack(tmp_path / "study", tmp_path / "warm.tgz")
    with pytest.raises(SystemExit, match=r"depends on its length \(warmup_steps=10"):
        rerun.main(
            [str(tmp_path / "warm.tgz"), "run", "--out", str(tmp_path / "x"), "--steps", "2"]
        )
    assert not (tmp_path / "x").exists()


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


def test_windowed_means_of_two_logs_side_by_side():
    """Windows of 2 steps: (1, 2) and (3, 4); a nan is skipped, a window with a step missing is
    left out (step 6 without step 5), and only the new log's whole windows are rows."""
    nan = math.nan
    rewards = (0, 1, 1, 1, 0, 0)
    packed = {s: {"reward": r, "loss": 1.0} for s, r in enumerate(rewards, start=1)}
    new = {1: {"reward": 0.5}, 2: {"reward": nan}, 3: {"reward": 0.25}, 4: {"reward": 0.75}}
    new[6] = {"reward": 1.0}
    assert rerun.window_means(new, "reward", 2) == {2: 0.5, 4: 0.5}
    assert rerun.window_means(packed, "reward", 2) == {2: 0.5, 4: 1.0, 6: 0.0}
    assert rerun.window_table(packed, new, 2) == [
        "| steps | reward (packed / new) | loss (packed / new) | log_ratio_success (packed / new) "
        "| log_ratio_failure (packed / new) |",
        "|---|---|---|---|---|",
        "| 1-2 | 0.5 / 0.5 | 1 / nan | nan / nan | nan / nan |",
        "| 3-4 | 1 / 0.5 | 1 / nan | nan / nan | nan / nan |",
    ]
