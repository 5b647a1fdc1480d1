"""Masked-diffusion sampling with exact trajectory recording."""

from trafl.core.batch import Rollout, Trajectory
from trafl.sampling.batching import concat_rollouts, generate
from trafl.sampling.config import SamplerConfig
from trafl.sampling.lengths import at_length, reveal_schedule, row_plans
from trafl.sampling.sampler import Generators, completion_texts, left_pad, sample

__all__ = [
    "Generators",
    "Rollout",
    "SamplerConfig",
    "Trajectory",
    "at_length",
    "completion_texts",
    "concat_rollouts",
    "generate",
    "left_pad",
    "reveal_schedule",
    "row_plans",
    "sample",
]
