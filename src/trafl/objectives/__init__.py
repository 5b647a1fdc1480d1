"""RL objectives, one file each, registered by name in ``OBJECTIVES``.

An objective turns tensors (likelihood estimates of the policy, old policy and reference,
rewards, groups, prompt representations) into ``(loss, metrics)``; see :mod:`.base` for the
contract with the trainer (``prepare`` on the full batch, micro-batch invariance).

    objective = build_objective(TraFLConfig(beta=8.0), hidden_size=model_hidden)

Importing a module registers its objective, so this file imports every one of them.
"""

from trafl.objectives.base import OBJECTIVES, LossInputs, Objective, ObjectiveConfig
from trafl.objectives.diffu_grpo import DiffuGRPO, DiffuGRPOConfig
from trafl.objectives.espo import ESPO, ESPOConfig
from trafl.objectives.spg import SPG, SPGConfig
from trafl.objectives.trafl import TraFL, TraFLConfig, sequence_tilt
from trafl.objectives.trafl_path import TraFLPath, TraFLPathConfig
from trafl.objectives.wd1 import WD1, WD1Config


def build_objective(config: ObjectiveConfig, hidden_size: int) -> Objective:
    """The registered objective named by ``config.name``, built from ``config``."""
    return OBJECTIVES.get(config.name)(config, hidden_size)


__all__ = [
    "ESPO",
    "OBJECTIVES",
    "SPG",
    "WD1",
    "DiffuGRPO",
    "DiffuGRPOConfig",
    "ESPOConfig",
    "LossInputs",
    "Objective",
    "ObjectiveConfig",
    "SPGConfig",
    "TraFL",
    "TraFLConfig",
    "TraFLPath",
    "TraFLPathConfig",
    "WD1Config",
    "build_objective",
    "sequence_tilt",
]
