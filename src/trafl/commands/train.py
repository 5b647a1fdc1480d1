"""``trafl train``: RL post-training of a diffusion LM, one readable loop.

One step: take B prompts; sample G completions each (no grad, recording reveal trajectories);
score them; draw the estimator's randomness once per inner update and score the reference
(and the rollout policy, for ratios) on it; then, for each of the mu inner updates, estimate
the policy per micro-batch of whole groups, compute the objective's loss, backpropagate
``loss * n_mb / N`` (the gradient does not depend on the micro-batch size), clip, and step
AdamW on the policy and the objective's own groups (log Z); log; evaluate and checkpoint when
due. Checkpoints hold everything needed for an exact resume.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from trafl.commands.train_checkpoints import CheckpointSteps
from trafl.commands.train_config import TrainConfig
from trafl.commands.train_rollouts import RolloutSteps, StepRollouts
from trafl.core.batch import Estimate, Rollout, concat_estimates
from trafl.core.config_files import format_config
from trafl.core.errors import RunStopped, TraflError
from trafl.core.files import write_text_atomic
from trafl.likelihood import ESTIMATORS, slice_draw
from trafl.models import load_trainable
from trafl.objectives import LossInputs, build_objective
from trafl.run.checkpoint import disk_full_is_one_line
from trafl.run.distributed import Distributed
from trafl.run.folder import RunFolder
from trafl.run.guard import UpdateGuard
from trafl.run.optim import build_optimizer, decay_groups
from trafl.run.reference import prompt_hidden, reference_model
from trafl.run.rollouts import check_reward_errors, greedy_accuracy
from trafl.run.runtime import (
    MetricsLog,
    console,
    format_metrics,
    make_progress,
    resolve_device,
    seed_everything,
)
from trafl.run.sharding import check_fsdp, clip_grad_norm, shard_model
from trafl.run.signals import StopRequests
from trafl.run.state import RunState
from trafl.run.step_metrics import average_parts, rollout_metrics
from trafl.run.streak import BadUpdates
from trafl.tasks import build_task


class UpdateInputs(NamedTuple):
    """See :meth:`Trainer.update_inputs`."""

    prepared: dict[str, torch.Tensor]
    draws: list[dict[str, torch.Tensor]]
    refs: list[Estimate] | None
    olds: list[Estimate] | None


class Trainer(RolloutSteps, CheckpointSteps):
    """Holds the run's state; :meth:`train` is the loop. The step's rollouts are
    :class:`RolloutSteps` (train_rollouts.py), saving and resuming :class:`CheckpointSteps`
    (train_checkpoints.py)."""

    def __init__(
        self,
        cfg: TrainConfig,
        policy: Any = None,
        task: Any = None,
        callbacks: Sequence[Callable[[int, dict[str, Any]], None]] = (),
    ) -> None:
        """``policy`` / ``task``: ready-made objects instead of the ones ``cfg.model`` and
        ``cfg.task`` describe (the Python API, :mod:`trafl.commands.api`); ``cfg.model`` still
        names where the policy came from (a LoRA checkpoint records it as its base).
        ``callbacks`` are called with (step, metrics) after every step, on rank 0, once the step
        is in metrics.jsonl (when it is a step to log) and before its checkpoint."""
        cfg.log.check_installed()  # a tracker asked for but missing: before any model loads
        self.cfg = cfg
        self.callbacks = list(callbacks)
        self.history: list[dict[str, Any]] = []  # every step's metrics, in order
        self.dist = Distributed(resolve_device(cfg.device))  # rank, world size; no-ops alone
        self.device = self.dist.device  # under a launcher: this rank's GPU
        self.out = Path(cfg.out_dir)
        seed_everything(cfg.seed)
        self.task = task if task is not None else build_task(cfg.task)
        self.task.sample_train(0, random.Random(0))  # a task without training data fails here
        self.policy: Any = (
            policy.to(self.device).train()
            if policy is not None
            else load_trainable(cfg.model, self.device)
        )
        self.objective = build_objective(cfg.objective, self.policy.hidden_size).to(self.device)
        self.estimator = ESTIMATORS.get(cfg.estimator.name)(cfg.estimator)
        # pi_ref: the adapter-disabled policy under LoRA, else a frozen copy (trafl.run.reference)
        self.reference = reference_model(self.policy) if self.objective.needs_reference else None
        if cfg.fsdp is None:
            cfg.fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true")
        if cfg.fsdp:  # before the optimizer: sharding replaces the parameters
            check_fsdp(cfg, self.dist.world_size)
            for model in (self.policy, self.reference):
                if model is not None:
                    shard_model(model, self.device, self.dist.world_size)
        self.mu = cfg.inner_updates or self.objective.default_inner_updates
        total_updates = cfg.steps * self.mu
        groups = decay_groups(self.policy) + self.objective.param_groups(cfg.optim.lr)
        self.optimizer, self.scheduler = build_optimizer(groups, cfg.optim, total_updates)
        self.objective_params = [p for g in self.objective.param_groups(0.0) for p in g["params"]]
        self.data_rng = random.Random(cfg.seed)  # the same prompts on every rank
        self.mask_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 2)
        self.guard = UpdateGuard(self.optimizer, cfg.guard_updates)
        self.replay = self.replay_buffer()
        self.drawn = self.drawn_rows()
        self.replay_metrics: dict[str, float] = {}
        # everything a checkpoint holds besides the weights (trafl.run.state)
        self.state = RunState(
            self.optimizer,
            self.scheduler,
            self.data_rng,
            self.mask_gen,
            modules={"objective": self.objective}
            | ({"replay": self.replay} if self.replay else {}),
            counters=("skipped_total", "bad_in_a_row"),
        )
        self.bad_updates = BadUpdates(
            self.state.counters, self.out, cfg.max_bad_steps, self.dist.is_main
        )
        self.folder = RunFolder(self.out)
        self.metrics_log: MetricsLog | None = None  # opened by train(), after the folder's lock

    # the step lives in the run state
    @property
    def step(self) -> int:
        return self.state.step

    @step.setter
    def step(self, value: int) -> None:
        self.state.step = value

    @property
    def skipped_total(self) -> int:
        return self.bad_updates.skipped_total

    # ------------------------------------------------------------------ the loop
    def train(self) -> Path:
        """Claim the run folder (lock; refuse to mix runs), resume if asked, run the loop."""
        error = None
        if self.dist.is_main:
            try:
                self.folder.claim(self.cfg.resume, self.cfg.overwrite)
            except TraflError as err:
                error = err
        error = self.dist.broadcast_object(error)  # every rank stops on rank 0's refusal
        if error is not None:
            raise error
        try:
            if self.dist.is_main:
                self.metrics_log = MetricsLog(self.out, self.cfg.log, self.cfg)
            with disk_full_is_one_line(self.out):
                return self.run()
        finally:
            if self.metrics_log is not None:
                self.metrics_log.close()
            self.folder.release()

    def run(self) -> Path:
        cfg = self.cfg
        if cfg.resume:
            self.try_resume()
        main = self.dist.is_main
        if self.drawn is not None:  # every rank refuses another file; the main rank records it
            self.drawn.pin(self.out, cfg.resume, write=main)
        if main:
            write_text_atomic(self.out / "config.yaml", format_config(cfg))
            if self.step == 0:
                console.print(format_config(cfg), markup=False)
            console.print(
                f"{cfg.objective.name} with {cfg.estimator.name} on {cfg.task.name}: "
                f"{cfg.rollout.prompts_per_step}x{cfg.rollout.group_size} rollouts/step, "
                f"mu={self.mu}, {self.dist.world_size} process(es)",
                markup=False,
            )
        # a signal stops the loop between steps; one during the final save waits for it
        with make_progress(disable=not main) as progress, StopRequests() as stop:
            bar = progress.add_task(cfg.objective.name, total=cfg.steps, completed=self.step)
            while self.step < cfg.steps:
                metrics = self.train_step()
                if main:
                    self.history.append({"step": self.step, **metrics})
                if main and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                    self.metrics_log.log(self.step, metrics)
                    keys = ["reward", "loss", "grad_norm", *self.objective_keys(metrics)]
                    progress.update(bar, info=format_metrics(metrics, keys))
                for callback in self.callbacks if main else ():  # after the step's row is logged
                    callback(self.step, metrics)
                saved = cfg.ckpt_every > 0 and self.step % cfg.ckpt_every == 0
                if saved:
                    self.save_checkpoint()
                progress.advance(bar)
                stopping = self.dist.mean({"stop": float(stop.signum is not None)})["stop"] > 0
                if stopping and self.step < cfg.steps:
                    self.stop_on_signal(stop, saved)
            return self.save_final()

    def train_step(self) -> dict[str, Any]:
        """Rollouts, the mu updates and their metrics; the in-training evaluation when due."""
        cfg = self.cfg
        step = self.rollouts()
        batch, full = step.batch, step.full
        errors = self.dist.mean({"n": float(batch.num_reward_errors)})["n"] * self.dist.world_size
        check_reward_errors(
            errors, full.num_rows, cfg.max_reward_error_rate, self.step + 1, batch.reward_error
        )
        metrics = self.update(step)
        self.step += 1
        metrics |= self.dist.mean(rollout_metrics(batch, self.cfg.rollout)) | self.replay_metrics
        metrics |= {
            "reward": float(full.rewards.mean()),
            "reward_std": float(full.rewards.std()) if full.num_rows > 1 else 0.0,
        }
        if (
            cfg.eval_every > 0
            and self.step % cfg.eval_every == 0
            and (self.dist.is_main or cfg.fsdp)
        ):
            metrics["eval_greedy_accuracy"] = self.evaluate()  # sharded: every rank
        if cfg.save_completions_every > 0 and self.step % cfg.save_completions_every == 0:
            self.save_completions(batch)  # each rank its own rows
        return metrics

    def stop_on_signal(self, stop: StopRequests, saved: bool) -> None:
        """SIGTERM / SIGINT: the step is finished; checkpoint it (unless just done) and stop."""
        if not saved:
            self.save_checkpoint()
        name = stop.name or "a signal on another rank"
        where = (
            f"{self.out / f'checkpoint-{self.step}'}"
            if self.bad_updates.in_a_row == 0
            else ("no checkpoint (the last update was not finite)")
        )
        raise RunStopped(
            f"stopped by {name} after step {self.step}; saved {where}; continue with resume=true",
            stop.exit_code,
        )

    def update(self, step: StepRollouts) -> dict[str, Any]:
        """mu optimiser steps on one rollout batch; returns averaged metrics."""
        inputs = self.update_inputs(step, self.mu)
        totals: dict[str, float] = {}
        for k in range(self.mu):
            step_metrics = self.apply_gradients(self.gradients(step, inputs, k))
            for key, value in step_metrics.items():
                totals[key] = totals.get(key, 0.0) + value / self.mu
        return totals

    def update_inputs(self, step: StepRollouts, draws: int) -> UpdateInputs:
        """What the updates on one batch share: the objective's batch statistics, ``draws``
        independent draws of the estimator's randomness, and the reference's (and, when the
        objective reuses the batch, the rollout policy's) estimates on each, without grad.
        Statistics and draws come from the whole batch ``step.full``; this rank keeps its rows."""
        g, mine, batch, full = self.cfg.rollout.group_size, step.rows, step.batch, step.full
        prepared = self.objective.prepare(
            full.rewards, full.group, g, lengths=full.completion_mask.sum(1)
        )
        prepared = {key: v[mine] for key, v in prepared.items()}
        draw_list = [
            slice_draw(self.estimator.draw(full, self.mask_gen), mine) for _ in range(draws)
        ]
        with torch.no_grad():
            ref = self.reference
            refs = [self.estimate(ref, batch, d) for d in draw_list] if ref else None
            reuse = self.objective.needs_old and self.mu > 1
            olds = [self.estimate(self.policy, batch, d) for d in draw_list] if reuse else None
        return UpdateInputs(prepared, draw_list, refs, olds)

    def gradients(
        self, step: StepRollouts, inputs: UpdateInputs, k: int
    ) -> list[tuple[float, torch.Tensor, dict[str, float]]]:
        """The gradient of the batch loss under draw ``k``, in the parameters' ``.grad`` (set
        afresh), and the micro-batches' parts (:meth:`backward`); nothing is stepped."""
        self.optimizer.zero_grad(set_to_none=True)
        return self.backward(
            step.batch,
            inputs.prepared,
            inputs.draws[k],
            inputs.olds[k] if inputs.olds else None,
            inputs.refs[k] if inputs.refs else None,
        )

    def backward(
        self,
        batch: Rollout,
        prepared: dict[str, torch.Tensor],
        draw: dict[str, torch.Tensor],
        old: Estimate | None,
        ref: Estimate | None,
    ) -> list[tuple[float, torch.Tensor, dict[str, float]]]:
        """Accumulate the gradient of the batch loss over micro-batches of whole groups:
        each contributes ``loss_mb * n_mb / N``, so the sum is the same for any split."""
        parts = []
        for idx in self.micro_batches(batch.num_rows):
            rows = batch.rows(idx)
            inputs = LossInputs(
                policy=self.estimator.estimate(self.policy, rows, slice_draw(draw, idx)),
                old=old.rows(idx) if old is not None else None,
                ref=ref.rows(idx) if ref is not None else None,
                rewards=rows.rewards,
                prepared={key: v[idx] for key, v in prepared.items()},
                group=rows.group,
                group_size=self.cfg.rollout.group_size,
                gen_length=batch.gen_length,
                prompt_hidden=self.prompt_hidden(batch, idx),
            )
            loss, metrics = self.objective.loss(inputs)
            share = (idx.stop - idx.start) / batch.num_rows
            (loss * share).backward()
            parts.append((share, loss.detach(), metrics))
        return parts

    def apply_gradients(
        self, parts: list[tuple[float, torch.Tensor, dict[str, float]]]
    ) -> dict[str, float]:
        """Clip and step, or skip a non-finite update (counted; too many in a row stops the run)."""
        loss = sum(share * part_loss for share, part_loss, _ in parts)
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.dist.average_gradients(params)  # the data-parallel mean (no-op in one process)
        loss = torch.tensor(self.dist.mean({"loss": float(loss)})["loss"])
        grad_norm, objective_norm = self.clip_gradients(params)
        finite = all(bool(torch.isfinite(x)) for x in (loss, grad_norm, objective_norm))
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
            self.bad_updates.record(
                self.step + 1, "non-finite loss or gradient", float(loss), float(grad_norm)
            )
        else:
            self.guard.snapshot()
            self.optimizer.step()
            if self.dist.mean({"ok": float(self.guard.weights_finite())})["ok"] < 1:
                if not self.guard.enabled:
                    raise RunStopped(
                        f"step {self.step + 1}: the update left non-finite weights "
                        f"(guard_updates=false); {self.bad_updates.advice(self.step + 1)}"
                    )
                self.guard.restore()
                what = "the update left non-finite weights; rolled back"
                self.bad_updates.record(self.step + 1, what, float(loss), float(grad_norm))
            else:
                self.scheduler.step()  # a skipped update does not consume the schedule
                self.bad_updates.reset()
        metrics = self.dist.mean(average_parts(parts))
        metrics |= {
            "loss": float(loss),
            "grad_norm": float(grad_norm),
            **({"objective_grad_norm": float(objective_norm)} if self.objective_params else {}),
            "lr": self.optimizer.param_groups[0]["lr"],  # the next update's
            "skipped_updates": self.skipped_total,
        }
        return metrics

    def clip_gradients(self, params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip the policy's gradient norm, and the objective's own parameters (log Z) as their
        own group unless ``optim.clip_objective_separately=false``; returns both norms."""
        optim = self.cfg.optim
        clip = optim.grad_clip if optim.grad_clip > 0 else float("inf")
        own = {id(p) for p in self.objective_params}
        groups = [params, []]
        if optim.clip_objective_separately and own:
            groups = [[p for p in params if id(p) not in own], self.objective_params]
        norms = []
        for group in groups:
            if not group:
                norms.append(torch.zeros(()))
            elif self.cfg.fsdp:
                norms.append(clip_grad_norm(group, clip))
            else:
                norms.append(torch.nn.utils.clip_grad_norm_(group, clip))
        return norms[0], norms[1]

    # ------------------------------------------------------------------ helpers
    def micro_batches(self, num_rows: int) -> list[slice]:
        g = self.cfg.rollout.group_size
        per = (self.cfg.micro_batch_groups or num_rows // g) * g
        return [slice(s, min(s + per, num_rows)) for s in range(0, num_rows, per)]

    def estimate(self, model: Any, batch: Rollout, draw: dict[str, torch.Tensor]) -> Estimate:
        """A no-grad estimate for the whole batch, computed per micro-batch (memory)."""
        model_was_training = model.training
        model.eval()
        parts = [
            self.estimator.estimate(model, batch.rows(i), slice_draw(draw, i))
            for i in self.micro_batches(batch.num_rows)
        ]
        model.train(model_was_training)
        return concat_estimates(parts)

    def prompt_hidden(self, batch: Rollout, idx: slice) -> torch.Tensor | None:
        """The prompt representation of each row; the G rows of a group share their prompt,
        so each distinct prompt is encoded once (G times fewer rows, the same values)."""
        if not self.objective.needs_prompt_hidden:
            return None
        ids, mask = batch.prompt_ids[idx], batch.prompt_mask[idx]  # (n, P)
        rows = torch.cat([ids, mask.long()], dim=1)  # (n, 2P)
        distinct, row_of = torch.unique(rows, dim=0, return_inverse=True)  # (u, 2P), (n,)
        p = ids.shape[1]
        with torch.set_grad_enabled(self.objective.prompt_hidden_grad):  # no unused graph
            hidden = prompt_hidden(self.policy, distinct[:, :p], distinct[:, p:].bool())  # (u, H)
        return hidden[row_of]  # (n, H)

    def objective_keys(self, metrics: dict[str, Any]) -> list[str]:
        skip = {"reward", "loss", "grad_norm", "objective_grad_norm", "lr", "skipped_updates"}
        return [k for k in metrics if k not in skip and not k.startswith(("rollout_", "eval_"))][:3]

    def evaluate(self) -> float:
        """Greedy accuracy with the rollouts' own schedule (steps, blocks, top_p, fast modes)."""
        sampler = self.cfg.rollout.sampler.greedy()
        return greedy_accuracy(self.policy, self.task, self.cfg.eval_problems, sampler)


def train(cfg: TrainConfig) -> Path:
    return Trainer(cfg).train()
