"""Tasks: one file per task (data + prompt + reward), registered by name in ``TASKS``."""

from trafl.registry import Registry
from trafl.tasks.base import Problem, Task

TASKS = Registry("task")

# Each import registers its tasks.
from trafl.tasks import (  # noqa: E402,F401
    countdown,
    countdown_d1,
    gsm8k,
    math500,
    minerva_math,
    sudoku,
)

__all__ = ["TASKS", "Problem", "Task"]
