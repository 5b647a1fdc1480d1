"""Masked-diffusion sampling with exact trajectory recording."""

from trafl.sampling.batching import concat_rollouts, generate
from trafl.sampling.lengths import at_length, reveal_schedule, row_plans
from trafl.sampling.sampler import (
    Generators,
    Rollout,
    SamplerConfig,
    Trajectory,
    completion_texts,
    left_pad,
    sample,
)

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
