"""``elbo``: LLaDA's Monte Carlo ELBO of a completion, unnormalised (ESPO, GRPO-with-ELBO).

LLaDA's likelihood estimator (Nie et al. 2025, "Large Language Diffusion Models", Alg. 3)
draws a mask count l uniform on {1..n}, a uniform subset M of that size, and weights the
masked log-probs by n / l, the count form of the 1/t weight (t = l / n):

    e_k(y | x) = (n / l_k) * sum_{i in M_k} log p_theta(y_i | y_{~M_k}, x),
    seq        = (1 / K) * sum_k e_k,        E[seq] = ELBO(y | x) <= log p(y | x),

ELBO being the random-order ELBO (``trafl.likelihood.diffusion``): E over a uniform order of the sum of
the log-probs of each token when it is revealed. The masks and couplings are those of
``mask_mean`` (:mod:`trafl.likelihood.masks`); every member of a pair is marginally a LLaDA
draw, so the estimate is unbiased for every coupling (with ``full_mask=True``). n is L
(``positions="all"``, LLaDA's EOS-filled convention) or the row's length up to its first EOS
(``"until_eos"``, the later positions hidden and never scored). ESPO (Ou et al. 2025) uses
``seq / L`` as its sequence-level log-likelihood with masks shared by policy, old and reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trafl.core.batch import Rollout
from trafl.likelihood.base import (
    ESTIMATORS,
    EstimatorConfig,
    Positions,
    check_positions,
    masked_sum,
    valid_positions,
)
from trafl.likelihood.mask_mean import MaskMean
from trafl.likelihood.masks import Coupling, check_masks_config


@dataclass
class ElboConfig(EstimatorConfig):
    name: str = "elbo"
    num_masks: int = 2  # K
    coupling: Coupling = "complementary"
    positions: Positions = "all"
    full_mask: bool = True  # False drops the l = n term (biased; see trafl.likelihood.masks)

    def __post_init__(self) -> None:
        check_masks_config(self.num_masks, self.coupling)
        check_positions(self.positions)


@ESTIMATORS.register("elbo")
class Elbo(MaskMean):
    """LLaDA's (n / l) * sum-of-masked-log-probs ELBO estimator, averaged over K masks.

    The same masks and couplings as ``mask_mean``; only the value of each draw differs."""

    Config = ElboConfig

    def __init__(self, config: ElboConfig | None = None) -> None:
        self.config = config if config is not None else ElboConfig()

    def per_mask(self, logp: torch.Tensor, masks: torch.Tensor, batch: Rollout) -> torch.Tensor:
        num_valid = valid_positions(batch, self.config.positions).sum(dim=1)  # (N,)
        weight = num_valid[:, None] / masks.sum(dim=-1)  # (N, K) n / l
        return weight * masked_sum(logp, masks)  # (N, K)
