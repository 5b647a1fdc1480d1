"""The target study's runs (scripts/target_study.py, docs/TARGET.md) resolve to the training
configs they are named for: a typo in an override, a knob that sets nothing or a held-out run
that trains on the pool would otherwise show up only as a wrong row in the study's tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import assert_same_weights, make_tiny
from trafl.commands.train import Trainer
from trafl.commands.train_config import TrainConfig
from trafl.core.config_files import load_config
from trafl.core.errors import TraflError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import target_study  # noqa: E402

ARGSETS = [
    [],  # the whole study as queued for a GPU
    ["--heldout", "trafl:4", "trafl:4:replay", "trafl:8:temp", "trafl:4:ref", "espo:0"]
    + ["--train-pool", "128", "--heldout-seeds", "2", "--lr", "1e-3", "--replay-share", "0.5"],
    ["--variant", "usq", "objective.unbiased_square=true", "--variant-betas", "4", "8"]
    + ["--variant", "k8", "estimator.num_masks=8", "objective.log_z=scalar"],
    ["--remasking", "random", "--denoising-steps", "16", "--betas", "4", "--baselines"],
]


def resolved(args, job):
    cmd = target_study.train_command(job, args, resume=False)
    assert cmd[0] == "train"
    return load_config(TrainConfig, ROOT / cmd[1], cmd[2:])


@pytest.mark.parametrize(
    "argv", ARGSETS, ids=["default", "heldout-knobs", "variants", "random-order"]
)
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
        assert cfg.rollout.sampler.remasking == args.remasking
        assert cfg.rollout.sampler.steps == (args.denoising_steps or args.length // 2)
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
        assert getattr(cfg.objective, "unbiased_square", False) == ("-usq-" in job.name)
        assert (getattr(cfg.estimator, "num_masks", 0) == 8) == ("-k8-" in job.name)
        assert (getattr(cfg.objective, "log_z", "") == "scalar") == ("-k8-" in job.name)
    variants = [j.name for j in jobs if "-usq-" in j.name or "-k8-" in j.name]
    want = [f"trafl-{v}-b{b}-s{s}" for v in ("usq", "k8") for b in (4, 8) for s in range(3)]
    assert sorted(variants) == (sorted(want) if args.variant else [])


def test_a_variant_value_may_name_the_runs_seed():
    """``{seed}`` in a variant's value is each run's own seed (a file of draws per seed)."""
    args = target_study.parse(
        ["--variant", "drawn", "rollout.draws=runs/d/draws-s{seed}.jsonl", "--seeds", "3"]
    )
    jobs = {j.name: j for j in target_study.jobs(args) if "-drawn-" in j.name}
    assert sorted(jobs) == [f"trafl-drawn-b4-s{s}" for s in range(3)]
    for seed in range(3):
        job = jobs[f"trafl-drawn-b4-s{seed}"]
        assert f"rollout.draws=runs/d/draws-s{seed}.jsonl" in job.overrides
        assert job.changes == ("rollout.draws",)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--variant", "un-biased", "objective.unbiased_square=true"], "a name is a-z"),
        (["--variant", "replay", "rollout.replay_share=0.5"], "and not ref, temp, replay"),
        (["--variant", "usq"], "overrides are KEY=VALUE"),
        (["--variant", "usq", "objective.unbiased_square"], "overrides are KEY=VALUE"),
    ],
)
def test_a_variant_the_study_cannot_name_or_run_is_refused_in_one_line(argv, message):
    with pytest.raises(SystemExit, match=message):
        target_study.parse(argv)


def test_evaluations_decode_as_the_rollouts_do(tmp_path, monkeypatch):
    args = target_study.parse(["--remasking", "random", "--denoising-steps", "16"])
    args.out, args.stop_at = tmp_path, None
    calls = []
    monkeypatch.setattr(target_study, "run", lambda cmd, log, deadline=None: calls.append(cmd) or 0)
    assert target_study.evaluate("models/x", tmp_path / "e", args, 4.0)
    assert {"sampler.remasking=random", "sampler.steps=16", "gen_lengths=[16]"} <= set(calls[0])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--remasking", "random"], r"sampler.remasking='low_confidence' \(here 'random'\)"),
        (["--denoising-steps", "16"], r"sampler.steps=8 \(here 16\)"),
        (["--samples", "64"], r"num_samples=128 \(here 64\)"),
        ([], None),
    ],
)
def test_a_folder_evaluated_with_another_decoding_is_refused(argv, message, tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    saved = {"num_samples": 128, "num_problems": 48, "sampler": {"gen_length": 16, "steps": 8,
             "temperature": 1.0, "remasking": "low_confidence"}}  # fmt: skip
    (base / "eval_config.yaml").write_text(yaml.safe_dump(saved))
    args = target_study.parse([*argv, "--out", str(tmp_path)])
    if message is None:
        target_study.check_folder(args)  # the same decoding: the study goes on
    else:
        with pytest.raises(SystemExit, match=message):
            target_study.check_folder(args)


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


def test_points_that_do_not_divide_the_steps_are_refused(capsys):
    """100 steps at 3 points would checkpoint 33, 66, 99: step 100, the run's end, unevaluated."""
    with pytest.raises(SystemExit):
        target_study.parse(["--points", "3"])
    assert "--points 3 must divide --baseline-steps 100" in capsys.readouterr().err
    assert target_study.parse(["--points", "4"]).points == 4  # 300 and 100 steps: both divide


def test_a_run_whose_length_is_not_a_multiple_keeps_its_last_checkpoint(tmp_path):
    job = target_study.Job("d1-s0", "configs/train_diffu_grpo.yaml", [], 100, 30, None, 0)
    for step in (30, 60, 90, 100):
        (tmp_path / f"checkpoint-{step}" / "model").mkdir(parents=True)
    got = [int(m.parent.name[11:]) for m in target_study.scheduled(tmp_path, job)]
    assert got == [30, 60, 90, 100]


# ------------------------------------------------------------------ --extend: a longer run
SMALL = ["rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.sampler.gen_length=8",
         "rollout.sampler.steps=4", "device=cpu", "save_completions_every=0",
         "objective.name=trafl", "ckpt_every=2", "eval_every=0"]  # fmt: skip


def trained(out: Path, model: Path, *extra: str) -> Path:
    cfg = load_config(TrainConfig, None, [f"model={model}", f"out_dir={out}", *SMALL, *extra])
    Trainer(cfg).train()
    return out


def test_an_extended_run_is_the_longer_run(tmp_path):
    """A finished 2-step run copied by ``extend`` and resumed at 4 steps (the study's
    ``allow_changes=[steps]``) ends with the weights of a 4-step run, bit for bit, and logged
    every step once: at a constant lr nothing before step 2 depends on the run's length. The
    copy keeps the checkpoints and evaluations, not the final model (which marks a run done)."""
    make_tiny(seed=3).save_pretrained(tmp_path / "tiny")
    tiny = tmp_path / "tiny"
    short = trained(tmp_path / "short", tiny, "steps=2")
    (short / "eval-2").mkdir()
    (short / "eval-2" / "eval.json").write_text("{}")
    assert target_study.extend(short, tmp_path / "long")
    copied = tmp_path / "long"
    assert not (copied / "model").exists() and (copied / "checkpoint-2" / "model").is_dir()
    assert (copied / "eval-2" / "eval.json").is_file()
    assert not target_study.extend(short, copied), "an existing folder is never overwritten"
    trained(copied, tiny, "steps=4", "resume=true", "allow_changes=[steps]")
    full = trained(tmp_path / "full", tiny, "steps=4")
    rows = [json.loads(r)["step"] for r in (copied / "metrics.jsonl").read_text().splitlines()]
    assert rows == [1, 2, 3, 4]
    assert_same_weights(copied / "model", full / "model")


@pytest.mark.parametrize("optim", [["optim.warmup_steps=1"], ["optim.min_lr_ratio=0.1"]])
def test_extend_refuses_a_run_whose_schedule_depends_on_its_length(optim, tmp_path):
    make_tiny(seed=3).save_pretrained(tmp_path / "tiny")
    short = trained(tmp_path / "short", tmp_path / "tiny", "steps=2", *optim)
    with pytest.raises(SystemExit, match="only a constant-lr run"):
        target_study.extend(short, tmp_path / "long")
    assert not (tmp_path / "long").exists()


def test_extend_copies_nothing_from_an_unfinished_run(tmp_path):
    (tmp_path / "run" / "checkpoint-2" / "model").mkdir(parents=True)  # stopped: no final model
    assert not target_study.extend(tmp_path / "run", tmp_path / "long")
    assert not (tmp_path / "long").exists()


def test_a_run_carried_without_its_final_model_is_extended_from_its_last_checkpoint(tmp_path):
    """``packs.py --resumable`` moves a finished run with its last checkpoint, not its final
    model (the same weights): ``extend`` takes it as finished; one whose last checkpoint is
    short of its steps (a stop signal's) it does not."""
    run = tmp_path / "run"
    (run / "checkpoint-2000" / "model").mkdir(parents=True)
    (run / "config.yaml").write_text("steps: 2000\noptim: {warmup_steps: 0, min_lr_ratio: 1.0}\n")
    assert target_study.extend(run, tmp_path / "long")
    assert (tmp_path / "long" / "checkpoint-2000" / "model").is_dir()
    (run / "config.yaml").write_text("steps: 3000\noptim: {warmup_steps: 0, min_lr_ratio: 1.0}\n")
    assert not target_study.extend(run, tmp_path / "longer")


def test_a_continuation_whose_source_is_unfinished_waits(tmp_path, capsys):
    """``--extend`` while a source run is still being made (stopped at a checkpoint, no final
    model) or absent: its continuations are not among the jobs to run, so none is trained from
    step 0 under a continuation's name; the finished source's continuations are."""
    argv = ["--extend", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--seeds", "3"]
    args = target_study.parse([*argv, "--variant", "cool", "optim.lr=2.5e-5"])
    todo = [j for j in target_study.jobs(args) if "b4-" in j.name]
    (tmp_path / "src" / "trafl-b4-s0" / "model").mkdir(parents=True)  # finished
    (tmp_path / "src" / "trafl-b4-s0" / "checkpoint-2" / "model").mkdir(parents=True)
    (tmp_path / "src" / "trafl-b4-s0" / "config.yaml").write_text(
        "optim: {warmup_steps: 0, min_lr_ratio: 1.0}\n"
    )
    (tmp_path / "src" / "trafl-b4-s1" / "checkpoint-2" / "model").mkdir(parents=True)  # stopped
    ready = target_study.continue_runs(tmp_path / "src", tmp_path / "out", todo)
    assert sorted(j.name for j in ready) == ["trafl-b4-s0", "trafl-cool-b4-s0"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "trafl-b4-s0",
        "trafl-cool-b4-s0",
    ]
    assert "trafl-cool-b4-s1: waits for" in capsys.readouterr().out


def test_a_continuation_holding_no_checkpoint_is_not_started_from_scratch(tmp_path, capsys):
    """A continuation's folder with a pack's files but no weights (a machine replaced: the
    committed pack unpacked on a new one) would resume from step 0 under its name: it is held
    back, while one finished on the other machine (its last evaluation there) is kept, to be
    skipped as done."""
    argv = ["--extend", str(tmp_path / "src"), "--out", str(tmp_path / "out")]
    args = target_study.parse([*argv, "--seeds", "2", "--trafl-steps", "4", "--points", "2"])
    todo = [j for j in target_study.jobs(args) if j.name in ("trafl-b4-s0", "trafl-b4-s1")]
    for seed in (0, 1):  # both sources finished
        (tmp_path / "src" / f"trafl-b4-s{seed}" / "model").mkdir(parents=True)
        (tmp_path / "out" / f"trafl-b4-s{seed}").mkdir(parents=True)  # unpacked files only
        (tmp_path / "out" / f"trafl-b4-s{seed}" / "metrics.jsonl").write_text("")
    (tmp_path / "out" / "trafl-b4-s1" / "eval-4").mkdir()
    (tmp_path / "out" / "trafl-b4-s1" / "eval-4" / "eval.json").write_text("{}")
    ready = target_study.continue_runs(tmp_path / "src", tmp_path / "out", todo)
    assert [j.name for j in ready] == ["trafl-b4-s1"]
    assert "trafl-b4-s0: " in capsys.readouterr().out
    (tmp_path / "out" / "trafl-b4-s0" / "checkpoint-2" / "model").mkdir(parents=True)
    ready = target_study.continue_runs(tmp_path / "src", tmp_path / "out", todo)
    assert [j.name for j in ready] == ["trafl-b4-s0", "trafl-b4-s1"]


def test_extended_runs_may_change_their_length_only():
    args = target_study.parse(["--extend", "somewhere", "--trafl-steps", "2000"])
    job = next(j for j in target_study.jobs(args) if j.name == "trafl-b4-s0")
    cfg = resolved(args, job)
    assert cfg.steps == 2000 and cfg.allow_changes == ["steps"]
    assert "allow_changes=[steps]" not in target_study.train_command(
        job, target_study.parse([]), resume=True
    )


def test_an_extended_variant_continues_the_plain_run_under_its_change(tmp_path):
    """``--extend`` with ``--variant``: the variant's folder starts as a copy of the plain run of
    its b and seed, and resumes with its change allowed (and only then: the plain run's own
    continuation may change its length alone)."""
    argv = ["--extend", str(tmp_path / "src"), "--trafl-steps", "4", "--points", "2"]
    args = target_study.parse(
        [*argv, "--variant", "cool", "optim.lr=2.5e-5", "--out", str(tmp_path / "out")]
    )
    by_name = {job.name: job for job in target_study.jobs(args)}
    variant, plain = by_name["trafl-cool-b4-s0"], by_name["trafl-b4-s0"]
    assert target_study.plain_name(variant) == "trafl-b4-s0"
    assert target_study.plain_name(plain) == "trafl-b4-s0"
    assert resolved(args, variant).allow_changes == ["steps", "optim.lr"]
    assert resolved(args, variant).optim.lr == 2.5e-5
    assert resolved(args, plain).allow_changes == ["steps"]

    make_tiny(seed=3).save_pretrained(tmp_path / "tiny")
    tiny = tmp_path / "tiny"
    trained(tmp_path / "src" / "trafl-b4-s0", tiny, "steps=2")
    target_study.continue_runs(tmp_path / "src", tmp_path / "out", [variant])
    copied = tmp_path / "out" / "trafl-cool-b4-s0"
    assert (copied / "checkpoint-2" / "model").is_dir() and not (copied / "model").exists()
    with pytest.raises(TraflError, match="optim.lr"):  # the change needs its allowance
        trained(copied, tiny, "steps=4", "resume=true", "optim.lr=2.5e-5", "allow_changes=[steps]")
    trained(
        copied, tiny, "steps=4", "resume=true", "optim.lr=2.5e-5", "allow_changes=[steps,optim.lr]"
    )
    config = yaml.safe_load((copied / "config.yaml").read_text())
    assert config["optim"]["lr"] == 2.5e-5 and (copied / "model").is_dir()


def test_points_are_checked_only_against_the_steps_of_runs_the_study_schedules():
    """The third diagnosis's command (docs/TARGET.md section 11) names no baseline run, so its
    12 points need not divide the unused --baseline-steps 100; with d1 scheduled they must."""
    arms = ["--seeds", "3", "--betas", "4", "--baselines", "--mu-betas", "--path-betas",
            "--lr-betas", "--explore-betas", "--heldout", "--trafl-steps", "2400", "--points",
            "12", "--variant", "masks16", "estimator.num_masks=16", "--variant", "cool",
            "optim.lr=2.5e-5", "--variant-betas", "4"]  # fmt: skip
    args = target_study.parse(arms)
    assert {job.steps for job in target_study.jobs(args)} == {2400}
    with pytest.raises(SystemExit):
        target_study.parse([*arms, "--baselines", "diffu_grpo"])


def test_only_runs_the_jobs_it_names(capsys):
    """``--only`` picks jobs by shell pattern, in the study's order; a pattern that matches no
    run (a typo) is refused in one line."""
    argv = ["--betas", "4", "--baselines", "--mu-betas", "--path-betas", "--lr-betas",
            "--explore-betas", "--heldout", "--variant", "cool", "optim.lr=2.5e-5"]  # fmt: skip
    args = target_study.parse([*argv, "--only", "trafl-cool-*", "trafl-b4-s2"])
    chosen = [j.name for j in target_study.chosen(args)]
    assert len(target_study.jobs(args)) == 6  # without --only: the controls too
    assert chosen == ["trafl-b4-s2", "trafl-cool-b4-s0", "trafl-cool-b4-s1", "trafl-cool-b4-s2"]
    with pytest.raises(SystemExit):
        target_study.parse([*argv, "--only", "trafl-col-*"])
    assert "--only trafl-col-* matches no run of this study" in capsys.readouterr().err
