"""The task interface: problems, prompts, rewards, and (where possible) the full solution set.

A problem is a plain JSON-able dict (so it can be written to JSONL next to its completions);
what keys it has is the task's business. Rewards never raise on model output: malformed text
scores 0.0.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from trafl.core.config import ComponentConfig
from trafl.core.registry import Registry


@dataclass
class TaskConfig(ComponentConfig):
    """The base of every task's ``Config`` (a command's ``task`` holds the subclass that
    ``name`` picks).

    ``pool`` (0 = off): train on the first ``pool`` problems of the test split and evaluate on
    exactly those (:class:`trafl.tasks.pool.FixedPool`), the in-distribution test of whether a
    policy reached its target on the problems it was trained for (docs/TARGET.md).

    ``train_pool`` (0 = off): train on N fixed training problems (never test ones), evaluate on
    the test split as usual (:class:`trafl.tasks.pool.TrainPool`): a finite training set whose
    prompts recur, for the held-out test of methods that remember per prompt."""

    pool: int = 0
    train_pool: int = 0

    def __post_init__(self) -> None:
        if self.pool < 0:
            raise ValueError(f"pool must be >= 0 (0 = no fixed pool), got {self.pool}")
        if self.train_pool < 0:
            raise ValueError(f"train_pool must be >= 0 (0 = off), got {self.train_pool}")
        if self.pool and self.train_pool:
            raise ValueError(
                f"pool={self.pool} and train_pool={self.train_pool}: pick one (pool trains and "
                "evaluates on test problems; train_pool trains on training problems)"
            )


Problem = dict[str, Any]


@runtime_checkable
class Task(Protocol):
    """What trainers, samplers and evaluators need from a task."""

    name: str

    def problems(self, split: str) -> list[Problem]:
        """The fixed problems of a split (``"test"``; ``"train"`` where the task has a finite one)."""
        ...

    def sample_train(self, num: int, rng: random.Random) -> list[Problem]:
        """Draw training problems (never from the test split)."""
        ...

    def prompt(self, problem: Problem) -> str:
        """The text the model is conditioned on."""
        ...

    def demonstration(self, problem: Problem, rng: random.Random) -> str:
        """A supervised completion for pretraining (drawn at random where several exist)."""
        ...

    def reward(self, problem: Problem, completion: str) -> float:
        """Score a completion (already cut at EOS). Never raises on malformed text."""
        ...

    def solution_key(self, problem: Problem, completion: str) -> str | None:
        """Canonical key of a correct completion (equal keys = the same solution), else None."""
        ...

    def all_solutions(self, problem: Problem) -> set[str] | None:
        """Every solution's canonical key where the task can enumerate them, else None."""
        ...


@runtime_checkable
class ScoringTask(Protocol):
    """Optional batch scoring, for tasks whose checks are expensive or unsafe to run inline
    (math-verify in worker processes, generated code in a sandbox pool).

    Returns one dict per completion: ``"reward"`` is the weighted total that trainers use; any
    other key is a named component (``correct``, ``format``...) that trainers log as
    ``reward_<name>``. Must not raise on model output (a failed check scores 0)."""

    def score(self, problems: list[Problem], completions: list[str]) -> list[dict[str, float]]: ...


# each task module registers itself here; a class missing a Task method is refused when named
TASKS = Registry("task", protocol=Task)
