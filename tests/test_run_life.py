"""The run life cycle loses nothing: damaged pointers and files, two processes on one folder,
changed settings on resume, torn metrics, signals, a full disk and non-finite updates.

Each test damages a run the way a crash, a kill, a second process or a full disk would and
checks what survives: the step resumed from, the rows kept, the weights, the message."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import assert_same_weights, make_tiny
from trafl.commands.train import TrainConfig, Trainer
from trafl.core.config_files import load_config
from trafl.core.errors import RunStopped, TraflError, UserError
from trafl.core.files import write_text_atomic
from trafl.run.checkpoint import MANIFEST, checkpoints, save_atomic, verify_checkpoint
from trafl.run.folder import RunFolder
from trafl.run.guard import UpdateGuard
from trafl.run.runtime import MetricsLog

SMALL = ["rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.sampler.gen_length=8",
         "rollout.sampler.steps=4", "device=cpu", "save_completions_every=0",
         "objective.name=trafl", "inner_updates=1"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "model"
    make_tiny(seed=3).save_pretrained(path)
    return path


def config(out: Path, model: Path, *extra: str) -> TrainConfig:
    return load_config(TrainConfig, None, [f"model={model}", f"out_dir={out}", *SMALL, *extra])


def run(out: Path, model: Path, *extra: str) -> Trainer:
    trainer = Trainer(config(out, model, *extra))
    trainer.train()
    return trainer


def steps_logged(out: Path) -> list[int]:
    return [json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def four_checkpoints(tmp_path_factory, tiny_path) -> Path:
    """A run killed after step 4 (checkpoints 2, 3, 4 kept) and the same run uninterrupted."""
    root = tmp_path_factory.mktemp("runs")
    run(root / "full", tiny_path, "steps=6", "ckpt_every=1", "keep_checkpoints=3")
    run(root / "run", tiny_path, "steps=4", "ckpt_every=1", "keep_checkpoints=3")
    (root / "run" / "model").rename(root / "model-at-4")  # as if killed before the end
    return root


def copy_run(four_checkpoints: Path, tmp_path: Path) -> Path:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(four_checkpoints / "run", out)
    return out


def resume(out: Path, model: Path, *extra: str) -> Trainer:
    trainer = Trainer(
        config(out, model, "steps=6", "ckpt_every=1", "keep_checkpoints=3", "resume=true", *extra)
    )
    trainer.train()
    return trainer


# ---------------------------------------------------------------------- the latest pointer
@pytest.mark.parametrize("damage", ["deleted", "empty", "garbage", "missing", "other_run"])
def test_a_damaged_latest_pointer_resumes_from_the_newest_checkpoint(
    four_checkpoints, tiny_path, tmp_path, damage, capsys
):
    out = copy_run(four_checkpoints, tmp_path)
    assert [c.name for c in checkpoints(out)] == ["checkpoint-2", "checkpoint-3", "checkpoint-4"]
    pointer = out / "latest"
    if damage == "deleted":
        pointer.unlink()
    else:
        text = {
            "empty": "",
            "garbage": "\x00\xff junk",
            "missing": "checkpoint-9",
            "other_run": "../other/checkpoint-6",
        }[damage]
        pointer.write_text(text)
    other = tmp_path / "other" / "checkpoint-6"  # another run's checkpoint must not be used
    other.mkdir(parents=True)
    trainer = Trainer(
        config(out, tiny_path, "steps=6", "ckpt_every=1", "keep_checkpoints=3", "resume=true")
    )
    trainer.train()
    assert steps_logged(out) == [1, 2, 3, 4, 5, 6], "metrics were emptied or duplicated"
    assert_same_weights(out / "model", four_checkpoints / "full" / "model")
    if damage in ("garbage", "missing", "other_run"):
        assert "ignored" in capsys.readouterr().err


# ---------------------------------------------------------------------- checksums
@pytest.mark.parametrize("file", ["state.pt", "model/model.safetensors", MANIFEST])
def test_a_flipped_byte_falls_back_to_the_previous_checkpoint(
    four_checkpoints, tiny_path, tmp_path, file, capsys
):
    out = copy_run(four_checkpoints, tmp_path)
    assert verify_checkpoint(out / "checkpoint-4")
    damaged = out / "checkpoint-4" / file
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    trainer = Trainer(
        config(out, tiny_path, "steps=6", "ckpt_every=1", "keep_checkpoints=3", "resume=true")
    )
    trainer.try_resume()
    assert trainer.step == 3
    err = capsys.readouterr().err
    assert "checkpoint-4" in err and "trying an earlier one" in err


def test_resume_from_the_fallback_equals_an_uninterrupted_run(
    four_checkpoints, tiny_path, tmp_path
):
    out = copy_run(four_checkpoints, tmp_path)
    state = out / "checkpoint-4" / "state.pt"
    state.write_bytes(state.read_bytes()[:100])  # truncated
    resume(out, tiny_path)
    assert steps_logged(out) == [1, 2, 3, 4, 5, 6]
    assert_same_weights(out / "model", four_checkpoints / "full" / "model")


def test_a_checkpoint_from_another_kind_of_device_resumes_in_law(
    four_checkpoints, tiny_path, tmp_path, capsys
):
    """Started on a GPU, continued on the CPU (``device`` may change on resume): a CUDA mask
    generator's state (16 bytes, Philox seed and offset) does not fit the CPU's generator. The
    run resumes at its step with the generator seeded from that state and the step, says so,
    and two resumes of the same checkpoint end with the same weights."""
    finals = []
    for name in ("a", "b"):
        out = copy_run(four_checkpoints, tmp_path / name)
        ckpt = out / "checkpoint-4"
        state = torch.load(ckpt / "state.pt", weights_only=False)
        assert state["mask_gen"].numel() != 16  # the CPU's layout, not a CUDA generator's
        state["mask_gen"] = torch.arange(16, dtype=torch.uint8)
        torch.save(state, ckpt / "state.pt")
        (ckpt / MANIFEST).unlink()  # the edited file no longer matches its checksum
        resume(out, tiny_path)
        assert steps_logged(out) == [1, 2, 3, 4, 5, 6]
        err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
        assert "reseeded from it and step 4" in err  # checkpoint-4 loaded, not an earlier one
        finals.append(out / "model")
    assert_same_weights(*finals)


def test_when_no_checkpoint_loads_resume_stops_and_names_them(
    four_checkpoints, tiny_path, tmp_path
):
    out = copy_run(four_checkpoints, tmp_path)
    for ckpt in checkpoints(out):
        (ckpt / "state.pt").write_bytes(b"not a checkpoint")
    rows_before = (out / "metrics.jsonl").read_text()
    with pytest.raises(UserError, match="checkpoint-4.*checkpoint-3.*checkpoint-2"):
        resume(out, tiny_path)
    assert (out / "metrics.jsonl").read_text() == rows_before, "metrics were touched"


def test_a_checkpoint_without_a_manifest_loads_with_a_warning(
    four_checkpoints, tiny_path, tmp_path, capsys
):
    out = copy_run(four_checkpoints, tmp_path)
    (out / "checkpoint-4" / MANIFEST).unlink()  # as written before manifests existed
    trainer = Trainer(
        config(out, tiny_path, "steps=6", "resume=true", "ckpt_every=1", "keep_checkpoints=3")
    )
    trainer.try_resume()
    assert trainer.step == 4 and "unverified" in capsys.readouterr().err


# ---------------------------------------------------------------------- one run per folder
def test_a_second_process_on_the_same_folder_is_refused_naming_the_holder(tmp_path, tiny_path):
    holder = RunFolder(tmp_path)
    holder.lock()
    try:
        with pytest.raises(
            UserError, match=rf"in use by another trafl process \(pid {os.getpid()}"
        ):
            run(tmp_path, tiny_path, "steps=1")
    finally:
        holder.release()
    run(tmp_path, tiny_path, "steps=1")  # free again


def test_the_cli_refuses_a_locked_folder_in_one_line_with_exit_code_2(tmp_path, tiny_path, capsys):
    from trafl.commands.cli import main

    holder = RunFolder(tmp_path)
    holder.lock()
    try:
        with pytest.raises(SystemExit) as exc:
            main(["train", f"model={tiny_path}", f"out_dir={tmp_path}", *SMALL, "steps=1"])
    finally:
        holder.release()
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and f"pid {os.getpid()}" in err[0]


def test_a_running_cli_run_holds_the_lock_against_another_process(tmp_path, tiny_path):
    """A real `trafl train` process holds the folder: this process is refused, naming its pid
    (the CLI turns that into one line and exit code 2, tested in test_input_errors)."""
    args = [f"model={tiny_path}", f"out_dir={tmp_path}", *SMALL, "steps=200", "ckpt_every=0"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    first = subprocess.Popen(
        [sys.executable, "-m", "trafl", "train", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not (tmp_path / "metrics.jsonl").exists() and time.time() < deadline:
            time.sleep(0.05)
        with pytest.raises(
            UserError, match=rf"in use by another trafl process \(pid {first.pid}\)"
        ):
            RunFolder(tmp_path).claim(resume=True, overwrite=False)
    finally:
        first.kill()
        first.wait()
    RunFolder(tmp_path).claim(resume=True, overwrite=False)  # the kernel released it on death


def test_a_fresh_run_into_a_folder_holding_a_run_is_refused_unless_overwrite(tmp_path, tiny_path):
    run(tmp_path, tiny_path, "steps=1")
    with pytest.raises(UserError, match="already holds a run.*overwrite=true"):
        run(tmp_path, tiny_path, "steps=1")
    (tmp_path / "notes.txt").write_text("mine")
    run(tmp_path, tiny_path, "steps=2", "overwrite=true")
    assert steps_logged(tmp_path) == [1, 2]
    assert (tmp_path / "notes.txt").read_text() == "mine", "overwrite deleted a file not its own"


def test_an_unwritable_out_dir_is_one_user_error(tmp_path, tiny_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot be written"):
        run(blocker / "run", tiny_path, "steps=1")


# ---------------------------------------------------------------------- settings on resume
def test_resume_with_changed_settings_lists_them_unless_allowed(tmp_path, tiny_path):
    run(tmp_path, tiny_path, "steps=1", "ckpt_every=1")
    with pytest.raises(UserError, match=r"optim\.lr: 0\.0001 -> 0\.001.*seed: 0 -> 3"):
        run(tmp_path, tiny_path, "steps=2", "resume=true", "seed=3", "optim.lr=1e-3")
    trainer = run(
        tmp_path, tiny_path, "steps=2", "resume=true", "optim.lr=1e-3", "allow_changes=[optim.lr]"
    )
    assert trainer.step == 2 and steps_logged(tmp_path) == [1, 2]


def test_an_allowed_lr_change_takes_effect_from_the_next_update(tmp_path, tiny_path):
    """The optimizer's and the schedule's saved states carry the old lr; the resumed run steps
    with the new one (policy groups), the objective's own group keeps its lr, and the weights
    are those of a run whose update 3 used the new lr: AdamW's first moments are lr-free, so
    theta_3 - theta_2 scales with the lr (compared against a resume at the old lr)."""
    constant = ["optim.warmup_steps=0", "optim.min_lr_ratio=1", "ckpt_every=2"]
    run(tmp_path / "a", tiny_path, "steps=2", "optim.lr=1e-3", *constant)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    changed = ["steps=3", "resume=true", "allow_changes=[steps,optim.lr]", *constant]
    slow = run(tmp_path / "a", tiny_path, "optim.lr=1e-5", *changed)
    fast = run(tmp_path / "b", tiny_path, "optim.lr=1e-3", *changed)
    policy_lrs = {g["lr"] for g in slow.optimizer.param_groups[:2]}
    assert policy_lrs == {1e-5} and slow.scheduler.get_last_lr()[:2] == [1e-5, 1e-5]
    assert slow.optimizer.param_groups[-1]["lr"] == fast.optimizer.param_groups[-1]["lr"]
    logged = [json.loads(r) for r in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in logged] == [1e-3, 1e-3, 1e-5]
    before = load_file(tmp_path / "a" / "checkpoint-2" / "model" / "model.safetensors")
    after_slow = dict(slow.policy.state_dict())
    after_fast = dict(fast.policy.state_dict())
    name = next(k for k in after_slow if k in before and before[k].numel() > 100)
    theta = before[name]
    step_slow, step_fast = after_slow[name] - theta, after_fast[name] - theta
    # one AdamW update, -lr (m_hat / (sqrt(v_hat) + eps) + wd theta), from the same theta, m, v
    # and gradient: step_slow = step_fast / 100 but for float32 rounding of theta + step, at
    # most half an ulp of theta (2^-24 |theta|), times 100 once scaled, plus the fast step's own
    assert float(step_fast.abs().max()) > 0
    atol = 101 * float(theta.abs().max()) * 2**-24
    assert torch.allclose(step_slow * 100, step_fast, rtol=0, atol=atol)


# ---------------------------------------------------------------------- metrics
def test_a_torn_metrics_line_is_dropped_with_a_warning(four_checkpoints, tiny_path, tmp_path):
    out = copy_run(four_checkpoints, tmp_path)
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"step": 5, "loss": 0.1')  # a kill in the middle of a write
    resume(out, tiny_path)
    assert steps_logged(out) == [1, 2, 3, 4, 5, 6]


def test_a_kill_during_the_metrics_rewrite_leaves_the_old_file(tmp_path, monkeypatch):
    log = MetricsLog(tmp_path, tensorboard=False)
    for step in range(1, 5):
        log.log(step, {"loss": 1.0})
    before = log.path.read_text()

    def killed(*args):
        raise KeyboardInterrupt  # stands for a kill between writing the temp file and the rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        log.truncate_after(2)
    assert log.path.read_text() == before
    assert not list(tmp_path.glob(".*.tmp")), "the temp file was left behind"


def test_write_text_atomic_replaces_whole(tmp_path):
    path = tmp_path / "f"
    write_text_atomic(path, "a" * 1000)
    write_text_atomic(path, "b")
    assert path.read_text() == "b"


# ---------------------------------------------------------------------- signals
def cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "trafl", "train", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_rows(out: Path, rows: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "metrics.jsonl").exists() and len(steps_logged(out)) >= rows:
            return
        time.sleep(0.02)
    raise AssertionError("the run ended before it could be signalled")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_the_step_and_exits_with_one_line(
    four_checkpoints, tiny_path, tmp_path, signum
):
    out = tmp_path / "run"
    args = [f"model={tiny_path}", *SMALL, "steps=6", "ckpt_every=0", f"out_dir={out}"]
    proc = cli(args)
    wait_for_rows(out, 2, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert f"stopped by {signal.Signals(signum).name}" in last and "Traceback" not in err
    step = int(last.split("after step ")[1].split(";")[0])
    assert (out / f"checkpoint-{step}").is_dir() and step < 6
    if signum != signal.SIGTERM:
        return  # the same stop; one resume checks it
    # resumed in this process (tests/test_train.py resumes a killed CLI run through the CLI)
    Trainer(load_config(TrainConfig, None, [*args, "resume=true"])).train()
    assert steps_logged(out) == [1, 2, 3, 4, 5, 6]
    assert_same_weights(out / "model", four_checkpoints / "full" / "model")


# ---------------------------------------------------------------------- kills at injected points
KILLER = """
import os, signal, sys
from pathlib import Path
import trafl.run.checkpoint, trafl.core.files
point, target = sys.argv[1], sys.argv[2]
real_manifest, real_replace = trafl.run.checkpoint.write_manifest, os.replace
def manifest(folder):  # the checkpoint's files are written, its manifest not yet
    if folder.name == target:
        os.kill(os.getpid(), signal.SIGKILL)
    real_manifest(folder)
def replace(src, dst, *a, **k):  # the metrics rewrite's temp file is written, not renamed
    if Path(dst).name == target:
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst, *a, **k)
trafl.run.checkpoint.write_manifest = manifest
trafl.core.files.os.replace = replace
from trafl.commands.cli import main
main(["train", *sys.argv[3:]])
"""


@pytest.mark.slow
def test_kill_9_inside_a_checkpoint_write_and_the_metrics_rewrite(
    four_checkpoints, tiny_path, tmp_path
):
    """SIGKILL with the checkpoint's files on disk but no manifest or rename, then SIGKILL in
    the resume's metrics rewrite: the run still ends equal to an uninterrupted one."""
    out = tmp_path / "run"
    args = [
        f"model={tiny_path}",
        *SMALL,
        "steps=6",
        "ckpt_every=1",
        "keep_checkpoints=3",
        f"out_dir={out}",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def killed_at(point: str, target: str, *extra: str) -> None:
        done = subprocess.run(
            [sys.executable, "-c", KILLER, point, target, *args, *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == -signal.SIGKILL, done.stderr

    killed_at("manifest", ".checkpoint-3.tmp")
    assert (out / ".checkpoint-3.tmp" / "state.pt").is_file(), "not killed mid-write"
    assert [c.name for c in checkpoints(out)] == ["checkpoint-1", "checkpoint-2"]
    rows = (out / "metrics.jsonl").read_text()
    killed_at("replace", "metrics.jsonl", "resume=true")
    assert (out / "metrics.jsonl").read_text() == rows, "the rewrite damaged the old file"
    resume(out, tiny_path)
    assert steps_logged(out) == [1, 2, 3, 4, 5, 6]
    assert not list(out.glob(".*.tmp")), "a temp file or folder was left"
    assert_same_weights(out / "model", four_checkpoints / "full" / "model")


# ---------------------------------------------------------------------- a full disk
@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (root can mount one; skipped where the kernel refuses)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(small_disk):
    def write(size: int):
        return lambda folder: torch.save(torch.zeros(size // 4), folder / "state.pt")

    save_atomic(small_disk, "checkpoint-1", write(500_000))
    with pytest.raises(TraflError, match=rf"no space left.*{small_disk}"):
        save_atomic(small_disk, "checkpoint-2", write(3_000_000))
    assert (small_disk / "latest").read_text() == "checkpoint-1"
    assert verify_checkpoint(small_disk / "checkpoint-1")
    assert not list(small_disk.glob(".*tmp")), "the .tmp folder was left"


def test_a_training_run_on_a_full_disk_stops_with_one_line(small_disk, tiny_path):
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * (free - 150_000))  # room for metrics and config, not a model
    with pytest.raises(TraflError, match="no space left"):
        run(small_disk / "run", tiny_path, "steps=2", "ckpt_every=1")


# ---------------------------------------------------------------------- non-finite updates
def test_an_update_that_poisons_the_weights_is_rolled_back_exactly(tmp_path, tiny_path):
    """lr = inf: loss and gradient finite, weights not. The rolled-back update leaves weights
    and AdamW state exactly as a skipped one; no checkpoint is written during the streak."""
    trainer = Trainer(config(tmp_path, tiny_path, "steps=3", "ckpt_every=1", "max_bad_steps=2"))
    trainer.folder.claim(False, False)
    trainer.metrics_log = MetricsLog(tmp_path, tensorboard=False)
    trainer.train_step()  # one good update: AdamW has state to corrupt
    trainer.save_checkpoint()
    weights = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    moments = {
        id(p): {k: v.clone() for k, v in s.items()} for p, s in trainer.optimizer.state.items()
    }
    for group in trainer.optimizer.param_groups:
        group["lr"] = float("inf")
    trainer.train_step()
    assert trainer.bad_updates.in_a_row == 1 and trainer.skipped_total == 1
    for k, v in trainer.policy.state_dict().items():
        assert torch.equal(v, weights[k]), f"{k} kept the poisoned update"
    for p, s in trainer.optimizer.state.items():
        for k, v in s.items():
            assert torch.equal(v, moments[id(p)][k]), f"AdamW {k} kept the poisoned update"
    trainer.save_checkpoint()
    assert [c.name for c in checkpoints(tmp_path)] == ["checkpoint-1"]
    with pytest.raises(RunStopped, match="2 bad updates in a row.*non-finite weights"):
        trainer.train_step()
    trainer.folder.release()


def test_a_streak_names_the_good_checkpoint_and_sets_the_suspect_one_aside(tmp_path, tiny_path):
    """The update before a streak can poison the weights while staying finite (lr = 1e6): the
    checkpoint written right after it is moved aside and the advice names the earlier one."""
    trainer = Trainer(
        config(
            tmp_path, tiny_path, "steps=8", "ckpt_every=1", "max_bad_steps=2", "keep_checkpoints=3"
        )
    )
    real_loss = trainer.objective.loss

    def nan_from_step_4(inputs):
        loss, metrics = real_loss(inputs)
        return (loss * float("nan") if trainer.step >= 3 else loss), metrics

    trainer.objective.loss = nan_from_step_4
    with pytest.raises(
        RunStopped, match=r"last good checkpoint is .*checkpoint-2 \(checkpoint-3 moved aside"
    ):
        trainer.train()
    assert [c.name for c in checkpoints(tmp_path)] == ["checkpoint-1", "checkpoint-2"]
    assert (tmp_path / "checkpoint-3.suspect").is_dir()
    resumed = Trainer(
        config(
            tmp_path,
            tiny_path,
            "steps=8",
            "resume=true",
            "ckpt_every=1",
            "max_bad_steps=2",
            "keep_checkpoints=3",
        )
    )
    resumed.try_resume()
    assert resumed.step == 2


def test_the_guard_restores_state_created_by_the_first_step():
    """Before AdamW's first step it has no state; a rolled-back first step leaves none."""
    weight = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([weight], lr=float("inf"))
    guard = UpdateGuard(opt)
    weight.grad = torch.ones(3)
    guard.snapshot()
    opt.step()
    assert not guard.weights_finite()
    guard.restore()
    assert torch.equal(weight.detach(), torch.ones(3)) and not opt.state


# ---------------------------------------------------------------------- pretraining too
PRETRAIN = ["arch.hidden_size=16", "arch.num_layers=1", "arch.num_heads=2", "arch.mlp_hidden=32",
            "batch_size=8", "log_every=1", "eval_every=0", "completion_lengths=[16]",
            "device=cpu"]  # fmt: skip


def test_pretraining_shares_the_life_cycle(tmp_path):
    """Refuses a folder holding a run, falls back past a damaged checkpoint, and the resumed
    run equals an uninterrupted one."""
    from trafl.commands.pretrain import PretrainConfig, pretrain

    def cfg(out: Path, *extra: str) -> PretrainConfig:
        return load_config(PretrainConfig, None, [*PRETRAIN, f"out_dir={out}", *extra])

    pretrain(cfg(tmp_path / "full", "steps=4", "ckpt_every=1"))
    out = tmp_path / "run"
    pretrain(cfg(out, "steps=4", "ckpt_every=1", "keep_checkpoints=3"))
    with pytest.raises(UserError, match="already holds a run"):
        pretrain(cfg(out, "steps=4"))
    (out / "model").rename(tmp_path / "model-at-4")  # as if killed before the end
    assert [c.name for c in checkpoints(out)] == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    (out / "checkpoint-3" / "state.pt").write_bytes(b"damaged")
    pretrain(cfg(out, "steps=4", "ckpt_every=1", "keep_checkpoints=3", "resume=true"))
    assert_same_weights(out / "model", tmp_path / "full" / "model")
    assert steps_logged(out) == [1, 2, 3, 4]


def test_the_run_state_round_trips_every_generator_and_counter():
    """state_dict -> a fresh state -> load_state_dict: the next draws of every generator, the
    optimizer's next update, the step and the counters are the same as the original's."""
    import io
    import random

    from trafl.run.optim import OptimConfig, build_optimizer
    from trafl.run.state import RunState

    def fresh(seed: int) -> tuple[RunState, torch.nn.Linear]:
        torch.manual_seed(seed)
        layer = torch.nn.Linear(3, 2)
        opt, sched = build_optimizer(
            [{"params": list(layer.parameters())}],
            OptimConfig(lr=0.1, warmup_steps=2),
            total_steps=10,
        )
        state = RunState(
            opt,
            sched,
            random.Random(seed),
            torch.Generator().manual_seed(seed),
            modules={"head": layer},
            counters=("bad",),
        )
        return state, layer

    def advance(state: RunState, layer: torch.nn.Linear) -> list[float]:
        layer(torch.ones(1, 3)).sum().backward()
        state.optimizer.step()
        state.scheduler.step()
        state.optimizer.zero_grad()
        return [
            state.data_rng.random(),
            float(torch.rand(1, generator=state.mask_gen)),
            float(torch.rand(1)),
            *layer.weight.detach().flatten().tolist(),
        ]

    a, layer_a = fresh(0)
    advance(a, layer_a)
    a.step, a.counters["bad"] = 7, 2
    buffer = io.BytesIO()  # as a checkpoint does: serialised, not references to live tensors
    torch.save(a.state_dict(), buffer)
    expected = advance(a, layer_a)  # the global RNG moves on; loading puts it back
    b, layer_b = fresh(1)
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer, weights_only=False))
    assert (b.step, b.counters) == (7, {"bad": 2})
    assert advance(b, layer_b) == expected


def test_a_signal_swallowed_before_the_loop_still_stops_it_after_one_step(
    tmp_path, tiny_path, monkeypatch
):
    """The command line records every SIGTERM/SIGINT before it raises; a library that
    swallowed the exception (a bare except around an import) cannot make the signal vanish:
    the loop sees it, finishes one step, checkpoints it and stops."""
    import trafl.run.signals as signals

    monkeypatch.setattr(signals, "_RECEIVED", [])
    signals.record(signal.SIGTERM)
    with pytest.raises(RunStopped, match="stopped by SIGTERM after step 1") as exc:
        run(tmp_path, tiny_path, "steps=5", "ckpt_every=0")
    assert exc.value.exit_code == 143 and (tmp_path / "checkpoint-1").is_dir()
