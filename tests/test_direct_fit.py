"""The direct fit (scripts/direct_fit.py, docs/TARGET.md section 12) is trained as the TraFL runs
it is held against are: their optimiser as trafl train resolves it (trafl pretrain's own
defaults warm up and decay), their rows per step, the tilt they were trained for; its stages
are skipped when done and never leave a half-written file that looks done."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from trafl.commands.pretrain import PretrainConfig
from trafl.commands.train_config import TrainConfig
from trafl.core.config_files import load_config, load_saved_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import direct_fit  # noqa: E402
import packs  # noqa: E402


def test_the_fit_is_trained_with_trafls_optimiser_rows_and_tilt(tmp_path):
    args = direct_fit.parse(["--out", str(tmp_path), "--steps", "2000"])
    cmd = direct_fit.fit_command(args, 4.0, 2, tmp_path / "draws-s2.jsonl", resume=False)
    assert cmd[0] == "pretrain"
    fit = load_config(PretrainConfig, None, cmd[1:])
    with packs.unpacked(ROOT / "results" / "target" / "long2000-remade.tgz") as remade:
        trafl = load_saved_config(TrainConfig, remade / "trafl-b4-s0" / "config.yaml")
    want = {k: v for k, v in asdict(trafl.optim).items() if k != "clip_objective_separately"}
    got = {k: v for k, v in asdict(fit.optim).items() if k != "clip_objective_separately"}
    assert got == want and (got["warmup_steps"], got["min_lr_ratio"]) == (0, 1.0)
    assert fit.batch_size == trafl.rollout.prompts_per_step * trafl.rollout.group_size == 128
    assert (fit.data, fit.data_tilt, fit.seed) == (str(tmp_path / "draws-s2.jsonl"), 4.0, 2)
    assert fit.init_from.path == "models/countdown-base" and fit.task.pool == 48
    assert (fit.steps, fit.ckpt_every, fit.keep_checkpoints) == (2000, 400, 0)
    assert fit.completion_lengths == [16] and fit.out_dir == str(tmp_path / "direct-b4-s2")


def test_the_points_are_the_scheduled_checkpoints_then_the_final_model(tmp_path):
    """Pretrain writes its last step as ``model``; a checkpoint a stop signal wrote (step 3) is
    a resume point, not a point of the schedule."""
    for step in (2, 3, 4, 6):
        (tmp_path / f"checkpoint-{step}" / "model").mkdir(parents=True)
    assert direct_fit.points(tmp_path, 2, 8) == [
        (2, tmp_path / "checkpoint-2" / "model"),
        (4, tmp_path / "checkpoint-4" / "model"),
        (6, tmp_path / "checkpoint-6" / "model"),
    ]
    (tmp_path / "model").mkdir()
    assert direct_fit.points(tmp_path, 2, 8)[-1] == (8, tmp_path / "model")


def smoke_folder(tmp_path: Path) -> None:
    """A base evaluation of 3 problems x 8 samples (2, 4, 6 correct) and seed 0's draws, 4 per
    problem in the same proportions (1, 2, 3 correct)."""
    length = {"correct_counts": [2, 4, 6]}
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "eval.json").write_text(
        json.dumps({"num_samples": 8, "lengths": {"16": length}})
    )
    rows = [{"prompt": f"p{g}", "completion": str(i), "reward": float(i < g + 1)}
            for g in range(3) for i in range(4)]  # fmt: skip
    (tmp_path / "draws-s0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_ceiling_is_the_tilt_when_the_file_has_the_bases_rates(tmp_path):
    """Drawn in the base's proportions, the file's tilted shares are p* (p, b) exactly, so a
    perfect fit of the file scores b_hat = b (bisection to 1e-9) at each tilt."""
    smoke_folder(tmp_path)
    got = direct_fit.ceiling(tmp_path / "draws-s0.jsonl", tmp_path / "base" / "eval.json", [4, 0])
    assert got["draws_per_problem"] == [4] and got["b4"]["num_problems"] == 3
    assert got["b4"]["b_hat"] == pytest.approx(4, abs=1e-6)
    assert got["b0"]["b_hat"] == pytest.approx(0, abs=1e-6)


def test_stopped_stages_leave_nothing_that_looks_done(tmp_path, monkeypatch):
    """A draw that stops leaves no draws file (only the partial one) and says so; a fit that
    stops is reported and not evaluated; once a fit's model is there it is not run again; past
    the deadline neither a fit nor a draw starts."""
    args = direct_fit.parse(["--out", str(tmp_path), "--smoke"])  # tilts 4 then 0
    calls = []

    def stopped(cmd, log, deadline=None):
        calls.append(cmd[0])
        out = next(a.split("=", 1)[1] for a in cmd if a.startswith(("output=", "out_dir=")))
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text("half\n") if cmd[0] == "sample" else Path(out).mkdir(exist_ok=True)
        return 143  # SIGTERM

    monkeypatch.setattr(direct_fit.study, "run", stopped)
    monkeypatch.setattr(direct_fit.study, "evaluate", lambda *a, **k: calls.append("eval") or True)
    assert direct_fit.schedule(args)[0].startswith("draws-s0: stopped or failed")
    assert not (tmp_path / "draws-s0.jsonl").exists() and calls == ["sample"]  # no fit started
    smoke_folder(tmp_path)  # the draws, finished, and the base evaluation
    lines = direct_fit.schedule(args)
    assert lines[1:] == [
        "direct-b4-s0: stopped (exit 143); the same command continues it",
        "direct-b0-s0: stopped (exit 143); the same command continues it",
    ]
    assert calls == ["sample", "pretrain", "pretrain"]  # nothing evaluated
    (tmp_path / "direct-b4-s0" / "model").mkdir()
    lines = direct_fit.schedule(args)
    assert calls[3:] == ["eval", "pretrain"]  # b4 evaluated, not trained again; b0 resumed
    assert "direct-b4-s0: 1/1 evaluations" in lines[1] and "direct-b0-s0: stopped" in lines[2]
    args.study.stop_at = 0.0  # the deadline has passed
    assert "direct-b0-s0: not started (deadline)" in direct_fit.schedule(args)[2]
    assert direct_fit.prepare(args, 1)[1].startswith("draws-s1: stopped or failed")
    assert calls.count("sample") == 1 and calls.count("pretrain") == 3  # nothing started after
    assert json.loads((tmp_path / "direct-b4-s0" / "ceiling.json").read_text())["num_problems"] == 3


def test_a_seed_whose_fits_are_all_evaluated_is_not_drawn_again(tmp_path, monkeypatch):
    """On a replaced machine a finished seed's draws are gone: its fits, evaluated at their
    last step (unpacked from a pack), need none, so nothing is drawn or run for it."""
    args = direct_fit.parse(["--out", str(tmp_path), "--smoke"])
    smoke_folder(tmp_path)
    (tmp_path / "draws-s0.jsonl").unlink()
    monkeypatch.setattr(direct_fit.study, "run", lambda *a, **k: pytest.fail(f"ran {a[0][0]}"))
    for beta in (4, 0):
        (tmp_path / f"direct-b{beta}-s0" / f"eval-{args.steps}").mkdir(parents=True)
        (tmp_path / f"direct-b{beta}-s0" / f"eval-{args.steps}" / "eval.json").write_text("{}")
    assert direct_fit.schedule(args) == ["seed 0: every fit evaluated before"]
    (tmp_path / "direct-b0-s0" / f"eval-{args.steps}" / "eval.json").unlink()  # one still to do
    with pytest.raises(pytest.fail.Exception, match="ran sample"):
        direct_fit.schedule(args)


def test_only_runs_the_seeds_named(tmp_path, monkeypatch, capsys):
    """``--only 1`` prepares and fits seed 1 alone (seed 0, not done, is neither drawn nor
    fitted); a seed outside ``--seeds`` is refused in one line."""
    args = direct_fit.parse(["--out", str(tmp_path), "--seeds", "2", "--only", "1"])
    seen = []
    monkeypatch.setattr(direct_fit, "prepare", lambda a, s: seen.append(s) or (None, f"s{s}"))
    assert direct_fit.schedule(args) == ["s1"] and seen == [1]
    with pytest.raises(SystemExit):
        direct_fit.parse(["--out", str(tmp_path), "--seeds", "3", "--only", "3"])
    assert "--only [3]: each must be one of the seeds 0 to 2" in capsys.readouterr().err


def test_points_left_unevaluated_with_their_weights_kept_are_evaluated_not_trained(
    tmp_path, monkeypatch
):
    """A fit evaluated only at some points (its last among them) whose checkpoints are still
    here has the others evaluated by the same command: its seed is not skipped, nothing is
    trained, and only the missing points are run; with no weights (unpacked) it is done."""
    args = direct_fit.parse(
        ["--out", str(tmp_path), "--seeds", "1", "--steps", "6", "--points", "3"]
    )
    smoke_folder(tmp_path)
    runs = []
    monkeypatch.setattr(direct_fit.study, "run", lambda *a, **k: pytest.fail(f"ran {a[0][0]}"))
    monkeypatch.setattr(
        direct_fit.study, "evaluate", lambda model, out, *a: runs.append(out.name) or True
    )
    for beta in (4, 0):
        fit = tmp_path / f"direct-b{beta}-s0"
        for step in (2, 4):
            (fit / f"checkpoint-{step}" / "model").mkdir(parents=True)
        (fit / "model").mkdir()
        for step in (2, 6) if beta == 4 else (6,):
            (fit / f"eval-{step}").mkdir()
            (fit / f"eval-{step}" / "eval.json").write_text("{}")
    assert not direct_fit.evaluated(args, 4, 0) and not direct_fit.evaluated(args, 0, 0)
    lines = direct_fit.schedule(args)
    assert lines[0] == "draws-s0: ready" and runs == ["eval-4", "eval-2", "eval-4"]
    assert lines[1].startswith("direct-b4-s0: 1/1 evaluations")
    assert lines[2].startswith("direct-b0-s0: 2/2 evaluations")
    for beta in (4, 0):  # as unpacked from a pack: evaluations, no weights
        fit = tmp_path / f"direct-b{beta}-s0"
        for gone in ("checkpoint-2", "checkpoint-4", "model"):
            shutil.rmtree(fit / gone)
    assert direct_fit.schedule(args) == ["seed 0: every fit evaluated before"]


def test_points_that_do_not_divide_the_steps_are_refused(capsys):
    with pytest.raises(SystemExit):
        direct_fit.parse(["--steps", "1000", "--points", "3"])
    assert "--points 3 must divide --steps 1000" in capsys.readouterr().err


@pytest.mark.parametrize("samples, refused", [(128, False), (64, True)])
def test_the_base_comes_from_the_pack_of_the_runs_it_is_held_against(tmp_path, samples, refused):
    """``--base PACK`` copies the pack's base evaluation (the fit's b_hat is then measured from
    the same base counts as the TraFL runs'); one made with other settings is refused in one
    line before anything runs."""
    study_folder = tmp_path / "study"
    (study_folder / "base").mkdir(parents=True)
    with packs.unpacked(ROOT / "results" / "target" / "long2000-remade.tgz") as remade:
        config = yaml.safe_load((remade / "base" / "eval_config.yaml").read_text())
    config["num_samples"] = samples
    (study_folder / "base" / "eval_config.yaml").write_text(yaml.safe_dump(config))
    (study_folder / "base" / "eval.json").write_text("{}")
    packs.pack(study_folder, tmp_path / "study.tgz")
    out = tmp_path / "direct"
    argv = ["--out", str(out), "--base", str(tmp_path / "study.tgz"), "--seeds", "0"]
    if refused:
        with pytest.raises(SystemExit, match="num_samples=64 \\(here 128\\)"):
            direct_fit.main(argv)
    else:
        direct_fit.main(argv)
    assert (out / "base" / "eval_config.yaml").read_text() == (
        study_folder / "base" / "eval_config.yaml"
    ).read_text()


def test_a_fit_continues_only_on_the_draws_it_started_on(tmp_path, monkeypatch):
    """Draws made again (e.g. on a replaced machine of another kind) differ from those the
    seed's fits started on: the seed is held back in one line, not fitted on two files."""
    args = direct_fit.parse(["--out", str(tmp_path), "--smoke"])
    smoke_folder(tmp_path)
    monkeypatch.setattr(direct_fit, "one_fit", lambda a, beta, s, d: f"fit b{beta:g}")
    assert direct_fit.schedule(args) == ["draws-s0: ready", "fit b4", "fit b0"]
    saved = json.loads((tmp_path / "direct-b4-s0" / "ceiling.json").read_text())
    assert (
        saved["draws_sha1"]
        == direct_fit.hashlib.sha1((tmp_path / "draws-s0.jsonl").read_bytes()).hexdigest()
    )
    with (tmp_path / "draws-s0.jsonl").open("a") as f:  # other draws under the same name
        f.write(json.dumps({"prompt": "p0", "completion": "x", "reward": 1.0}) + "\n")
    (line,) = direct_fit.schedule(args)  # no fit runs
    assert line.startswith("draws-s0: not the draws its fits started on")


def test_the_decoding_reaches_the_draws_and_the_base_check(tmp_path, monkeypatch):
    """--remasking random --denoising-steps 16 draws any-order (the study's sampler), and a
    folder whose base was evaluated low-confidence is refused before anything runs."""
    args = direct_fit.parse(
        ["--out", str(tmp_path), "--remasking", "random", "--denoising-steps", "16"]
    )
    cmds = []
    monkeypatch.setattr(direct_fit.study, "run", lambda cmd, *a, **k: cmds.append(cmd) or 1)
    direct_fit.draw(args, 0)
    assert "sampler.remasking=random" in cmds[0] and "sampler.steps=16" in cmds[0]
    (tmp_path / "base").mkdir()
    saved = {"sampler": {"gen_length": 16, "steps": 8, "temperature": 1.0,
                         "remasking": "low_confidence"}, "num_samples": 128, "num_problems": 48}  # fmt: skip
    (tmp_path / "base" / "eval_config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(SystemExit, match="remasking"):
        direct_fit.study.check_folder(args.study)
    default = direct_fit.parse(["--out", str(tmp_path)])
    direct_fit.study.check_folder(default.study)  # the low-confidence default matches it


def test_a_fit_continued_with_extend_retrains_to_the_same_weights_then_goes_on(tmp_path):
    """``--extend`` (section 16): the source's base, draws and fit are copied without the final
    model; resumed at more steps on the draws' new place, the fit trains again from its newest
    checkpoint, its checkpoint at the source's last step holds the source's final weights, and
    only the points the source did not evaluate are evaluated."""
    from tests.conftest import assert_same_weights
    from tests.test_cli import SMALL
    from trafl.commands.pretrain import pretrain
    from trafl.core.errors import UserError

    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    smoke_folder(src)
    fit = [*SMALL, "optim.warmup_steps=0", "optim.min_lr_ratio=1.0", "ckpt_every=2", "seed=0",
           "data_tilt=4", "task.pool=3"]  # fmt: skip
    pretrain(load_config(PretrainConfig, None, [*fit, f"data={src / 'draws-s0.jsonl'}",
                                                "steps=4", f"out_dir={src / 'direct-b4-s0'}"]))  # fmt: skip
    for step in (2, 4):  # the source's points, evaluated
        (src / "direct-b4-s0" / f"eval-{step}").mkdir()
        (src / "direct-b4-s0" / f"eval-{step}" / "eval.json").write_text("{}")
    args = direct_fit.parse(["--out", str(dest), "--extend", str(src), "--seeds", "1",
                             "--betas", "4", "--steps", "6", "--points", "3"])  # fmt: skip
    direct_fit.continue_fits(args)
    copied, draws = dest / "direct-b4-s0", dest / "draws-s0.jsonl"
    assert draws.read_bytes() == (src / "draws-s0.jsonl").read_bytes()
    assert (dest / "base" / "eval.json").is_file() and not (copied / "model").exists()
    # pretrain saves its last step as `model` only: the copy resumes from step 2
    assert (copied / "checkpoint-2").is_dir() and not (copied / "checkpoint-4").exists()
    assert direct_fit.to_evaluate(args, copied) == [(6, None)]
    command = direct_fit.fit_command(args, 4.0, 0, draws, True)
    assert command[-1] == "allow_changes=[data]"
    assert "allow_changes=[data]" not in direct_fit.fit_command(args, 4.0, 0, draws, False)
    resumed = [*fit, f"data={draws}", "steps=6", f"out_dir={copied}", "resume=true"]
    with pytest.raises(UserError, match="allow_changes=\\[data\\]"):  # the draws moved
        pretrain(load_config(PretrainConfig, None, resumed))
    pretrain(load_config(PretrainConfig, None, [*resumed, "allow_changes=[data]"]))
    assert_same_weights(src / "direct-b4-s0" / "model", copied / "checkpoint-4" / "model")
    steps = [json.loads(r)["step"] for r in (copied / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert direct_fit.to_evaluate(args, copied) == [(6, copied / "model")]
    direct_fit.continue_fits(args)  # again: nothing is copied over the continued fit
    assert (copied / "model").is_dir()
    empty = direct_fit.parse(["--out", str(tmp_path / "x"), "--extend", str(tmp_path / "none")])
    with pytest.raises(SystemExit, match="has no base evaluation; give a folder direct_fit.py"):
        direct_fit.continue_fits(empty)
