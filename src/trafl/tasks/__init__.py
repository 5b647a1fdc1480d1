"""Tasks: one file per task (data + prompt + reward), registered by name in ``TASKS``."""

# Each import registers its tasks.
from trafl.tasks import (  # noqa: E402,F401
    countdown,
    countdown_d1,
    dataset,
    gsm8k,
    humaneval,
    livecodebench,
    math500,
    mbpp,
    minerva_math,
    sudoku,
    tiny_code,
)
from trafl.tasks.base import TASKS, Problem, ScoringTask, Task, TaskConfig
from trafl.tasks.pool import FixedPool, TrainPool, build_task

__all__ = [
    "TASKS",
    "FixedPool",
    "Problem",
    "ScoringTask",
    "Task",
    "TaskConfig",
    "TrainPool",
    "build_task",
]
