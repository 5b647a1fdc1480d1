"""A fixed pool of problems: train on N problems and evaluate on exactly those.

``task.pool=N`` (any task) takes the first N problems of the task's test split. Training draws
its prompts from them (without replacement within a step when ``num <= N``) and evaluation
sees them and only them, whatever split it asks for. This is the in-distribution test of the
method's claim: a policy trained towards pi* = pi_ref exp(b r) / Z on these prompts can be
compared with pi* on the same prompts (``trafl eval`` target section, docs/TARGET.md). It says
nothing about generalisation; for that, train without a pool and evaluate on the test split.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from trafl.core.errors import UserError
from trafl.tasks.base import TASKS, Problem, Task, TaskConfig


class FixedPool:
    """Wraps a task; every other attribute (rewards, scoring, solution keys) is the task's."""

    def __init__(self, task: Task, size: int) -> None:
        test = task.problems("test")
        if size > len(test):
            raise UserError(
                f"task.pool={size} but {task.name}'s test split has {len(test)} problems; "
                f"valid: 1..{len(test)}"
            )
        self.task = task
        self.pool = [copy.deepcopy(p) for p in test[:size]]

    def problems(self, split: str) -> list[Problem]:
        """The pool, for any split (a fresh copy each time)."""
        return copy.deepcopy(self.pool)

    def sample_train(self, num: int, rng: random.Random) -> list[Problem]:
        n = len(self.pool)
        picks = rng.sample(range(n), num) if num <= n else [rng.randrange(n) for _ in range(num)]
        return [copy.deepcopy(self.pool[i]) for i in picks]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.task, name)


def build_task(config: TaskConfig) -> Task:
    """The task ``config.name`` names, on its fixed pool when ``config.pool > 0``."""
    task = TASKS.get(config.name)(config)
    return FixedPool(task, config.pool) if config.pool else task
