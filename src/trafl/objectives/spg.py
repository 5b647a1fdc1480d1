"""SPG: sandwiched policy gradient (Wang et al. 2025, arXiv 2510.09541)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trafl.objectives.advantages import advantages
from trafl.objectives.base import (
    OBJECTIVES,
    TOKEN_REDUCTIONS,
    LossInputs,
    Objective,
    ObjectiveConfig,
    TokenReduction,
    check_choice,
    completion_lengths,
    prepare_token_mean,
    prepared_field,
    token_mean_weights,
)


@dataclass
class SPGConfig(ObjectiveConfig):
    """Defaults from SPG's code (github.com/facebookresearch/SPG: spg/spg_trainer.py and
    slurm_scripts/spg_mix/*.sbatch): ``logp_estimation mix``, ``mix_weight 0.5``,
    ``num_iterations 4`` (mu), ``beta 0`` (no KL), advantages ``r - mean_G r`` with no std.
    EUBO's b (``eubo_beta`` 1.5; 1.0 for Sudoku) and the block-wise masks (``num_t 2``) belong
    to the "blockwise" estimator.

    ``eubo_mix`` in [0, 1]: weight of the EUBO for A <= 0 (their ``mix_weight``; 1 is their
    "eubo" mode, 0 their "elbo" mode).
    ``token_reduction`` (:func:`~trafl.objectives.base.token_mean_weights`, the knob diffu_grpo
    has too; it was called ``length_norm``): the loss is a token-mean of A_i l_i, and this picks
    its denominator sum_i |o_i|. ``group`` (SPG as run): their loss divides by the lengths of
    the device micro-batch, which their configs make one group (per_device_train_batch_size =
    num_generations = 6), and the step averages the groups. ``batch``: one sum over the whole
    batch (needs ``lengths`` in prepare()). ``sequence``: each row weighted equally.
    """

    name: str = "spg"
    eubo_mix: float = 0.5
    token_reduction: TokenReduction = "group"

    def __post_init__(self) -> None:
        check_choice("token_reduction", self.token_reduction, TOKEN_REDUCTIONS)
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
        return out | prepare_token_mean(self.config.token_reduction, lengths)

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
        lengths = completion_lengths(inputs)  # (n,) |o_i|
        # l_i is a mean over the |o_i| tokens, so A_i l_i |o_i| is row i's token sum
        weights = token_mean_weights(inputs, lengths, self.config.token_reduction, "spg")
        loss = -(adv * bound * lengths * weights).mean()
        metrics = {
            "loss": loss.item(),
            "elbo": elbo.detach().mean().item(),
            "positive_frac": (adv > 0).float().mean().item(),
            "adv_abs": adv.abs().mean().item(),
        }
        if pol.upper is not None:
            metrics["eubo"] = pol.upper.detach().float().mean().item()
        return loss, metrics
