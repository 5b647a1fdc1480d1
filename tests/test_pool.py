"""task.pool=N: training and evaluation see the same N test problems; task.train_pool=N:
training recurs on N fixed training problems and evaluation sees the test split."""

from __future__ import annotations

import random

import pytest

from trafl.core.config import from_dict
from trafl.core.errors import UserError
from trafl.tasks import TASKS, FixedPool, ScoringTask, TrainPool, build_task
from trafl.tasks.pool import TRAIN_POOL_SEED


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


def train_pool(size: int) -> TrainPool:
    task = build_task(from_dict(TASKS.get("countdown").Config, {"train_pool": size}))
    assert isinstance(task, TrainPool)
    return task


def test_a_train_pool_is_the_first_distinct_training_draws_and_evaluation_is_the_test_split():
    plain = build_task(from_dict(TASKS.get("countdown").Config, {}))
    rng, expected = random.Random(TRAIN_POOL_SEED), []
    while len(expected) < 8:  # reference: the training sampler's stream, one draw at a time
        (problem,) = plain.sample_train(1, rng)
        if key(problem) not in expected:
            expected.append(key(problem))
    task = train_pool(8)
    assert [key(p) for p in task.pool] == expected
    assert [key(p) for p in train_pool(8).pool] == expected  # the same pool for every run
    test = [key(p) for p in plain.problems("test")]
    assert [key(p) for p in task.problems("test")] == test  # evaluation: the task's own split
    assert not set(expected) & set(test)  # never a test problem
    rng = random.Random(1)
    assert sorted(key(p) for p in task.sample_train(8, rng)) == sorted(expected)
    drawn = {key(p) for _ in range(50) for p in task.sample_train(3, rng)}
    assert drawn == set(expected)  # training recurs on the pool and nothing else


def test_a_train_pool_larger_than_the_training_set_is_one_line(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(f'{{"prompt": "q{i}", "solution": "{i}"}}\n' for i in range(5)))
    reward = [f"{__name__}:length"]
    config = {"path": str(data), "test_fraction": 0.2, "rewards": reward}  # 4 train rows, 1 test
    small = build_task(from_dict(TASKS.get("dataset").Config, {**config, "train_pool": 4}))
    assert sorted(p["prompt"] for p in small.pool) == sorted(
        p["prompt"] for p in small.task._splits["train"]
    )
    with pytest.raises(UserError, match=r"task.train_pool=5 .* only 4 distinct .* valid: 1..4"):
        build_task(from_dict(TASKS.get("dataset").Config, {**config, "train_pool": 5}))
    with pytest.raises(ValueError, match="pick one"):
        from_dict(TASKS.get("countdown").Config, {"pool": 4, "train_pool": 4})
    with pytest.raises(ValueError, match="train_pool must be >= 0"):
        from_dict(TASKS.get("countdown").Config, {"train_pool": -1})


def length(completions: list[str], **kwargs) -> list[float]:
    """A TRL-style reward for the dataset task above (never called: only named)."""
    return [float(len(c)) for c in completions]
