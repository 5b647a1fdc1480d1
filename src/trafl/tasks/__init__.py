"""Tasks: one file per task (data + prompt + reward), registered by name in ``TASKS``."""

from trafl.registry import Registry
from trafl.tasks.base import Problem, Task

TASKS = Registry("task")

from trafl.tasks import countdown  # noqa: E402,F401  (registers "countdown")

__all__ = ["TASKS", "Problem", "Task"]
