"""Replay of past correct completions: an exploration knob for off-policy objectives (TraFL).

Trajectory balance holds for completions from any behaviour policy, so a group may carry
completions the policy found earlier instead of fresh samples. :class:`ReplayBuffer` keeps, per
prompt, up to ``capacity`` distinct completions whose reward reached ``min_reward`` (newest
kept, oldest dropped), with everything the loss reads about them: the tokens, the reveal
trajectory, the reward and its components. Each step, :meth:`ReplayBuffer.substitute` writes
stored completions of a group's own prompt over ``rows`` rows of the group (the last rows before
any rows from pi_ref), distinct ones where the prompt has enough, and leaves a group whose
prompt has none as it was sampled; then the step's fresh samples are added. OUR knob, not the
paper's (docs/TARGET.md, issue 12): the paper trains on-policy.

Which stored completions a group gets is drawn from (seed, step, global group index) alone, so
a resumed run draws the same ones, and so does a run over several processes: each rank
substitutes in its own groups, then every rank stores every rank's fresh samples in rank order
(``share``, an all-gather), so all ranks hold the one-process buffer. The buffer itself is saved
in each checkpoint (:class:`trafl.run.state.RunState`'s ``modules``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch

from trafl.core.batch import Rollout, Trajectory


@dataclass
class Stored:
    """One stored completion: a row of a scored :class:`Rollout` (CPU tensors)."""

    completion_ids: torch.Tensor  # (L,)
    reveal_step: torch.Tensor  # (L,)
    token_logp: torch.Tensor  # (L,)
    sample_logp: torch.Tensor  # (L,)
    reward: float
    components: dict[str, float]
    text: str

    @classmethod
    def of_row(cls, batch: Rollout, row: int) -> Stored:
        t = batch.trajectory
        return cls(
            batch.completion_ids[row].detach().cpu().clone(),
            t.reveal_step[row].detach().cpu().clone(),
            t.token_logp[row].detach().cpu().clone(),
            t.sample_logp[row].detach().cpu().clone(),
            float(batch.rewards[row]),
            {k: float(v[row]) for k, v in batch.components.items()},
            batch.texts[row] if batch.texts else "",
        )

    def key(self) -> tuple[int, ...]:
        return tuple(self.completion_ids.tolist())


class ReplayBuffer:
    def __init__(self, capacity: int, min_reward: float, seed: int) -> None:
        self.capacity = capacity
        self.min_reward = min_reward
        self.seed = seed
        self.entries: dict[str, list[Stored]] = {}  # prompt -> distinct completions, oldest first

    def add(self, prompts: list[str], batch: Rollout, group_size: int) -> None:
        """Store the rows of ``batch`` (problem-major, ``group_size`` rows per prompt of
        ``prompts``) whose reward reached ``min_reward``; a completion already stored for its
        prompt moves to the newest place."""
        self.store(self.worth_storing(prompts, batch, group_size))

    def worth_storing(
        self, prompts: list[str], batch: Rollout, group_size: int
    ) -> list[tuple[str, Stored]]:
        """(prompt, completion) for every row of ``batch`` whose reward reached ``min_reward``."""
        return [
            (prompts[row // group_size], Stored.of_row(batch, row))
            for row in range(batch.num_rows)
            if float(batch.rewards[row]) >= self.min_reward
        ]

    def store(self, items: list[tuple[str, Stored]]) -> None:
        for prompt, item in items:
            kept = self.entries.setdefault(prompt, [])
            kept[:] = [s for s in kept if s.key() != item.key()] + [item]
            del kept[: max(0, len(kept) - self.capacity)]

    def picks(self, prompt: str, step: int, group: int, rows: int) -> list[Stored]:
        """Up to ``rows`` distinct stored completions of ``prompt``, drawn from (seed, step,
        group)."""
        kept = self.entries.get(prompt, [])
        key = hashlib.blake2b(f"replay:{self.seed}:{step}:{group}".encode(), digest_size=8)
        return random.Random(key.digest()).sample(kept, min(rows, len(kept)))

    def substitute(
        self,
        batch: Rollout,
        prompts: list[str],
        group_size: int,
        rows: int,
        last: int,
        step: int,
        first_group: int = 0,
    ) -> tuple[Rollout, torch.Tensor]:
        """``batch`` with stored completions written over up to ``rows`` rows of each group,
        the rows just before the group's ``last`` rows; and the (N,) bool mask of rows replaced.
        ``batch``'s groups are the step's groups ``first_group``, ``first_group + 1``, ...
        (a rank's share). ``batch`` itself is not changed."""
        out = _copy(batch)
        replaced = torch.zeros(batch.num_rows, dtype=torch.bool)
        first = group_size - last - rows
        for group, prompt in enumerate(prompts):
            for i, item in enumerate(self.picks(prompt, step, first_group + group, rows)):
                row = group * group_size + first + i
                _write(out, row, item)
                replaced[row] = True
        return out, replaced

    def step(
        self,
        sampled: Rollout,
        prompts: list[str],
        rollout: Any,
        step: int,
        first_group: int = 0,
        share: Callable[[Any], list[Any]] = lambda items: [items],
    ) -> tuple[Rollout, dict[str, float]]:
        """One training step's use of the buffer, with ``rollout`` (its ``group_size``,
        ``replay_rows()``, ``reference_rows()``): ``sampled`` (the step's groups from
        ``first_group`` on) with stored completions over each group's replay rows, then every
        rank's fresh samples stored (``share``: this rank's items -> all ranks' in rank order).
        Metrics (this rank's): the share of rows replaced, the mean reward of what was sampled,
        the buffer's size."""
        g = rollout.group_size
        batch, replaced = self.substitute(
            sampled, prompts, g, rollout.replay_rows(), rollout.reference_rows(), step, first_group
        )
        for items in share(self.worth_storing(prompts, sampled, g)):
            self.store(items)
        metrics = {
            "replay_rows": float(replaced.float().mean()),
            "reward_sampled": float(sampled.rewards.mean()),
        }
        return batch, metrics | self.stats()

    def stats(self) -> dict[str, float]:
        sizes = [len(v) for v in self.entries.values()]
        return {"replay_prompts": float(len(sizes)), "replay_stored": float(sum(sizes))}

    def state_dict(self) -> dict[str, Any]:
        return {p: [vars(s) for s in kept] for p, kept in self.entries.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.entries = {p: [Stored(**s) for s in kept] for p, kept in state.items()}


def _copy(batch: Rollout) -> Rollout:
    """A copy whose per-row tensors and lists may be written without touching ``batch``."""
    t = batch.trajectory
    out = batch.rows(slice(None))
    out.completion_ids = batch.completion_ids.clone()
    out.trajectory = Trajectory(*(getattr(t, f.name).clone() for f in fields(Trajectory)))
    out.rewards = batch.rewards.clone()
    out.components = {k: v.clone() for k, v in batch.components.items()}
    out.texts = list(batch.texts)
    return out


def _write(out: Rollout, row: int, item: Stored) -> None:
    device = out.completion_ids.device
    out.completion_ids[row] = item.completion_ids.to(device)
    out.trajectory.reveal_step[row] = item.reveal_step.to(device)
    out.trajectory.token_logp[row] = item.token_logp.to(device)
    out.trajectory.sample_logp[row] = item.sample_logp.to(device)
    out.rewards[row] = item.reward
    for name, values in out.components.items():
        values[row] = item.components.get(name, 0.0)
    if out.texts:
        out.texts[row] = item.text
