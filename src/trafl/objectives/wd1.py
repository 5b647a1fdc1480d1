"""wd1: weighted policy optimisation for diffusion LMs (Tang et al. 2025, arXiv 2507.08838)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trafl.objectives.advantages import advantages, group_softmax
from trafl.objectives.base import (
    OBJECTIVES,
    LossInputs,
    Objective,
    ObjectiveConfig,
    prepared_field,
)


@dataclass
class WD1Config(ObjectiveConfig):
    """Defaults from wd1's code (github.com/xiaohangt/wd1: wd1/trainers/rev_grpo_trainer.py,
    run/wll_*.sh, wd1/train.yaml): advantages ``r - mean_G r`` without std division,
    ``softmax(A)`` at temperature 1 over one group (their device micro-batch is one group,
    per_device_train_batch_size = num_generations = 6), the loss summed over the group,
    ``num_iterations: 12`` (mu) with no importance ratio.
    """

    name: str = "wd1"
    temperature: float = 1.0
    scale_rewards: bool = False

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


@OBJECTIVES.register("wd1")
class WD1(Objective):
    """wd1 (Tang et al. 2025): a weighted likelihood with positive and negative weights::

        A_i  = r_i - mean_G(r)
        loss = sum_{i in group} ( -softmax_G(A / T)_i + softmax_G(-A / T)_i ) * S_i

    averaged over groups. S_i = sum over completion tokens of d1's one-step log-probs (from
    ``token_logp`` and ``token_mask`` when present, else the estimate's ``seq``). No ratio,
    no old policy, no reference.
    """

    Config = WD1Config
    estimator_name = "one_step"
    default_inner_updates = 12
    group_relative = True

    def __init__(self, config: WD1Config, hidden_size: int) -> None:
        super().__init__(config, hidden_size)
        self.config: WD1Config = config

    def prepare(
        self,
        rewards: torch.Tensor,
        group: torch.Tensor,
        group_size: int,
        lengths: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        out = super().prepare(rewards, group, group_size, lengths)
        adv = advantages(rewards, group_size, "mean", self.config.scale_rewards)  # (N,)
        t = self.config.temperature
        pos = group_softmax(adv, group_size, t)  # (N,)
        neg = group_softmax(-adv, group_size, t)  # (N,)
        out["advantages"] = adv
        out["weight"] = neg - pos  # (N,) the coefficient of S_i in the group sum
        return out

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        self.check_inputs(inputs)
        pol = inputs.policy
        if pol.token_logp is not None:
            mask = pol.token_mask.float() if pol.token_mask is not None else 1.0
            score = (pol.token_logp.float() * mask).sum(1)  # (n,) S_i
        else:
            score = pol.seq.float()  # (n,)
        weight = prepared_field(inputs, "weight", "wd1")  # (n,)
        # mean over rows of G * w_i * S_i = mean over groups of the within-group sum
        loss = (inputs.group_size * weight * score).mean()
        metrics = {
            "loss": loss.item(),
            "seq_logp": score.detach().mean().item(),
            "weight_abs": weight.abs().mean().item(),
        }
        return loss, metrics
