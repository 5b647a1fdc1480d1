"""ESPO: ELBO-based sequence-level policy optimisation (Ou et al. 2025, arXiv 2512.03759)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from trafl.objectives.advantages import advantages
from trafl.objectives.base import (
    OBJECTIVES,
    LossInputs,
    Objective,
    ObjectiveConfig,
    check_choice,
    prepared_field,
)


@dataclass
class ESPOConfig(ObjectiveConfig):
    """Defaults from ESPO's code (github.com/ML-GSAI/ESPO: espo/espo_trainer.py,
    recipes/train.yaml, recipes/run_*_llada.sh): ``epsilon: 0.2`` (TRL sets epsilon_high =
    epsilon when unset), ``beta: 0.01`` (train.yaml; the task scripts use 1e-3 GSM8K, 3e-3
    Countdown, 1e-2 Sudoku), ``scale_rewards: false``, a leave-one-out baseline
    (``leave_one_out = True`` in the trainer), ``num_iterations 8`` (every task script; mu),
    ``num_mc 2`` with coupled masks (the "elbo" estimator's business).
    """

    name: str = "espo"
    clip_eps: float = 0.2
    clip_eps_high: float | None = None  # None: same as clip_eps
    beta_kl: float = 0.01
    baseline: Literal["leave_one_out", "mean"] = "leave_one_out"
    scale_rewards: bool = False

    def __post_init__(self) -> None:
        check_choice("baseline", self.baseline, ("leave_one_out", "mean"))
        high = self.clip_eps if self.clip_eps_high is None else self.clip_eps_high
        if not (0 <= self.clip_eps < 1 and high >= 0):
            raise ValueError(f"need 0 <= clip_eps < 1 and clip_eps_high >= 0, got {self}")
        if self.beta_kl < 0:
            raise ValueError(f"beta_kl must be >= 0, got {self.beta_kl}")


@OBJECTIVES.register("espo")
class ESPO(Objective):
    """ESPO (Ou et al. 2025): the whole sequence is one action, its likelihood the ELBO::

        rho_i = exp((ELBO_theta(y_i) - ELBO_old(y_i)) / L)
        A_i   = r_i - mean_{j != i} r_j
        loss  = mean_i [ -min(rho_i A_i, clip(rho_i, 1 - eps, 1 + eps_high) A_i)
                         + beta_kl * (ELBO_theta(y_i) - ELBO_ref(y_i))^2 / (2 L) ]

    ELBO = ``seq`` of the "elbo" estimator (a sum over the L completion positions, in nats),
    L = the generation length (padding included, as in their ``logits_to_keep``). The KL term
    is their k2 estimator averaged per token: sum_i k2_i / (n L). Masks are shared by current,
    old and reference.
    """

    Config = ESPOConfig
    needs_reference = True
    needs_old = True
    estimator_name = "elbo"
    default_inner_updates = 8
    group_relative = True

    def __init__(self, config: ESPOConfig, hidden_size: int) -> None:
        super().__init__(config, hidden_size)
        self.config: ESPOConfig = config
        self.needs_reference = config.beta_kl > 0

    def prepare(
        self,
        rewards: torch.Tensor,
        group: torch.Tensor,
        group_size: int,
        lengths: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        out = super().prepare(rewards, group, group_size, lengths)
        cfg = self.config
        out["advantages"] = advantages(rewards, group_size, cfg.baseline, cfg.scale_rewards)
        return out

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        self.check_inputs(inputs)
        cfg, pol, length = self.config, inputs.policy, float(inputs.gen_length)
        elbo = pol.seq.float()  # (n,)
        old_elbo = elbo.detach() if inputs.old is None else inputs.old.seq.float()  # (n,)
        adv = prepared_field(inputs, "advantages", "espo")  # (n,)
        high = cfg.clip_eps if cfg.clip_eps_high is None else cfg.clip_eps_high
        ratio = torch.exp((elbo - old_elbo) / length)  # (n,)
        clipped = ratio.clamp(1 - cfg.clip_eps, 1 + high)  # (n,)
        per_row = -torch.min(ratio * adv, clipped * adv)  # (n,)
        kl = torch.zeros_like(elbo)
        if cfg.beta_kl > 0:
            assert inputs.ref is not None  # check_inputs
            kl = (elbo - inputs.ref.seq.float()).square() / (2 * length)  # (n,) k2 per token
            per_row = per_row + cfg.beta_kl * kl
        loss = per_row.mean()
        region = ((ratio < 1 - cfg.clip_eps) & (adv < 0)) | ((ratio > 1 + high) & (adv > 0))
        metrics = {
            "loss": loss.item(),
            "kl": kl.detach().mean().item(),
            "clip_frac": region.float().mean().item(),
            "ratio": ratio.detach().mean().item(),
            "elbo_per_token": (elbo.detach() / length).mean().item(),
        }
        return loss, metrics
