"""diffu-GRPO, the RL recipe of d1 (Zhao et al. 2025, arXiv 2504.12216)."""

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
    prepare_token_mean,
    prepared_field,
    token_mask_of,
    token_mean_weights,
)


@dataclass
class DiffuGRPOConfig(ObjectiveConfig):
    """Defaults from d1's code and configs (github.com/dllm-reasoning/d1, diffu-grpo/):
    ``epsilon: 0.5``, ``beta: 0.04``, ``num_iterations: 12`` (trafl's mu, see
    ``default_inner_updates``), advantages ``r - mean_G r`` with no std division.

    ``token_reduction`` (:func:`~trafl.objectives.base.token_mean_weights`): which token-mean
    of the per-token losses. ``group`` (d1 as run): d1's loss is ``(per_token_loss * mask).sum()
    / mask.sum()`` over a device micro-batch, which its configs make ONE group; the step averages
    those group means. ``batch``: one token-mean over the whole batch (TRL's later default; needs
    ``lengths`` in prepare()). ``sequence``: per-sequence token-mean, then the mean over rows
    (TRL <= 0.15).
    """

    name: str = "diffu_grpo"
    clip_eps: float = 0.5
    beta_kl: float = 0.04
    scale_rewards: bool = False
    token_reduction: TokenReduction = "group"

    def __post_init__(self) -> None:
        check_choice("token_reduction", self.token_reduction, TOKEN_REDUCTIONS)
        if not 0 < self.clip_eps < 1:
            raise ValueError(f"clip_eps must be in (0, 1), got {self.clip_eps}")
        if self.beta_kl < 0:
            raise ValueError(f"beta_kl must be >= 0, got {self.beta_kl}")


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || ref) per token: exp(d) - d - 1, d = ref - logp."""
    d = ref_logp - logp
    return d.exp() - d - 1


@OBJECTIVES.register("diffu_grpo")
class DiffuGRPO(Objective):
    """diffu-GRPO (d1, Zhao et al. 2025): token-level PPO-clip with a k3 KL to the reference.

    On d1's one-step estimates log p(y_j | x~) (completion fully masked, prompt tokens masked
    with p = 0.15, one mask seed per inner iteration shared by policy, old and reference)::

        rho_j  = exp(logp_j - old_logp_j)          A = r - mean_G(r)
        l_j    = -min(rho_j A, clip(rho_j, 1 - eps, 1 + eps) A) + beta_kl * k3_j
        loss   = token-mean of l_j over completion tokens (see ``token_reduction``)

    Without ``old`` (one update per batch) the ratio is exp(logp - logp.detach()) = 1, whose
    gradient is the plain policy gradient, as in d1.
    """

    Config = DiffuGRPOConfig
    needs_reference = True
    needs_old = True
    estimator_name = "one_step"
    default_inner_updates = 12
    group_relative = True

    def __init__(self, config: DiffuGRPOConfig, hidden_size: int) -> None:
        super().__init__(config, hidden_size)
        self.config: DiffuGRPOConfig = config
        self.needs_reference = config.beta_kl > 0

    def prepare(
        self,
        rewards: torch.Tensor,
        group: torch.Tensor,
        group_size: int,
        lengths: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        out = super().prepare(rewards, group, group_size, lengths)
        out["advantages"] = advantages(rewards, group_size, "mean", self.config.scale_rewards)
        return out | prepare_token_mean(self.config.token_reduction, lengths)

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        self.check_inputs(inputs)
        cfg, pol = self.config, inputs.policy
        if pol.token_logp is None:
            raise ValueError("diffu_grpo needs per-token log-probs (estimator 'one_step')")
        logp = pol.token_logp.float()  # (n, L)
        mask = token_mask_of(pol, logp.shape[1])  # (n, L)
        old = inputs.old
        old_logp = logp.detach() if old is None or old.token_logp is None else old.token_logp
        adv = prepared_field(inputs, "advantages", "diffu_grpo").unsqueeze(1)  # (n, 1)
        ratio = torch.exp(logp - old_logp.float())  # (n, L)
        clipped = ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps)  # (n, L)
        per_token = -torch.min(ratio * adv, clipped * adv)  # (n, L)
        kl = torch.zeros_like(logp)
        if cfg.beta_kl > 0:
            assert inputs.ref is not None and inputs.ref.token_logp is not None
            kl = k3_kl(logp, inputs.ref.token_logp.float())  # (n, L)
            per_token = per_token + cfg.beta_kl * kl
        row_sum = (per_token * mask).sum(1)  # (n,)
        weights = token_mean_weights(inputs, mask.sum(1), cfg.token_reduction, "diffu_grpo")
        loss = (row_sum * weights).mean()  # the token-mean of per_token (see Config)
        num_tokens = mask.sum().clamp(min=1.0)
        region = ((ratio < 1 - cfg.clip_eps) & (adv < 0)) | ((ratio > 1 + cfg.clip_eps) & (adv > 0))
        metrics = {
            "loss": loss.item(),
            "kl": ((kl.detach() * mask).sum() / num_tokens).item(),
            "clip_frac": ((region.float() * mask).sum() / num_tokens).item(),
            "ratio": ((ratio.detach() * mask).sum() / num_tokens).item(),
            "adv_abs": adv.abs().mean().item(),
        }
        return loss, metrics
