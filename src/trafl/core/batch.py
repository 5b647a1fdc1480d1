"""The tensors that flow through one RL step, with their shapes.

Letters: B prompts, G samples per prompt, N = B*G rows (problem-major: rows g*G..g*G+G-1 share
prompt g), P prompt length, L completion length, V vocabulary, H hidden size, K masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch


@dataclass
class Trajectory:
    """How a batch of completions was revealed. Exact: replaying it reproduces ``token_logp``."""

    reveal_step: torch.Tensor  # (N, L) long, the row's step (0-based) that revealed the position;
    # -1 past a row's own length (per-sequence lengths)
    token_logp: torch.Tensor  # (N, L) float32, log p_theta(token | state before its step)
    sample_logp: torch.Tensor  # (N, L) float32, same under the sampled (tempered, top-p) law


@dataclass
class Rollout:
    """Completions with everything known about them, one container from the sampler to the
    loss. The sampler fills the ids, the trajectory and its counts; scoring
    (:func:`trafl.run.rollouts.rollout_task`) adds the problems, texts, rewards, reward
    components and groups; the trainer adds ``completion_mask`` and moves rewards to its
    device. Fields not filled yet are None or empty."""

    prompt_ids: torch.Tensor  # (N, P) left-padded with pad ids
    prompt_mask: torch.Tensor  # (N, P) bool, False on padding
    completion_ids: torch.Tensor  # (N, L) as sampled, EOS past a row's own length
    trajectory: Trajectory
    num_steps: int = 0  # denoising steps of the row that took most (reveal_step < num_steps)
    lengths: torch.Tensor | None = None  # (N,) per-row completion lengths; None: all L
    num_calls: int = 0  # denoiser calls made (summed over micro-batches by concat_rollouts)
    completion_mask: torch.Tensor | None = None  # (N, L) bool, up to and including first EOS
    rewards: torch.Tensor | None = None  # (N,) float32
    group: torch.Tensor | None = None  # (N,) long, prompt index of each row
    problems: list[Any] = field(default_factory=list)  # (N,) each row's problem
    texts: list[str] = field(default_factory=list)  # (N,) decoded completions, cut at EOS
    components: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (N,) float32
    num_reward_errors: int = 0
    reward_error: str = ""  # the first reward error's repr ("" when none raised)

    @property
    def num_rows(self) -> int:
        return self.completion_ids.shape[0]

    @property
    def gen_length(self) -> int:
        return self.completion_ids.shape[1]

    def rows(self, index: torch.Tensor | slice) -> Rollout:
        """A sub-batch (a micro-batch of whole groups, normally); counts are kept as they are."""

        def pick(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x[index]

        def pick_list(items: list[Any]) -> list[Any]:
            if not items or isinstance(index, slice):
                return items[index] if items else items
            return [items[i] for i in index.tolist()]

        traj = Trajectory(*(getattr(self.trajectory, f.name)[index] for f in fields(Trajectory)))
        return replace(
            self,
            prompt_ids=self.prompt_ids[index],
            prompt_mask=self.prompt_mask[index],
            completion_ids=self.completion_ids[index],
            trajectory=traj,
            lengths=pick(self.lengths),
            completion_mask=pick(self.completion_mask),
            rewards=pick(self.rewards),
            group=pick(self.group),
            problems=pick_list(self.problems),
            texts=pick_list(self.texts),
            components={k: v[index] for k, v in self.components.items()},
        )


def completion_mask_from_eos(completion_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """(N, L) bool: True up to and including the first EOS (all True when there is none)."""
    is_eos = completion_ids == eos_id  # (N, L)
    before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()  # EOS seen strictly before
    return before == 0


@dataclass
class Estimate:
    """A likelihood estimator's output for one model (policy, old policy or reference).

    ``seq`` is the sequence-level quantity the estimator names (its docstring gives the
    equation); ``token_logp`` are per-token log-probs for per-token objectives; ``per_draw``
    keeps one value per mask draw (K of them) for objectives that need them separately
    (TraFL's unbiased square, SPG's bounds). Fields an estimator does not produce stay None.
    """

    seq: torch.Tensor  # (N,)
    token_logp: torch.Tensor | None = None  # (N, L) (zeros where not estimated)
    token_mask: torch.Tensor | None = None  # (N, L) bool, which token_logp entries count
    per_draw: torch.Tensor | None = None  # (N, K)
    upper: torch.Tensor | None = None  # (N,) an upper bound (SPG's EUBO), where defined
    # (N,) float: the number of positions a per-token ``seq`` is a mean over (L, or each row's
    # length up to its first EOS); converts a sequence-level tilt per row. None: gen_length
    length: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def detach(self) -> Estimate:
        def d(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.detach()

        return replace(
            self,
            seq=self.seq.detach(),
            token_logp=d(self.token_logp),
            token_mask=self.token_mask,
            per_draw=d(self.per_draw),
            upper=d(self.upper),
            length=self.length,
            extras={k: v.detach() for k, v in self.extras.items()},
        )

    def rows(self, index: torch.Tensor | slice) -> Estimate:
        def r(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x[index]

        return Estimate(
            seq=self.seq[index],
            token_logp=r(self.token_logp),
            token_mask=r(self.token_mask),
            per_draw=r(self.per_draw),
            upper=r(self.upper),
            length=r(self.length),
            extras={k: v[index] for k, v in self.extras.items()},
        )


def concat_estimates(parts: list[Estimate]) -> Estimate:
    """Stack the estimates of consecutive micro-batches (fields an estimator left None stay None)."""

    def cat(name: str) -> torch.Tensor | None:
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else torch.cat(values)

    extras = {k: torch.cat([p.extras[k] for p in parts]) for k in parts[0].extras}
    return Estimate(
        seq=cat("seq"),
        token_logp=cat("token_logp"),
        token_mask=cat("token_mask"),
        per_draw=cat("per_draw"),
        upper=cat("upper"),
        length=cat("length"),
        extras=extras,
    )
