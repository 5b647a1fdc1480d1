"""``one_step``: d1's one-step per-token log-probabilities (diffu-GRPO, Zhao et al. 2025).

d1 ("d1: Scaling Reasoning in Diffusion Large Language Models via Reinforcement Learning")
estimates the per-token log-likelihood with a single denoiser call on a fully masked
completion and a randomly perturbed prompt:

    x~  = x with each prompt token independently replaced by [MASK] with probability p,
    token_logp[i] = log p_theta(y_i | x~, all of y masked),   i = 1..L,

p = ``prompt_mask_prob`` (0.15, METHOD.md's value for d1). The prompt mask is the only randomness; d1
draws a fresh one per inner iteration (a seed per iteration) and shares it between the
current, old and reference models. Per-token objectives read ``token_logp`` over
``token_mask``; ``seq`` is the sum over ``token_mask`` (wd1's sequence score, Tang et al. 2025).

As in d1's ``forward_process`` (diffu-GRPO's trainer, also SPG's ``forward_type="all"``): all
L completion positions are masked in the input (post-EOS ones too), and the loss counts the
tokens of TRL's completion mask, up to and including the first EOS, hence the default
``positions="until_eos"``. One deviation: d1 marks the first P positions as "prompt", so it can
mask left-padding too; here padding is never masked (it is outside attention anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trafl.core.batch import Estimate, Rollout
from trafl.likelihood.base import (
    ESTIMATORS,
    Draw,
    EstimatorConfig,
    Positions,
    check_positions,
    check_probability,
    masked_sum,
    score_masks,
    valid_positions,
)
from trafl.models.base import DiffusionLM


@dataclass
class OneStepConfig(EstimatorConfig):
    name: str = "one_step"
    prompt_mask_prob: float = 0.15  # d1's p_mask_prompt
    positions: Positions = "until_eos"  # d1 counts the tokens up to and including the first EOS

    def __post_init__(self) -> None:
        check_probability("prompt_mask_prob", self.prompt_mask_prob)
        check_positions(self.positions)


@ESTIMATORS.register("one_step")
class OneStep:
    """d1's one-step estimator: every completion token masked, prompt tokens masked w.p. p."""

    Config = OneStepConfig

    def __init__(self, config: OneStepConfig | None = None) -> None:
        self.config = config if config is not None else OneStepConfig()

    def draw(self, batch: Rollout, generator: torch.Generator) -> Draw:
        """{"prompt_masks": (N, P) bool}: which prompt tokens are hidden (never padding)."""
        prompt_mask = batch.prompt_mask.bool()  # (N, P)
        u = torch.rand(prompt_mask.shape, generator=generator, device=prompt_mask.device)
        return {"prompt_masks": prompt_mask & (u < self.config.prompt_mask_prob)}  # (N, P)

    def estimate(self, model: DiffusionLM, batch: Rollout, draw: Draw) -> Estimate:
        hidden = torch.ones_like(batch.completion_mask, dtype=torch.bool)  # (N, L) all masked
        logp = score_masks(model, batch, hidden[:, None], draw["prompt_masks"][:, None])
        token_logp = logp[:, 0]  # (N, L)
        token_mask = valid_positions(batch, self.config.positions)  # (N, L)
        return Estimate(
            seq=masked_sum(token_logp, token_mask),  # (N,)
            token_logp=token_logp,
            token_mask=token_mask,
        )
