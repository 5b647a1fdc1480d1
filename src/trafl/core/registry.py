"""Named components: one plain dict per kind, plus `module:Name` import paths.

A component (task, model, sampler, estimator, objective) registers itself with one line::

    TASKS = Registry("task")

    @TASKS.register("countdown")
    class Countdown: ...

and a user's own class is named by import path: ``task.name=mylab.tasks:MyTask``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

from trafl.core.errors import UserError


class Registry:
    """A name -> object table. A name that is not there is a :class:`UserError` (a ValueError)
    that lists what is valid."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        def add(obj: Any) -> Any:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> Any:
        if name in self._items:
            return self._items[name]
        if ":" in name:  # a user's own component, by import path
            module_name, _, attr = name.partition(":")
            try:
                return getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as err:
                raise UserError(f"cannot import {self.kind} {name!r}: {err}") from err
        raise UserError(
            f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(self._items))} "
            f"(or an import path 'package.module:Name')"
        )

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
