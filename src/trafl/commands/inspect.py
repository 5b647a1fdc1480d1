"""``trafl list`` and ``trafl config``: what is registered, and what a config resolves to.

``trafl list [SECTION]`` prints one section per registry (models, tasks, objectives,
estimators: each name with the first sentence of its docstring, installed plugins marked) and
the sampler's modes (``sampler``). ``trafl config COMMAND [CONFIG.yaml] [key=value ...]`` prints the config that
``trafl COMMAND`` would run with (defaults < YAML < overrides, checked as the command checks
them) and exits; it loads no model and reads no data.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
import typing
from typing import Any

from trafl.core.config import ConfigError
from trafl.core.config_files import format_config, load_config
from trafl.core.registry import Registry
from trafl.sampling import SamplerConfig

# the command -> (module, config class) whose settings `trafl config COMMAND` resolves
CONFIGS = {
    "pretrain": ("trafl.commands.pretrain", "PretrainConfig"),
    "train": ("trafl.commands.train_config", "TrainConfig"),
    "sample": ("trafl.commands.sample", "SampleConfig"),
    "eval": ("trafl.commands.eval", "EvalConfig"),
    "compare": ("trafl.commands.compare", "CompareConfig"),
    "export": ("trafl.commands.export", "ExportConfig"),
    "demo": ("trafl.commands.demo", "DemoConfig"),
}
WIDTH = 88  # of a description


def registries() -> dict[str, tuple[Registry, str]]:
    """Section title -> (registry, the key that names an entry)."""
    from trafl.likelihood import ESTIMATORS
    from trafl.models.loading import MODEL_TYPES
    from trafl.objectives import OBJECTIVES
    from trafl.tasks import TASKS

    return {
        "models": (MODEL_TYPES, "model.type"),
        "tasks": (TASKS, "task"),
        "objectives": (OBJECTIVES, "objective"),
        "estimators": (ESTIMATORS, "estimator"),
    }


def summary(obj: Any, name: str) -> str:
    """The first sentence of the docstring that describes ``obj``: its module's when that
    module is about ``name`` alone (its docstring starts with the name in double backquotes and
    a colon), else its own."""
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    docs = [
        getattr(module, "__doc__", None),
        vars(obj).get("__doc__") if isinstance(obj, type) else None,
    ]
    prefix = f"``{name}``:"
    texts = [d.strip() for d in docs if d and d.strip()]
    text = next(
        (t[len(prefix) :] for t in texts if t.startswith(prefix)), texts[-1] if texts else ""
    )
    paragraph = " ".join(text.strip().split("\n\n")[0].split())
    sentence = re.split(r"\.\s+(?=[A-Z])", paragraph)[0].rstrip(".:")  # not at "et al. 2025"
    return sentence if len(sentence) <= WIDTH else sentence[: WIDTH - 3].rstrip() + "..."


def section_lines(registry: Registry) -> list[tuple[str, str]]:
    """(name, description) of every registered entry, then of every installed plugin."""
    rows = [(name, summary(registry.get(name), name)) for name in registry.names()]
    for name, value in sorted(registry.plugins().items()):
        if name in registry:
            rows.append((name, f"plugin {value}, hidden by the built-in of the same name"))
            continue
        try:
            rows.append((name, f"plugin {value}: {summary(registry.get(name), name)}"))
        except ValueError as err:
            rows.append((name, f"plugin {value}, unusable: {err}"))
    return rows


def choices(cls: type, field: str) -> list[str]:
    """The values a ``Literal`` field of a config dataclass allows."""
    hint = typing.get_type_hints(cls)[field]
    return [str(v) for v in typing.get_args(hint)]


def list_components(which: list[str]) -> str:
    """The text of ``trafl list [SECTION]``."""
    sections = [*registries(), "sampler"]
    if len(which) > 1 or (which and which[0] not in sections):
        raise ConfigError(
            f"usage: trafl list [SECTION], SECTION one of {', '.join(sections)}; got "
            f"{' '.join(which)!r}"
        )
    out = []
    for title in which or sections:
        if title == "sampler":
            fields = ("remasking", "cache")
            rows = [(f, ", ".join(choices(SamplerConfig, f))) for f in fields]
            heading = "sampler (rollout.sampler.KEY=VALUE in train, sampler.KEY=VALUE elsewhere)"
        else:
            registry, key = registries()[title]
            rows = section_lines(registry)
            heading = f"{title} ({key}=NAME, or an import path 'package.module:Name')"
        width = max(len(n) for n, _ in rows)
        out += [heading] + [f"  {n:<{width}}  {d}".rstrip() for n, d in rows] + [""]
    return "\n".join(out)


def config_class(command: str | None) -> type:
    if command not in CONFIGS:
        hint = f" (say which command {command!r} is for)" if command and "." in command else ""
        raise ConfigError(
            f"usage: trafl config COMMAND [CONFIG.yaml] [key=value ...], COMMAND one of "
            f"{', '.join(CONFIGS)}; got {command!r}{hint}, e.g. trafl config train "
            f"configs/train_trafl.yaml steps=10"
        )
    module, name = CONFIGS[command]
    cls = getattr(importlib.import_module(module), name)
    assert dataclasses.is_dataclass(cls)
    return cls


def show_config(args: list[str]) -> str:
    """The text of ``trafl config COMMAND [CONFIG.yaml] [key=value ...]``: the resolved YAML."""
    command, rest = (args[0], args[1:]) if args else (None, [])
    cls = config_class(command)
    path = rest.pop(0) if rest and "=" not in rest[0] else None
    extra = [a for a in rest if "=" not in a]
    if extra:
        raise ConfigError(
            f"usage: trafl config COMMAND [CONFIG.yaml] [key=value ...]; got {extra[0]!r}"
        )
    return format_config(load_config(cls, path, rest))
