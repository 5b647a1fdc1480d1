"""``mask_mean``: TraFL's sequence surrogate, the length-normalised random-order ELBO.

TraFL (arXiv 2605.13935; METHOD.md section 3) scores a completion by K masks drawn over its
positions; for each mask M_k the MEAN log-probability of the masked tokens given the rest,

    s_k(y | x) = (1 / |M_k|) * sum_{i in M_k} log p_theta(y_i | y_{~M_k}, x),
    s(y | x)   = (1 / K) * sum_k s_k(y | x),

with |M_k| = l uniform on {1..n} and M_k a uniform subset of that size (coupled in pairs, see
:mod:`trafl.likelihood.masks`). Its expectation is the random-order ELBO divided by the length,

    E[s] = (1/n) * sum_{l=1}^{n} E_{|M|=l}[(1/l) sum_{i in M} log p]  =  ELBO(y | x) / n,

since ELBO = sum_l (1/l) E_{|M|=l}[sum_{i in M} log p] (LLaDA's count form of the 1/t weight).
n is L for ``positions="all"`` (TraFL's reading, like FlowRL's length normalisation) or the
row's length up to its first EOS for ``"until_eos"``; in the latter case the positions after
the EOS are hidden (masked) in every forward and never scored, as in SPG's code.

``per_draw`` keeps the K per-mask means s_k (N, K) for objectives that need independent halves
(TraFL's unbiased square); ``seq`` is their mean.
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
    masked_mean,
    score_masks,
    valid_positions,
)
from trafl.likelihood.masks import Coupling, check_masks_config, draw_masks
from trafl.models.base import DiffusionLM


@dataclass
class MaskMeanConfig(EstimatorConfig):
    name: str = "mask_mean"
    num_masks: int = 4  # K; TraFL's reported default: two complementary pairs
    coupling: Coupling = "complementary"
    positions: Positions = "all"
    full_mask: bool = True  # whether the full mask can be drawn (see trafl.likelihood.masks)

    def __post_init__(self) -> None:
        check_masks_config(self.num_masks, self.coupling)
        check_positions(self.positions)


def draw_completion_masks(
    batch: Rollout,
    num_masks: int,
    coupling: str,
    positions: str,
    full_mask: bool,
    generator: torch.Generator,
) -> Draw:
    """{"masks": (N, K, L) bool}: K coupled masks over each row's valid positions."""
    valid = valid_positions(batch, positions)  # (N, L)
    return {"masks": draw_masks(valid, num_masks, coupling, generator, full_mask)}


def masked_logp(model: DiffusionLM, batch: Rollout, draw: Draw, positions: str) -> torch.Tensor:
    """log p of every position under each drawn mask, (N, K, L) float32; positions outside
    the valid set are hidden too (they are never part of a mask)."""
    valid = valid_positions(batch, positions)  # (N, L)
    hidden = draw["masks"] | ~valid[:, None, :]  # (N, K, L)
    return score_masks(model, batch, hidden)  # (N, K, L)


@ESTIMATORS.register("mask_mean")
class MaskMean:
    """TraFL's K-mask mean log-prob surrogate; E[seq] = ELBO / n (see the module doc)."""

    Config = MaskMeanConfig

    def __init__(self, config: MaskMeanConfig | None = None) -> None:
        self.config = config if config is not None else MaskMeanConfig()

    def draw(self, batch: Rollout, generator: torch.Generator) -> Draw:
        c = self.config
        return draw_completion_masks(
            batch, c.num_masks, c.coupling, c.positions, c.full_mask, generator
        )

    def estimate(self, model: DiffusionLM, batch: Rollout, draw: Draw) -> Estimate:
        logp = masked_logp(model, batch, draw, self.config.positions)  # (N, K, L)
        per_draw = self.per_mask(logp, draw["masks"], batch)  # (N, K)
        length = valid_positions(batch, self.config.positions).sum(1).float()  # (N,) n per row
        return Estimate(seq=per_draw.mean(dim=1), per_draw=per_draw, length=length)

    def per_mask(self, logp: torch.Tensor, masks: torch.Tensor, batch: Rollout) -> torch.Tensor:
        """The value of each mask draw, (N, K): here the mean log-prob of its masked tokens."""
        return masked_mean(logp, masks)  # (N, K)
