"""Named components: one plain dict per kind, plus import paths and installed plugins.

A component (task, model, sampler, estimator, objective) registers itself with one line::

    TASKS = Registry("task", protocol=Task)

    @TASKS.register("countdown")
    class Countdown: ...

A name that is not registered is looked up, in this order, as

- an import path ``package.module:Name`` (or a file, ``path/to/mine.py:Name``):
  ``task.name=mylab.tasks:MyTask``;
- an entry point of the registry's group (``trafl.tasks``, ``trafl.objectives``,
  ``trafl.estimators``: ``trafl.`` + the kind + ``s``), so a pip-installed plugin gives its
  class a short name by declaring, in its own ``pyproject.toml``::

      [project.entry-points."trafl.tasks"]
      mytask = "mylab.tasks:MyTask"

A registry with a ``protocol`` checks every class it hands out for the protocol's methods, so a
class missing one fails with one line naming them, when the config is read, instead of an
AttributeError in the middle of a run.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trafl.core.errors import UserError

# members of typing.Protocol / object that no protocol asks its implementers for
_NOT_REQUIRED = frozenset(dir(object)) | {"_is_protocol", "_is_runtime_protocol"}


class Registry:
    """A name -> object table. A name that is not there is a :class:`UserError` (a ValueError)
    that lists what is valid.

    ``protocol``: a ``typing.Protocol`` (or base class) whose public methods every entry must
    have; ``group``: the entry-point group of plugins (default ``trafl.<kind>s``, spaces as
    underscores)."""

    def __init__(self, kind: str, protocol: type | None = None, group: str | None = None) -> None:
        self.kind = kind
        self.protocol = protocol
        self.group = group or f"trafl.{kind.replace(' ', '_')}s"
        self._items: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        def add(obj: Any) -> Any:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> Any:
        """The entry ``name``: registered, an import path, or an installed plugin."""
        if name in self._items:
            obj = self._items[name]
        elif ":" in name:  # a user's own component, by import path
            try:
                obj = import_object(name)
            except (ImportError, AttributeError, OSError, SyntaxError) as err:
                raise UserError(f"cannot import {self.kind} {name!r}: {err}") from err
        else:
            obj = self._plugin(name)
        self.check(obj, name)
        return obj

    def _plugin(self, name: str) -> Any:
        points = [ep for ep in _entry_points(self.group) if ep.name == name]
        if not points:
            plugins = sorted(p.name for p in _entry_points(self.group))
            valid = ", ".join(self.names() + [p for p in plugins if p not in self._items])
            raise UserError(
                f"unknown {self.kind} {name!r}; valid: {valid} (or an import path "
                f"'package.module:Name', or a plugin in the entry-point group {self.group!r})"
            )
        point = points[0]
        try:
            return point.load()
        except Exception as err:  # noqa: BLE001 - a broken plugin is the user's to fix
            raise UserError(
                f"cannot load {self.kind} plugin {name!r} ({point.value}, entry-point group "
                f"{self.group!r}): {type(err).__name__}: {err}"
            ) from err

    def check(self, obj: Any, name: str) -> None:
        """A :class:`UserError` naming the protocol's methods that ``obj`` lacks."""
        if self.protocol is None:
            return
        missing = [
            m for m in required_methods(self.protocol) if not callable(getattr(obj, m, None))
        ]
        if missing:
            where = f"{self.protocol.__module__}.{self.protocol.__qualname__}"
            raise UserError(
                f"{self.kind} {name!r} does not implement the {self.protocol.__name__} protocol "
                f"({where}): missing method{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
            )

    def plugins(self) -> dict[str, str]:
        """Installed plugins of this registry's group: name -> ``module:Name`` (not loaded)."""
        return {ep.name: ep.value for ep in _entry_points(self.group)}

    def names(self) -> list[str]:
        """The registered names (plugins are listed by :meth:`plugins`)."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    """The installed entry points of ``group`` (one per name: the first on sys.path wins)."""
    seen: dict[str, importlib.metadata.EntryPoint] = {}
    for point in importlib.metadata.entry_points(group=group):
        seen.setdefault(point.name, point)
    return list(seen.values())


@functools.cache
def required_methods(protocol: type) -> tuple[str, ...]:
    """The public methods ``protocol`` (and its bases up to ``Protocol``) declares, sorted."""
    names: set[str] = set()
    for cls in protocol.__mro__:
        if cls is object or cls.__module__ == "typing":
            continue
        names |= {k for k, v in vars(cls).items() if callable(v) and not k.startswith("_")}
    return tuple(sorted(names - _NOT_REQUIRED))


def import_object(spec: str) -> Any:
    """The object ``spec`` names: ``package.module:attr`` (imported as usual) or
    ``path/to/file.py:attr`` (the file loaded as a module named after its stem)."""
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise ImportError(f"{spec!r} is not of the form 'package.module:name' or 'file.py:name'")
    if module_name.endswith(".py"):
        module = _module_from_file(Path(module_name))
    else:
        module = importlib.import_module(module_name)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _module_from_file(file: Path) -> Any:
    """``file`` loaded as a module (once per resolved path; its folder need not be on
    sys.path). Kept in sys.modules so that its objects pickle."""
    path = file.resolve()
    if not path.is_file():
        raise ImportError(f"no such file {str(file)!r}")
    name = f"_trafl_file_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {str(file)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
