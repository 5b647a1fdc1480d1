"""Fixed pools of problems: a finite set that training draws from again and again.

``task.pool=N`` (any task) takes the first N problems of the task's test split. Training draws
its prompts from them (without replacement within a step when ``num <= N``) and evaluation
sees them and only them, whatever split it asks for. This is the in-distribution test of the
method's claim: a policy trained towards pi* = pi_ref exp(b r) / Z on these prompts can be
compared with pi* on the same prompts (``trafl eval`` target section, docs/TARGET.md). It says
nothing about generalisation; for that, train without a pool and evaluate on the test split.

``task.train_pool=N`` is the generalisation counterpart: training draws from N fixed TRAINING
problems (the first N distinct draws of the task's own training sampler at seed
``TRAIN_POOL_SEED``, the same for every run and seed), and evaluation sees the task's test
split as usual, none of which is in the pool. It is a finite training set that prompts recur
in, as in d1's GSM8K epochs, where methods that remember per prompt (replay of past correct
completions, ``rollout.replay_share``) can act, and the test split says what carries over.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from trafl.core.errors import UserError
from trafl.tasks.base import TASKS, Problem, Task, TaskConfig


def draw(pool: list[Problem], num: int, rng: random.Random) -> list[Problem]:
    """``num`` copies from ``pool``: without replacement when ``num <= len(pool)``, else with."""
    n = len(pool)
    picks = rng.sample(range(n), num) if num <= n else [rng.randrange(n) for _ in range(num)]
    return [copy.deepcopy(pool[i]) for i in picks]


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
        return draw(self.pool, num, rng)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.task, name)


TRAIN_POOL_SEED = 0  # our choice: one training pool per task config, shared by every run
_DRAWS_PER_PROBLEM = 20  # draws allowed per pool problem before the task is judged too small


class TrainPool:
    """Wraps a task: training draws from N fixed training problems; the rest is the task's."""

    def __init__(self, task: Task, size: int) -> None:
        rng = random.Random(TRAIN_POOL_SEED)
        pool: dict[str, Problem] = {}
        draws = 0
        while len(pool) < size and draws < _DRAWS_PER_PROBLEM * size:
            for problem in task.sample_train(size - len(pool), rng):
                pool.setdefault(json.dumps(problem, sort_keys=True, default=str), problem)
                draws += 1
        if len(pool) < size:
            raise UserError(
                f"task.train_pool={size} but {task.name}'s training sampler gave only "
                f"{len(pool)} distinct problems in {draws} draws; valid: 1..{len(pool)}"
            )
        self.task = task
        self.pool = list(pool.values())

    def sample_train(self, num: int, rng: random.Random) -> list[Problem]:
        return draw(self.pool, num, rng)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.task, name)


def build_task(config: TaskConfig) -> Task:
    """The task ``config.name`` names, on its fixed pool when ``config.pool > 0``, training on
    a fixed training pool when ``config.train_pool > 0``."""
    task = TASKS.get(config.name)(config)
    if config.pool:
        return FixedPool(task, config.pool)
    return TrainPool(task, config.train_pool) if config.train_pool else task
