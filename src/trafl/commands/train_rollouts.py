"""The rollout half of a training step (:class:`RolloutSteps`, mixed into
:class:`trafl.commands.train.Trainer`): B prompts x G scored samples from the policy (or part
of each group from pi_ref, or replayed, or every row from a file of draws), each row's noise
keyed by (seed, step, row), the whole batch gathered from every rank."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import torch

from trafl.core.batch import Rollout, completion_mask_from_eos
from trafl.run.drawn_rows import DrawnRows
from trafl.run.replay_buffer import ReplayBuffer
from trafl.run.rollouts import interleave_groups, rollout_task, score_rollout


@dataclass
class StepRollouts:
    """One step's rollouts: this rank's rows (scored, with their texts), the whole batch (all
    ranks' rows in rank order, tensors only; the same object in one process) and where this
    rank's rows sit in it."""

    batch: Rollout
    full: Rollout
    rows: slice


class RolloutSteps:
    """The Trainer's rollouts; reads its ``cfg``, ``task``, ``policy``, ``reference``,
    ``dist``, ``device``, ``data_rng``, ``replay``, ``drawn`` and ``step``."""

    def rollouts(self) -> StepRollouts:
        """B prompts x G rows (samples of the current policy, or as ``rollout`` draws them
        otherwise), scored; no grad."""
        cfg = self.cfg.rollout
        g = cfg.group_size
        problems = self.task.sample_train(cfg.prompts_per_step, self.data_rng)  # all ranks
        mine = self.dist.shard(len(problems))  # this rank's whole groups
        rows = slice(mine.start * g, mine.stop * g)
        prompts = [self.task.prompt(p) for p in problems]  # one prompt width on every rank
        width = max(len(self.policy.tokenizer.encode_prompt(p)) for p in prompts)
        batch = self.sample_groups(problems[mine], rows.start, width)
        eos = self.policy.eos_token_id
        batch.completion_mask = completion_mask_from_eos(batch.completion_ids, eos)  # (N, L)
        batch.rewards = batch.rewards.to(self.device)  # (N,)
        batch.group = (batch.group + mine.start).to(self.device)  # (N,) global prompt index
        return StepRollouts(batch, self.gather_batch(batch), rows)

    def sample_groups(self, problems: list[Any], first_row: int, width: int) -> Rollout:
        """G scored samples per problem, problem-major: all from the policy, or the last
        ``rollout.reference_rows()`` of each group from pi_ref (off-policy exploration).
        Each row's noise is keyed by its global row index (:meth:`row_generator`)."""
        cfg = self.cfg.rollout
        g, k = cfg.group_size, cfg.reference_rows()
        if self.drawn is not None:
            return self.drawn_groups(problems, first_row, width)

        def draw(model: Any, offset: int, count: int) -> Rollout:
            gens = [
                self.row_generator(first_row + p * g + offset + i)
                for p in range(len(problems))
                for i in range(count)
            ]
            return rollout_task(model, self.task, problems, count, cfg.sampler, gens, pad_to=width)

        if k == 0:
            batch = draw(self.policy, 0, g)
        else:
            batch = interleave_groups(
                draw(self.policy, 0, g - k), draw(self.reference, g - k, k), g - k
            )
        return self.replayed(batch, problems, first_row // g) if self.replay else batch

    def drawn_rows(self) -> DrawnRows | None:
        """The file every row is drawn from (``rollout.draws``), or None; under a fixed pool
        checked against every training problem before any step."""
        cfg = self.cfg.rollout
        if not cfg.draws:
            return None
        drawn = DrawnRows(cfg.draws, cfg.draws_tilt, cfg.sampler.gen_length)
        pool = getattr(self.task, "pool", None)
        if isinstance(pool, list):
            drawn.check(self.task, pool, self.policy)
        return drawn

    def drawn_groups(self, problems: list[Any], first_row: int, width: int) -> Rollout:
        """G rows per problem from ``rollout.draws``, row i drawn with the generator of global
        row ``first_row + i`` and scored by the task; a row whose file reward is not the task's
        score stops the run in one line (the file is another task's, or another reward's)."""
        g = self.cfg.rollout.group_size
        rows = [p for p in problems for _ in range(g)]
        gens = [self.row_generator(first_row + i) for i in range(len(rows))]
        assert self.drawn is not None
        batch = self.drawn.rollout(self.policy, [self.task.prompt(p) for p in rows], gens, width)
        filed = batch.rewards
        batch = score_rollout(batch, self.task, rows, g)
        if not torch.equal(filed, batch.rewards):
            i = int((filed != batch.rewards).nonzero()[0])
            raise self.drawn.mismatch(batch.texts[i], float(filed[i]), float(batch.rewards[i]))
        return batch

    def replay_buffer(self) -> ReplayBuffer | None:
        """The store of past correct completions (``rollout.replay_share``), or None."""
        cfg = self.cfg.rollout
        if cfg.replay_rows() == 0:
            return None
        return ReplayBuffer(cfg.replay_capacity, cfg.replay_min_reward, self.cfg.seed)

    def replayed(self, sampled: Rollout, problems: list[Any], first_group: int) -> Rollout:
        """``sampled`` (the step's groups from ``first_group`` on) with stored completions over
        each group's replay rows (its metrics, averaged over ranks, kept for the step's log);
        then every rank's samples are stored on every rank."""
        assert self.replay is not None
        prompts = [self.task.prompt(p) for p in problems]
        batch, metrics = self.replay.step(
            sampled, prompts, self.cfg.rollout, self.step, first_group, self.dist.all_gather_objects
        )
        self.replay_metrics = self.dist.mean(metrics)
        return batch

    def row_generator(self, row: int) -> torch.Generator:
        """Rollout noise keyed by (seed, step, global row): the same completion whichever rank
        samples the row and whatever else shares its batch."""
        key = hashlib.blake2b(f"{self.cfg.seed}:{self.step}:{row}".encode(), digest_size=8)
        seed = int.from_bytes(key.digest(), "little") >> 1
        return torch.Generator(device=self.device).manual_seed(seed)

    def gather_batch(self, batch: Rollout) -> Rollout:
        """All ranks' rows in rank order (= the one-process batch); ``batch`` itself alone."""
        if not self.dist.enabled:
            return batch
        g = self.dist.gather
        t = batch.trajectory
        return Rollout(
            prompt_ids=g(batch.prompt_ids),
            prompt_mask=g(batch.prompt_mask),
            completion_ids=g(batch.completion_ids),
            completion_mask=g(batch.completion_mask),
            rewards=g(batch.rewards),
            group=g(batch.group),
            trajectory=type(t)(g(t.reveal_step), g(t.token_logp), g(t.sample_logp)),
        )

    def save_completions(self, scored: Rollout) -> None:
        rank = f".rank{self.dist.rank}" if self.dist.enabled else ""
        path = self.out / "completions" / f"step-{self.step}{rank}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            for problem, text, reward in zip(
                scored.problems, scored.texts, scored.rewards.tolist(), strict=True
            ):
                f.write(
                    json.dumps({"problem": problem, "completion": text, "reward": reward}) + "\n"
                )
