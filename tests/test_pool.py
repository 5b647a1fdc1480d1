"""task.pool=N: training draws only the first N test problems, evaluation sees exactly them."""

from __future__ import annotations

import random

import pytest

from trafl.core.config import from_dict
from trafl.core.errors import UserError
from trafl.tasks import TASKS, FixedPool, ScoringTask, build_task


def countdown(pool: int) -> FixedPool:
    task = build_task(from_dict(TASKS.get("countdown").Config, {"pool": pool}))
    assert isinstance(task, FixedPool)
    return task


def key(problem: dict) -> tuple:
    return (tuple(problem["nums"]), problem["target"])


def test_training_and_evaluation_see_the_same_n_problems():
    plain = build_task(from_dict(TASKS.get("countdown").Config, {}))
    assert not isinstance(plain, FixedPool)
    first = [key(p) for p in plain.problems("test")[:6]]
    task = countdown(6)
    assert [key(p) for p in task.problems("test")] == first
    assert [key(p) for p in task.problems("train")] == first  # any split: the pool
    rng = random.Random(0)
    step = task.sample_train(6, rng)  # num <= N: without replacement within a step
    assert sorted(key(p) for p in step) == sorted(first)
    drawn = {key(p) for _ in range(50) for p in task.sample_train(4, rng)}
    assert drawn == set(first)  # every pool problem is drawn, and nothing else
    many = task.sample_train(20, rng)  # num > N: with replacement
    assert len(many) == 20 and {key(p) for p in many} <= set(first)


def test_the_pool_is_copied_and_delegates_to_the_task():
    task = countdown(3)
    task.problems("test")[0]["target"] = -1  # a caller mutating a problem
    assert task.problems("test")[0]["target"] != -1
    problem = task.problems("test")[0]
    assert task.name == "countdown" and task.prompt(problem) == task.task.prompt(problem)
    assert task.reward(problem, "no answer") == 0.0
    assert isinstance(task, ScoringTask) == isinstance(task.task, ScoringTask)


def test_a_pool_larger_than_the_test_split_is_one_line():
    size = len(build_task(from_dict(TASKS.get("countdown").Config, {})).problems("test"))
    with pytest.raises(UserError, match=rf"task.pool={size + 1} .* valid: 1..{size}"):
        countdown(size + 1)
    with pytest.raises(ValueError, match="pool must be >= 0"):
        from_dict(TASKS.get("countdown").Config, {"pool": -1})
