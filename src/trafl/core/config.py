"""Configuration as plain nested dataclasses: defaults < YAML file < ``key=value`` overrides.

Why dataclasses and not a framework: the config of a run is then ordinary typed Python that an
editor completes, a test builds in one line, and :func:`to_dict` turns back into the YAML saved
next to every run, so what was saved is exactly what ran. (OmegaConf was weighed: it has no
sections whose class a ``name`` picks, reads ``[/INST]`` as a list and ``1e3`` as no int, and
words its errors its own way, so it would add code around it instead of removing ours.)

Polymorphic sections (which task, which objective, ...) are fields made with :func:`component`:
the section's ``name`` picks a registry entry, and the rest of its keys are checked against that
entry's own ``Config`` dataclass (a :class:`ComponentConfig`). A plain section may take one
scalar as shorthand for one of its keys: ``ModelConfig.shorthand = "path"`` reads ``model=PATH``
as ``model.path=PATH``, and ``task=gsm8k`` is ``task.name=gsm8k``.

The layers are laid over each other by one routine, :func:`layer`, whose docstring states the
rule. Every error names the full key path and lists what is valid, because most config errors
are typos made on a command line.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from pathlib import Path
from typing import Any

from trafl.core.registry import Registry
from trafl.core.values import (
    ConfigError,
    bad_value,
    check_at_least,
    check_choice,
    check_lengths,
    coerce,
    parse_value,
)

# the public names; ConfigError and the checks live in trafl.core.values
__all__ = [
    "ComponentConfig",
    "ConfigError",
    "check_at_least",
    "check_choice",
    "check_lengths",
    "component",
    "from_dict",
    "layer",
    "parse_overrides",
    "to_dict",
]


@dataclasses.dataclass
class ComponentConfig:
    """The base of a registered component's ``Config``: ``name`` (first, so a section can be
    read before its class is known) is the registry entry the section configures."""

    name: str


def component(registry: Registry, default_name: str) -> Any:
    """A polymorphic section: ``registry.get(name).Config`` decides which keys are valid.

    The default is built lazily (on construction of the parent, not on import), so registries
    can be filled by modules imported after the config class is defined.
    """
    return dataclasses.field(
        default_factory=lambda: _component_cls(registry, default_name, "")(name=default_name),
        metadata={"registry": registry, "default": default_name},
    )


def _component_cls(registry: Registry, name: str, where: str) -> type:
    """The ``Config`` dataclass of a registry entry, checked to carry ``name`` first."""
    at = f"{_join(where, 'name')}: " if where else ""
    try:
        entry = registry.get(name)
    except ValueError as err:
        raise ConfigError(f"{at}{err}") from err
    cfg = getattr(entry, "Config", None)
    if not (isinstance(cfg, type) and dataclasses.is_dataclass(cfg)):
        raise ConfigError(f"{at}{registry.kind} {name!r} has no dataclass attribute 'Config'")
    first = dataclasses.fields(cfg)[:1]
    if not first or first[0].name != "name":
        raise ConfigError(f"{at}{registry.kind} {name!r}: Config's first field must be 'name'")
    return cfg


# --------------------------------------------------------------------------- the schema


@functools.cache
def _fields(cls: Any) -> dict[str, dataclasses.Field[Any]]:
    """Config keys are the fields a constructor accepts (``init=False`` ones are derived);
    none for anything that is not a dataclass (a free mapping, an unknown section)."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return {}
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _registry(cls: Any, key: str) -> Any:
    """The metadata of component field ``key`` of ``cls`` (its registry and default name)."""
    f = _fields(cls).get(key)
    return f.metadata if f is not None and "registry" in f.metadata else None


@functools.cache
def _hint(cls: Any, key: str) -> Any:
    """The annotation of field ``key`` of ``cls``; None for an unknown key."""
    return typing.get_type_hints(cls)[key] if key in _fields(cls) else None


def _section_type(cls: Any, key: str) -> type | None:
    """The dataclass of plain section ``key`` of ``cls`` (``X`` or ``X | None``), else None."""
    hint = _hint(cls, key)
    if hint is None or _registry(cls, key):
        return None
    options = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return options[0] if len(options) == 1 and _fields(options[0]) else None


def _child_type(cls: Any, key: str, section: dict[str, Any]) -> type | None:
    """The dataclass that section ``key`` of ``cls`` is read with: a plain section's type, or
    the ``Config`` of the component its name (or the field's default) picks; None if unknown
    (a bad name is reported by :func:`from_dict`, with its key)."""
    meta = _registry(cls, key)
    if meta is None:
        return _section_type(cls, key)
    name = section.get("name", meta["default"])
    try:
        return _component_cls(meta["registry"], name, "") if isinstance(name, str) else None
    except ValueError:
        return None


def _as_section(cls: Any, key: str, value: Any) -> Any:
    """``value`` of ``cls.key`` as a mapping where a scalar is shorthand for one: a component
    name (``task: gsm8k``) or a plain section's ``shorthand`` key (``model: PATH``)."""
    if _registry(cls, key) and isinstance(value, str):
        return {"name": value}
    return _expand_shorthand(_section_type(cls, key), value)


def _expand_shorthand(cls: Any, value: Any) -> Any:
    key = getattr(cls, "shorthand", None)
    if key and _fields(cls) and isinstance(value, (str, int, float, Path)):
        return {key: value if isinstance(value, str) else str(value)}
    return value


# --------------------------------------------------------------------------- layering


def layer(
    base: dict[str, Any], new: dict[str, Any], cls: Any = None, *, one_layer: bool = False
) -> dict[str, Any]:
    """``new`` laid over ``base``: the one rule by which each layer of a config covers the one
    below (a field's default < the YAML file < ``key=value`` overrides).

    - A key that ``new`` names wins; a key it leaves out keeps ``base``'s value.
    - A section given in both layers is laid over key by key, so a partial section keeps the
      rest of the lower layer, down to its field's own default: ``rollout.sampler.steps=4``
      keeps ``TrainConfig``'s ``gen_length=16`` and ``temperature=0.9``, not the values of
      ``SamplerConfig()``.
    - A component section that names another component replaces the lower layer's section
      whole: the new component starts from its own defaults (``objective.name=spg`` over a
      file's ``objective: {name: trafl, beta: 8}`` drops ``beta``), while a key of the same
      layer that it lacks is an error listing its keys (``objective.name=spg objective.beta=8``).
      Within ``one_layer`` (the arguments of one command line) a name never restarts its
      section, so ``task.path=F task=gsm8k`` and ``task=gsm8k task.path=F`` agree.
    - Lists and scalars replace. A scalar shorthand (``task: gsm8k``, ``model: PATH``) counts
      as its mapping (``{name: gsm8k}``, ``{path: PATH}``), so it combines with dotted keys.

    ``cls`` is the dataclass that both layers configure; where it is unknown, two mappings with
    different ``name`` values count as different components.
    """
    out = dict(base)
    for key, value in new.items():
        out[key] = _lay(cls, key, out.get(key), value, one_layer)
    return out


def _lay(cls: Any, key: str, old: Any, new: Any, one_layer: bool = False) -> Any:
    """Section ``key`` of ``cls``: ``new`` over ``old`` (see :func:`layer`)."""
    old, new = _as_section(cls, key, old), _as_section(cls, key, new)
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    if not one_layer and _names_another(cls, key, old, new):
        return dict(new)
    return layer(old, new, _child_type(cls, key, old), one_layer=one_layer)


def _names_another(cls: Any, key: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Section ``new`` names another component than ``old`` (a component's name defaults to
    its field's; without a schema, both must carry a ``name``)."""
    meta = _registry(cls, key)
    if meta is not None:
        name = old.get("name", meta["default"])
        return new.get("name", name) != name
    return cls is None and "name" in old and "name" in new and old["name"] != new["name"]


def parse_overrides(args: list[str], cls: type | None = None) -> dict[str, Any]:
    """``["optim.lr=1e-4", "sampler.gen_lengths=[16,32]"]`` -> nested dict; later args win,
    and the args are one layer (:func:`layer`), so ``model=PATH model.dtype=bfloat16`` combine
    in either order. Values are read by :func:`~trafl.core.values.parse_value`; with ``cls``
    (the config dataclass), a ``str`` field keeps its text as typed and shorthands expand.
    """
    out: dict[str, Any] = {}
    for arg in args:
        if "=" not in arg:
            raise ConfigError(f"override {arg!r} is not of the form key=value (e.g. optim.lr=1e-4)")
        key, _, raw = arg.partition("=")
        parts = [p.strip() for p in key.strip().split(".")]
        if not all(parts):
            raise ConfigError(f"override {arg!r} has an empty key part (use e.g. optim.lr=1e-4)")
        node, node_cls = out, cls
        for i, part in enumerate(parts[:-1]):
            node[part] = _as_section(node_cls, part, node.get(part, {}))
            node = node[part]
            if not isinstance(node, dict):
                prefix = ".".join(parts[: i + 1])
                raise ConfigError(f"override {arg!r} conflicts with an earlier {prefix}=...")
            node_cls = _child_type(node_cls, part, node)
        last = parts[-1]
        value = parse_value(raw, _hint(node_cls, last))
        node[last] = _lay(node_cls, last, node.get(last), value, one_layer=True)
    return out


# --------------------------------------------------------------------------- building


def from_dict(cls: type, data: dict[str, Any] | None, where: str = "") -> Any:
    """Build dataclass ``cls`` from plain data, coercing and validating every value; a section
    is laid over its field's default (:func:`layer`).

    ``where`` is the key path of this section, used only to make errors point at the right key.
    """
    return _build(cls, data, where, "")


def _build(cls: type, data: Any, where: str, label: str) -> Any:
    data = _expand_shorthand(cls, {} if data is None else data)
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = to_dict(data)
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping for {where or 'the config'}, got {data!r}")
    fields, kwargs = _fields(cls), {}
    for key, value in data.items():
        path = _join(where, str(key))
        if key not in fields:
            under = f"under {where!r}{label}" if where else f"at top level{label}"
            raise ConfigError(
                f"unknown config key {path!r}; valid keys {under}: {', '.join(fields)}"
            )
        f = fields[key]
        if f.default_factory is not dataclasses.MISSING and isinstance(
            _as_section(cls, key, value), dict
        ):
            value = _lay(cls, key, to_dict(f.default_factory()), value)
        if "registry" in f.metadata:
            kwargs[key] = _build_component(
                f.metadata["registry"], f.metadata["default"], value, path
            )
        else:
            kwargs[key] = coerce(value, _hint(cls, key), path, _build)
    for key, f in fields.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if key not in kwargs and no_default:
            raise ConfigError(f"missing required config key {_join(where, key)!r}")
    try:
        return cls(**kwargs)
    except ValueError as err:  # a __post_init__ check: say which section it was about
        raise ConfigError(f"{where}: {err}" if where else str(err)) from err


def _build_component(registry: Registry, default: str, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = to_dict(value)
    value = {"name": value} if isinstance(value, str) else {} if value is None else value
    if not isinstance(value, dict):
        raise ConfigError(f"expected a mapping or a {registry.kind} name for {where!r}")
    name = value.get("name", default)
    if not isinstance(name, str):
        raise bad_value(name, _join(where, "name"), str)
    cfg = _component_cls(registry, name, where)
    return _build(cfg, {**value, "name": name}, where, f" ({registry.kind} {name!r})")


def to_dict(obj: Any) -> Any:
    """The inverse of :func:`from_dict`: only dicts, lists, str, numbers, bools and None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj
