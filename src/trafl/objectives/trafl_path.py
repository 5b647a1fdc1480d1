"""Exact-path TraFL: trajectory balance on the replayed denoising trajectory (METHOD.md 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trafl.objectives.base import OBJECTIVES
from trafl.objectives.trafl import TraFL, TraFLConfig


@dataclass
class TraFLPathConfig(TraFLConfig):
    """TraFL's fields with two different defaults: ``name`` and ``score_units="sequence"``
    (s is a sum of log-probs, so beta in sequence units enters the residual unscaled)."""

    name: str = "trafl_path"
    score_units: Literal["per_token", "sequence"] = "sequence"


@OBJECTIVES.register("trafl_path")
class TraFLPath(TraFL):
    """TraFL on the exact trajectory log-probability: a variant trafl offers beside the paper's
    mask surrogate (METHOD.md section 3), the relative trajectory balance of GFlowNets
    (Venkatraman et al. 2024, arXiv 2405.20971).

    The sampler records the reveal order tau, so log P_theta(tau | x) = sum_steps log p_theta
    (tokens revealed at that step | state) is replayed exactly (estimator "trajectory")::

        delta = log Z_phi(x) + log P_theta(tau|x) - log P_ref(tau|x) - beta r~(x, y)
        loss  = mean_rows( w * delta^2 )

    Same code as :class:`TraFL`; only the defaults differ.
    """

    Config = TraFLPathConfig
    estimator_name = "trajectory"
