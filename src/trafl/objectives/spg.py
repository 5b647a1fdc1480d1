"""SPG: sandwiched policy gradient (Wang et al. 2025, arXiv 2510.09541)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from trafl.objectives.advantages import advantages
from trafl.objectives.base import (
    OBJECTIVES,
    LossInputs,
    Objective,
    check_choice,
    completion_lengths,
    prepared_field,
)

LENGTH_NORMS = ("group", "batch")


@dataclass
class SPGConfig:
    """Defaults from SPG's code (github.com/facebookresearch/SPG: spg/spg_trainer.py and
    slurm_scripts/spg_mix/*.sbatch): ``logp_estimation mix``, ``mix_weight 0.5``,
    ``num_iterations 4`` (mu), ``beta 0`` (no KL), advantages ``r - mean_G r`` with no std.
    EUBO's b (``eubo_beta`` 1.5; 1.0 for Sudoku) and the block-wise masks (``num_t 2``) belong
    to the "blockwise" estimator.

    ``eubo_mix`` in [0, 1]: weight of the EUBO for A <= 0 (their ``mix_weight``; 1 is their
    "eubo" mode, 0 their "elbo" mode).
    ``length_norm``: the denominator sum_i |o_i|. ``group`` (SPG as run): their loss divides
    by the lengths of the device micro-batch, which their configs make one group
    (per_device_train_batch_size = num_generations = 6), and the step averages the groups.
    ``batch``: one sum over the whole batch (needs ``lengths`` in prepare()).
    """

    name: str = "spg"
    eubo_mix: float = 0.5
    length_norm: Literal["group", "batch"] = "group"

    def __post_init__(self) -> None:
        check_choice("length_norm", self.length_norm, LENGTH_NORMS)
        if not 0 <= self.eubo_mix <= 1:
            raise ValueError(f"eubo_mix must be in [0, 1], got {self.eubo_mix}")


@OBJECTIVES.register("spg")
class SPG(Objective):
    """SPG (Wang et al. 2025): policy gradient on a lower bound for rewarded samples and an
    upper/lower mixture for the rest::

        A_i  = r_i - mean_G(r)
        l_i  = ELBO_i                                          if A_i > 0
             = m * EUBO_i + (1 - m) * ELBO_i                   otherwise (m = eubo_mix)
        loss = -sum_i A_i * l_i * |o_i| / sum_i |o_i|

    ELBO_i = ``policy.seq``, EUBO_i = ``policy.upper`` (in SPG's code both are per-token means
    over the masked completion tokens of block-wise masks, and the EUBO is
    (1/b) mean_k log((1/m) sum_j 1[k in M_j] p^b / t_j)); |o_i| = completion length.
    No ratio, clipping or KL.
    """

    Config = SPGConfig
    estimator_name = "blockwise"
    default_inner_updates = 4
    group_relative = True

    def __init__(self, config: SPGConfig, hidden_size: int) -> None:
        super().__init__(config, hidden_size)
        self.config: SPGConfig = config

    def prepare(
        self,
        rewards: torch.Tensor,
        group: torch.Tensor,
        group_size: int,
        lengths: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        out = super().prepare(rewards, group, group_size, lengths)
        out["advantages"] = advantages(rewards, group_size, "mean")  # (N,)
        if self.config.length_norm == "batch":
            if lengths is None:
                raise ValueError("length_norm='batch' needs prepare(..., lengths=...)")
            total = lengths.float().sum().clamp(min=1.0)
            # mean over rows of N |o_i| / sum|o| = sum_i |o_i| / sum|o|
            out["length_weight"] = len(lengths) * lengths.float() / total  # (N,)
        return out

    def length_weights(self, inputs: LossInputs) -> torch.Tensor:
        """(n,) w_i with loss = mean_rows(-A_i l_i w_i) (see SPGConfig.length_norm)."""
        if self.config.length_norm == "batch":
            return prepared_field(inputs, "length_weight", "spg")
        g = inputs.group_size
        lengths = completion_lengths(inputs)  # (n,)
        per_group = lengths.view(-1, g).sum(1, keepdim=True).clamp(min=1.0)  # (b, 1)
        return g * lengths / per_group.expand(-1, g).reshape(-1)  # (n,)

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        self.check_inputs(inputs)
        pol, mix = inputs.policy, self.config.eubo_mix
        adv = prepared_field(inputs, "advantages", "spg")  # (n,)
        elbo = pol.seq.float()  # (n,)
        if mix > 0:
            if pol.upper is None:
                raise ValueError("spg with eubo_mix > 0 needs policy.upper (estimator 'blockwise')")
            negative = mix * pol.upper.float() + (1 - mix) * elbo  # (n,)
        else:
            negative = elbo
        bound = torch.where(adv > 0, elbo, negative)  # (n,)
        loss = -(adv * bound * self.length_weights(inputs)).mean()
        metrics = {
            "loss": loss.item(),
            "elbo": elbo.detach().mean().item(),
            "positive_frac": (adv > 0).float().mean().item(),
            "adv_abs": adv.abs().mean().item(),
        }
        if pol.upper is not None:
            metrics["eubo"] = pol.upper.detach().float().mean().item()
        return loss, metrics
