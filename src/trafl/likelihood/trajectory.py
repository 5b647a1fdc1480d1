"""``trajectory``: the exact log-probability of the recorded reveal trajectory, replayed.

The sampler records, for each completion position i, the global step s_i at which it was
revealed (``batch.trajectory.reveal_step``). At step s the state is the completion with every
position not yet revealed masked, z_s = y with {j : s_j >= s} hidden. Replaying the path,

    token_logp[i] = log p_theta(y_i | z_{s_i}, x),
    seq           = sum_i token_logp[i]   (over all L positions, or up to EOS),

is the exact log-probability of the revealed TOKENS along the recorded path,
log P_theta(y | tau, x) (the choice of which positions to reveal is the sampler's, not a
model output). With the sampling model this reproduces ``trajectory.token_logp`` (which the
sampler computes at temperature 1 from the same states). It is the exact-path variant of
trajectory balance that METHOD.md section 3 lists (the relative trajectory balance of GFlowNets).

``order="recorded"`` (the default) replays the recorded path: no randomness, the draw is empty.
``order="fresh"`` (OUR option, for docs/TARGET.md's diagnoses) replays a new order each draw: the
row's recorded reveal steps (how many positions each step revealed) assigned to its positions in
a uniformly random order, the same order for policy and reference (one shared draw). Under
any-order decoding in one block (``remasking="random"``, ``block_length`` = L) the choice of
positions is uniform and does not depend on the model, so log P_theta(y, tau') - log P_ref(y,
tau') is exact for every such order tau'; with one position revealed a step, the mean of
``seq`` over fresh orders is also the random-order ELBO. With several blocks a fresh order
crosses them, which the sampler never does; under ``low_confidence`` decoding the order depends
on the model and neither mode is exact.

Cost: one state per step; ``steps_per_forward`` states are scored per forward
(N * steps_per_forward rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from trafl.core.batch import Estimate, Rollout
from trafl.likelihood.base import (
    ESTIMATORS,
    Draw,
    EstimatorConfig,
    Positions,
    check_choice,
    check_positions,
    masked_sum,
    random_ranks,
    score_masks,
    valid_positions,
)
from trafl.models.base import DiffusionLM


@dataclass
class TrajectoryConfig(EstimatorConfig):
    name: str = "trajectory"
    positions: Positions = "all"
    steps_per_forward: int = 16  # states scored per denoiser call (rows N * steps_per_forward)
    order: Literal["recorded", "fresh"] = "recorded"  # the recorded path, or a new order a draw

    def __post_init__(self) -> None:
        check_positions(self.positions)
        check_choice("order", self.order, ("recorded", "fresh"))
        if self.steps_per_forward < 1:
            raise ValueError(f"steps_per_forward must be >= 1, got {self.steps_per_forward}")


@ESTIMATORS.register("trajectory")
class TrajectoryLogp:
    """Exact replay of the recorded denoising path: sum_i log p(y_i | state at its step)."""

    Config = TrajectoryConfig

    def __init__(self, config: TrajectoryConfig | None = None) -> None:
        self.config = config if config is not None else TrajectoryConfig()

    def draw(self, batch: Rollout, generator: torch.Generator) -> Draw:
        """{} for the recorded path; {"reveal": (N, L) long} for a fresh order: each row's
        recorded reveal steps, sorted, handed out to its positions by a uniform random rank."""
        if self.config.order == "recorded":
            return {}  # deterministic
        recorded = batch.trajectory.reveal_step  # (N, L)
        everywhere = torch.ones_like(recorded, dtype=torch.bool)  # (N, L)
        ranks = random_ranks(everywhere, 1, generator)[:, 0]  # (N, L) a permutation a row
        return {"reveal": recorded.sort(dim=1).values.gather(1, ranks)}  # (N, L)

    def estimate(self, model: DiffusionLM, batch: Rollout, draw: Draw) -> Estimate:
        reveal = draw.get("reveal", batch.trajectory.reveal_step)  # (N, L)
        if bool((reveal < 0).any()):
            raise ValueError(
                "trajectory.reveal_step has unrevealed positions (< 0): a rollout sampled with "
                "per-sequence lengths (sample(..., lengths=...)) is for generation and "
                "evaluation; the training estimators need every row at the full length"
            )
        num_steps = int(reveal.max()) + 1
        token_logp = torch.zeros(reveal.shape, dtype=torch.float32, device=reveal.device)
        chunk = self.config.steps_per_forward
        for start in range(0, num_steps, chunk):
            steps = torch.arange(start, min(start + chunk, num_steps), device=reveal.device)
            hidden = reveal[:, None, :] >= steps[None, :, None]  # (N, S, L) state before step
            logp = score_masks(model, batch, hidden)  # (N, S, L)
            at_step = reveal[:, None, :] == steps[None, :, None]  # (N, S, L)
            token_logp = token_logp + torch.where(at_step, logp, 0.0).sum(dim=1)  # (N, L)
        token_mask = valid_positions(batch, self.config.positions)  # (N, L)
        return Estimate(
            seq=masked_sum(token_logp, token_mask),  # (N,)
            token_logp=token_logp,
            token_mask=token_mask,
        )
