"""The trainer: every objective trains, micro-batching does not change the gradient, a killed
run resumes to the same parameters, and failures are handled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import assert_same_weights, make_tiny
from trafl.commands.train import TrainConfig, Trainer
from trafl.core.config_files import load_config
from trafl.core.errors import RunStopped
from trafl.models import load_model
from trafl.objectives import OBJECTIVES

BASE = Path(__file__).resolve().parents[1] / "models" / "countdown-base"
SMALL = ["rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.sampler.gen_length=16",
         "rollout.sampler.steps=8", "device=cpu", "save_completions_every=1"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "model"
    make_tiny(seed=3).save_pretrained(path)
    return path


def config(out: Path, model: Path, *extra: str) -> TrainConfig:
    return load_config(TrainConfig, None, [f"model={model}", f"out_dir={out}", *SMALL, *extra])


@pytest.mark.parametrize("objective", OBJECTIVES.names())
def test_every_objective_trains_two_steps_from_the_shipped_base(tmp_path, objective):
    cfg = config(tmp_path, BASE, f"objective.name={objective}", "steps=2", "inner_updates=2")
    before = load_model(BASE).state_dict()
    Trainer(cfg).train()
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    after = load_model(tmp_path / "model").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "parameters did not change"
    assert (tmp_path / "completions" / "step-2.jsonl").is_file()


def test_estimator_defaults_to_the_objectives_own():
    for name in OBJECTIVES.names():
        cfg = load_config(TrainConfig, None, [f"objective.name={name}"])
        assert cfg.estimator.name == OBJECTIVES.get(name).estimator_name
    cfg = load_config(TrainConfig, None, ["objective.name=trafl", "estimator.name=elbo"])
    assert cfg.estimator.name == "elbo"


CASES = [("trafl", 1, ["objective.reward_norm=none"]), ("trafl", 2, []), ("trafl_path", 2, []),
         ("trafl_path", 2, ["estimator.order=fresh"]),
         ("diffu_grpo", 2, []), ("spg", 4, []), ("espo", 2, []), ("wd1", 4, [])]  # fmt: skip


@pytest.mark.parametrize(("objective", "group_size", "extra"), CASES)
def test_gradient_does_not_depend_on_micro_batch_size(
    tmp_path, tiny_path, objective, group_size, extra
):
    """One micro-batch of all 8 rows equals micro-batches of one group each (8 of 1 at G=1)."""
    rows = 8
    cfg = config(
        tmp_path,
        tiny_path,
        f"objective.name={objective}",
        *extra,
        f"rollout.group_size={group_size}",
        f"rollout.prompts_per_step={rows // group_size}",
    )
    trainer = Trainer(cfg)
    batch = trainer.rollouts().batch
    batch.rewards = (torch.arange(rows) % 3 == 0).float()  # a random model never solves anything
    prepared = trainer.objective.prepare(
        batch.rewards, batch.group, group_size, lengths=batch.completion_mask.sum(1)
    )
    draw = trainer.estimator.draw(batch, trainer.mask_gen)
    ref = trainer.estimate(trainer.reference, batch, draw) if trainer.reference else None

    def grads(groups_per_micro_batch: int | None) -> list[torch.Tensor]:
        trainer.cfg.micro_batch_groups = groups_per_micro_batch
        trainer.optimizer.zero_grad(set_to_none=False)
        trainer.backward(batch, prepared, draw, None, ref)
        return [p.grad.clone() for g in trainer.optimizer.param_groups for p in g["params"]]

    single = grads(1)
    assert len(trainer.micro_batches(rows)) == rows // group_size
    whole = grads(None)
    assert len(trainer.micro_batches(rows)) == 1
    assert any(g.abs().sum() > 0 for g in whole)
    # the same sum in another order: float32's bound for N terms, (N - 1) u sum|terms|, with N
    # = 8 rows x 16 tokens and a tensor's largest entry for the terms' scale (observed: 7 u of
    # it at most, trafl_path's gradients reaching 65; a per-element rtol failed on one entry
    # near 0 with OMP_NUM_THREADS=1). A micro-batch weighted wrongly is off by O(1) of it.
    terms = rows * cfg.rollout.sampler.gen_length
    for a, b in zip(whole, single, strict=True):
        scale = float(a.abs().max())
        tol = terms * torch.finfo(a.dtype).eps / 2 * scale
        assert float((a - b).abs().max()) <= tol, (float((a - b).abs().max()), tol)


def run_cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "trafl", "train", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_path):
    args = [
        f"model={tiny_path}",
        *SMALL,
        "rollout.prompts_per_step=4",
        "steps=8",
        "ckpt_every=2",
        "objective.name=trafl",
        "inner_updates=2",
    ]
    # the uninterrupted run in this process (the same settings give the same bits in a CLI run)
    Trainer(load_config(TrainConfig, None, [*args, f"out_dir={tmp_path / 'full'}"])).train()

    killed_dir = tmp_path / "killed"
    proc = run_cli([*args, f"out_dir={killed_dir}"])
    deadline = time.time() + 300
    while (
        not (killed_dir / "checkpoint-2").exists()
        and proc.poll() is None
        and time.time() < deadline
    ):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed_dir / "model").exists()

    resumed = run_cli([*args, f"out_dir={killed_dir}", "resume=true"])
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    assert_same_weights(tmp_path / "full" / "model", killed_dir / "model")
    steps = [json.loads(r)["step"] for r in (killed_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))


def test_a_crash_while_writing_a_checkpoint_leaves_the_previous_one(
    tmp_path, tiny_path, monkeypatch
):
    cfg = config(tmp_path, tiny_path, "steps=4", "ckpt_every=2")
    trainer = Trainer(cfg)
    real_save = trainer.policy.save_pretrained
    calls = {"n": 0}

    def failing_save(path):
        calls["n"] += 1
        if calls["n"] == 2:  # the step-4 checkpoint
            raise OSError("disk full")
        return real_save(path)

    monkeypatch.setattr(trainer.policy, "save_pretrained", failing_save)
    with pytest.raises(OSError):
        trainer.train()
    assert (tmp_path / "latest").read_text() == "checkpoint-2"
    resumed = Trainer(config(tmp_path, tiny_path, "steps=4", "ckpt_every=2", "resume=true"))
    resumed.try_resume()
    assert resumed.step == 2


def test_non_finite_updates_are_skipped_then_stop_the_run(tmp_path, tiny_path, monkeypatch):
    cfg = config(tmp_path, tiny_path, "steps=6", "max_bad_steps=3", "inner_updates=1")
    trainer = Trainer(cfg)
    before = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    real_loss = trainer.objective.loss

    def nan_loss(inputs):
        loss, metrics = real_loss(inputs)
        return loss * float("nan"), metrics

    monkeypatch.setattr(trainer.objective, "loss", nan_loss)
    with pytest.raises(RunStopped, match="3 bad updates in a row"):
        trainer.train()
    assert trainer.skipped_total == 3
    for k, v in trainer.policy.state_dict().items():
        assert torch.equal(v, before[k]), "a non-finite update changed the parameters"


def test_a_reward_that_raises_scores_zero_and_is_counted(tmp_path, tiny_path, monkeypatch):
    cfg = config(tmp_path, tiny_path, "steps=1")
    trainer = Trainer(cfg)
    calls = {"n": 0}
    real_reward = trainer.task.reward

    def flaky(problem, completion):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("checker crashed")
        return real_reward(problem, completion)

    monkeypatch.setattr(trainer.task, "reward", flaky)
    trainer.train()
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert row["rollout_reward_errors"] == 1


def test_resume_without_a_checkpoint_starts_clean(tmp_path, tiny_path):
    """A run killed before its first checkpoint (rows logged, no `latest`) restarts from step 0
    and its metrics file does not keep the dead run's rows."""
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "time": 0.1}\n{"step": 2, "time": 0.2}\n')
    Trainer(config(tmp_path, tiny_path, "steps=2", "ckpt_every=0", "resume=true")).train()
    steps = [json.loads(r)["step"] for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


@pytest.mark.parametrize("separately", [True, False])
def test_log_z_gradients_are_clipped_as_their_own_group(tmp_path, tiny_path, separately):
    """optim.clip_objective_separately: the policy's gradient norm and log Z's are each clipped
    to grad_clip; off, one global norm as torch computes it. Gradients set by hand: the policy
    norm 3, the head's 4 (joint 5), clip 1."""
    cfg = config(
        tmp_path,
        tiny_path,
        "optim.grad_clip=1.0",
        f"optim.clip_objective_separately={str(separately).lower()}",
    )
    trainer = Trainer(cfg)
    params = [p for g in trainer.optimizer.param_groups for p in g["params"]]
    own = {id(p) for p in trainer.objective_params}
    policy = [p for p in params if id(p) not in own]
    assert trainer.objective_params and policy
    for group, norm in ((policy, 3.0), (trainer.objective_params, 4.0)):
        size = sum(p.numel() for p in group)
        for p in group:  # every entry equal: the group's norm is `norm`
            p.grad = torch.full_like(p, norm / size**0.5)
    policy_norm, head_norm = trainer.clip_gradients(params)

    def norm(group: list[torch.Tensor]) -> float:
        return float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in group)))

    # float32 entries summed over ~1e5 squares: the norm is exact to ~1e-5 relative
    if separately:
        assert (float(policy_norm), float(head_norm)) == pytest.approx((3.0, 4.0), rel=1e-5)
        assert (norm(policy), norm(trainer.objective_params)) == pytest.approx((1, 1), rel=1e-5)
    else:
        assert float(policy_norm) == pytest.approx(5.0, rel=1e-5) and float(head_norm) == 0.0
        assert norm(policy) == pytest.approx(3 / 5, rel=1e-5)
        assert norm(trainer.objective_params) == pytest.approx(4 / 5, rel=1e-5)


def test_reference_share_draws_the_last_rows_of_each_group_from_pi_ref(tmp_path, tiny_path):
    """rollout.reference_share=0.5, G=4: once the policy has moved away from pi_ref (here its
    weights perturbed), rows 2-3 of every group are what the initial model samples with those
    rows' generators and rows 0-1 what the policy samples; metrics split the two kinds."""
    from trafl.run.rollouts import rollout_task

    cfg = config(
        tmp_path, tiny_path, "rollout.reference_share=0.5", "rollout.sampler.temperature=1.0"
    )
    trainer = Trainer(cfg)
    metrics = trainer.train_step()
    assert {"reward_policy_rows", "reward_reference_rows"} <= set(metrics)
    with torch.no_grad():  # a policy far from the reference
        for p in trainer.policy.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    data_rng = trainer.data_rng.getstate()
    batch = trainer.rollouts().batch
    trainer.data_rng.setstate(data_rng)
    problems = trainer.task.sample_train(cfg.rollout.prompts_per_step, trainer.data_rng)
    prompts = [trainer.task.prompt(p) for p in problems]
    width = max(len(trainer.policy.tokenizer.encode_prompt(p)) for p in prompts)

    def sample(model, rows):  # the rows' problems, each row with its own generator
        gens = [trainer.row_generator(r) for r in rows]
        out = [
            rollout_task(
                model, trainer.task, [problems[r // 4]], 1, cfg.rollout.sampler, [g], pad_to=width
            ).completion_ids
            for r, g in zip(rows, gens, strict=True)
        ]
        return torch.cat(out)

    policy_rows, reference_rows = [0, 1, 4, 5], [2, 3, 6, 7]
    assert torch.equal(sample(trainer.policy, policy_rows), batch.completion_ids[policy_rows])
    assert torch.equal(
        sample(load_model(tiny_path), reference_rows), batch.completion_ids[reference_rows]
    )
    # the check can fail: the policy's own samples for the reference rows differ
    assert not torch.equal(
        sample(trainer.policy, reference_rows), batch.completion_ids[reference_rows]
    )
    assert batch.group.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_reference_share_is_refused_where_it_cannot_work(tmp_path, tiny_path):
    with pytest.raises(ValueError, match="'diffu_grpo' is on-policy"):
        config(tmp_path, tiny_path, "objective.name=diffu_grpo", "rollout.reference_share=0.5")
    with pytest.raises(ValueError, match="gives 0 of group_size=4 rows from pi_ref"):
        config(tmp_path, tiny_path, "rollout.reference_share=0.1")


@pytest.mark.parametrize("detach", [True, False])
def test_the_log_z_input_carries_a_graph_only_when_it_trains_the_backbone(
    tmp_path, tiny_path, detach
):
    cfg = config(tmp_path, tiny_path, f"objective.detach_backbone={str(detach).lower()}")
    trainer = Trainer(cfg)
    batch = trainer.rollouts().batch
    hidden = trainer.prompt_hidden(batch, slice(0, batch.num_rows))
    assert hidden.shape == (batch.num_rows, trainer.policy.hidden_size)
    assert hidden.requires_grad is (not detach)
