"""Task-level sampling: prompts -> completions -> rewards, shared by sample, eval and train."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import torch
from rich.progress import Progress

from trafl.models.base import DiffusionLM
from trafl.sampling import Rollout, SamplerConfig, generate
from trafl.tasks.base import Problem, Task

log = logging.getLogger(__name__)


@dataclass
class ScoredRollout:
    problems: list[Problem]  # (N,) one per row: each problem repeated num_samples times
    group: torch.Tensor  # (N,) long, index of the row's problem in the prompt list
    rollout: Rollout
    texts: list[str]  # (N,) decoded completions, cut at EOS
    rewards: torch.Tensor  # (N,) float32
    num_reward_errors: int


def safe_rewards(task: Task, problems: list[Problem], texts: list[str]) -> tuple[list[float], int]:
    """Score each completion; a reward function that raises scores that sample 0 (counted)."""
    rewards, errors = [], 0
    for problem, text in zip(problems, texts, strict=True):
        try:
            rewards.append(float(task.reward(problem, text)))
        except Exception as err:  # noqa: BLE001 - one bad sample must not stop a run
            errors += 1
            log.warning("reward raised on %r: %r (scored 0)", text[:80], err)
            rewards.append(0.0)
    return rewards, errors


def rollout_task(
    model: DiffusionLM,
    task: Task,
    problems: list[Problem],
    num_samples: int,
    sampler: SamplerConfig,
    generator: torch.Generator | None = None,
    progress: Progress | None = None,
    description: str = "sampling",
) -> ScoredRollout:
    """Sample ``num_samples`` completions per problem (rows grouped: problem-major) and score them."""
    rows = [p for p in problems for _ in range(num_samples)]
    prompts = [task.prompt(p) for p in rows]
    rollout, texts = generate(model, prompts, sampler, generator, progress, description)
    rewards, errors = safe_rewards(task, rows, texts)
    group = torch.arange(len(problems)).repeat_interleave(num_samples)
    return ScoredRollout(rows, group, rollout, texts, torch.tensor(rewards), errors)


def subset(problems: list[Problem], num: int | None, seed: int | None = None) -> list[Problem]:
    """The first ``num`` problems (or a seeded random subset when ``seed`` is given)."""
    if num is None or num >= len(problems):
        return list(problems)
    if seed is None:
        return list(problems[:num])
    return random.Random(seed).sample(list(problems), num)


def greedy_accuracy(model: DiffusionLM, task: Task, num: int, sampler: SamplerConfig) -> float:
    """Mean reward of one sample per problem on the first ``num`` test problems (the sampler
    is normally at temperature 0); the periodic check of pretraining and training."""
    scored = rollout_task(model, task, subset(task.problems("test"), num), 1, sampler)
    return float(scored.rewards.mean())
