"""The target study's runs (scripts/target_study.py, docs/TARGET.md) resolve to the training
configs they are named for: a typo in an override, a knob that sets nothing or a held-out run
that trains on the pool would otherwise show up only as a wrong row in the study's tables."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trafl.commands.train_config import TrainConfig
from trafl.core.config_files import load_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import target_study  # noqa: E402

ARGSETS = [
    [],  # the whole study as queued for a GPU
    ["--heldout", "trafl:4", "trafl:4:replay", "trafl:8:temp", "trafl:4:ref", "espo:0"]
    + ["--train-pool", "128", "--heldout-seeds", "2", "--lr", "1e-3", "--replay-share", "0.5"],
]


def resolved(args, job):
    cmd = target_study.train_command(job, args, resume=False)
    assert cmd[0] == "train"
    return load_config(TrainConfig, ROOT / cmd[1], cmd[2:])


@pytest.mark.parametrize("argv", ARGSETS, ids=["default", "heldout-knobs"])
def test_every_run_resolves_to_the_config_its_name_says(argv, tmp_path):
    args = target_study.parse([*argv, "--out", str(tmp_path)])
    jobs = target_study.jobs(args)
    names = [job.name for job in jobs]
    assert len(names) == len(set(names)), "two runs would share a folder"
    for job in jobs:
        cfg = resolved(args, job)
        assert cfg.seed == int(job.name.rsplit("-s", 1)[1])
        assert cfg.steps == job.steps and job.steps // cfg.ckpt_every == args.points
        assert cfg.out_dir == str(tmp_path / job.name)
        assert cfg.rollout.sampler.gen_length == args.length
        assert cfg.rollout.prompts_per_step == args.prompts
        if job.tilt is None:  # a reward maximiser, named by its method
            assert not cfg.objective.name.startswith("trafl")
            assert cfg.objective.name in job.name
        else:  # b = beta exactly: sequence units, leave-one-out centring
            assert cfg.objective.name in ("trafl", "trafl_path")
            assert cfg.objective.beta == job.tilt and f"-b{job.tilt:g}" in job.name
            assert cfg.objective.reward_norm == "center_loo"
        if job.heldout:  # trained off the evaluation problems
            assert cfg.task.pool == 0 and cfg.task.train_pool == args.train_pool
            assert (f"-tp{args.train_pool}" in job.name) == bool(args.train_pool)
        else:
            assert cfg.task.pool == args.pool and cfg.task.train_pool == 0
        knobs = {
            "replay": cfg.rollout.replay_share == args.replay_share,
            "ref": cfg.rollout.reference_share == args.reference_share,
            "temp": cfg.rollout.sampler.temperature == args.behaviour_temperature,
        }
        named = {k for k in knobs if f"-{k}" in job.name}
        assert {k for k, on in knobs.items() if on} == named, job.name
        if "-lr" in job.name:
            assert cfg.optim.lr == args.lr and cfg.optim.warmup_steps == args.warmup
        else:
            assert cfg.optim.lr == 1e-4 and cfg.optim.warmup_steps == 0
        if "-mu" in job.name:
            assert cfg.inner_updates == args.mu


def test_the_heldout_specs_and_seeds_multiply():
    args = target_study.parse(["--seeds", "0", "--heldout", "trafl:4", "trafl:4:replay"])
    args.heldout_seeds = 3
    names = sorted(job.name for job in target_study.jobs(args))
    expected = [f"heldout-trafl{k}-b4-s{s}" for k in ("", "-replay0.25") for s in range(3)]
    assert names == sorted(expected)


def test_only_the_scheduled_checkpoints_are_evaluated(tmp_path):
    """A run stopped by a signal at step 957 and resumed to 1000 holds checkpoint-957 beside
    the scheduled ones; the study evaluates 200, 400, ..., 1000 only, in order of step (not of
    name: 1000 sorts before 200 as text)."""
    job = target_study.Job("trafl-b4-s1", "configs/train_trafl.yaml", [], 1000, 200, 4.0, 0)
    for step in (957, 1000, 200, 400, 600, 800):
        (tmp_path / f"checkpoint-{step}" / "model").mkdir(parents=True)
    (tmp_path / "checkpoint-300").mkdir()  # no weights: not a checkpoint
    got = [int(m.parent.name[11:]) for m in target_study.scheduled(tmp_path, job)]
    assert got == [200, 400, 600, 800, 1000]


def test_a_run_whose_length_is_not_a_multiple_keeps_its_last_checkpoint(tmp_path):
    job = target_study.Job("d1-s0", "configs/train_diffu_grpo.yaml", [], 100, 30, None, 0)
    for step in (30, 60, 90, 100):
        (tmp_path / f"checkpoint-{step}" / "model").mkdir(parents=True)
    got = [int(m.parent.name[11:]) for m in target_study.scheduled(tmp_path, job)]
    assert got == [30, 60, 90, 100]
