"""Configuration as plain nested dataclasses: defaults < YAML file < ``key=value`` overrides.

Why dataclasses and not a framework: the config of a run is then ordinary typed Python that an
editor completes, a test builds in one line, and :func:`to_dict` turns back into the YAML saved
next to every run, so what was saved is exactly what ran.

Polymorphic sections (which task, which sampler, ...) are fields made with :func:`component`:
the section's ``name`` picks a registry entry, and the rest of its keys are checked against that
entry's own ``Config`` dataclass. Every error names the full key path and lists what is valid,
because most config errors are typos made on a command line.

A plain section may accept one scalar as shorthand for one of its keys: a dataclass whose
``shorthand`` class attribute names a field (``ModelConfig.shorthand = "path"``) reads
``model: models/x`` (or ``model=models/x``) as ``model: {path: models/x}``, and merges it with
the other layers key by key, so ``model=...`` on the command line keeps a recipe's LoRA settings.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from trafl.core.errors import UserError
from trafl.core.registry import Registry

_NULLS = ("null", "none", "~")
_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")


class ConfigError(UserError):
    """A bad config; a ValueError so callers need not know this module, a subclass so a CLI
    can print it as a one-line message instead of a traceback."""


def check_choice(field: str, value: Any, choices: typing.Sequence[Any]) -> None:
    """Raise a ValueError naming the field and every valid choice (for ``__post_init__``
    checks of fields that are not ``Literal`` typed, or are validated outside a config)."""
    if value not in choices:
        raise ValueError(f"invalid {field} {value!r}; valid: {', '.join(map(repr, choices))}")


def check_at_least(obj: Any, minimums: dict[str, int], prefix: str = "") -> None:
    """Raise a ValueError naming the first field of ``obj`` (as ``prefix + name``) below its
    minimum: the counts of a config's ``__post_init__`` (``steps=0`` must not exit as if it
    had trained). ``None`` passes: it stands for a default filled in later."""
    for name, low in minimums.items():
        value = getattr(obj, name)
        if value is not None and value < low:
            raise ValueError(f"{prefix}{name} must be >= {low}, got {value}")


def check_lengths(name: str, values: typing.Sequence[int]) -> None:
    """A non-empty list of lengths, each >= 1 (``completion_lengths``, ``gen_lengths``)."""
    if not values or min(values) < 1:
        raise ValueError(f"{name} must be a non-empty list of lengths >= 1, got {list(values)}")


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


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """Config keys are the fields a constructor accepts (``init=False`` ones are derived)."""
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("NoneType", "None")


def _bad(value: Any, where: str, tp: Any) -> ConfigError:
    return ConfigError(f"invalid value {value!r} for {where!r}; expected {_type_name(tp)}")


def from_dict(cls: type, data: dict[str, Any] | None, where: str = "") -> Any:
    """Build dataclass ``cls`` from plain data, coercing and validating every value.

    ``where`` is the key path of this section, used only to make errors point at the right key.
    """
    return _build(cls, data, where, "")


def _expand_shorthand(cls: Any, value: Any) -> Any:
    """``value`` as a mapping when ``cls`` takes a scalar shorthand for one of its fields."""
    key = getattr(cls, "shorthand", None) if isinstance(cls, type) else None
    if key and dataclasses.is_dataclass(cls) and isinstance(value, (str, int, float, Path)):
        return {key: value if isinstance(value, str) else str(value)}
    return value


def _build(cls: type, data: Any, where: str, label: str) -> Any:
    if data is None:
        data = {}
    data = _expand_shorthand(cls, data)
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = to_dict(data)
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping for {where or 'the config'}, got {data!r}")
    fields, hints = _fields(cls), _hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = _join(where, str(key))
        if key not in fields:
            under = f"under {where!r}{label}" if where else f"at top level{label}"
            raise ConfigError(
                f"unknown config key {path!r}; valid keys {under}: {', '.join(fields)}"
            )
        meta = fields[key].metadata
        value = _over_field_default(fields[key], value)
        if "registry" in meta:
            kwargs[key] = _build_component(meta["registry"], meta["default"], value, path)
        else:
            kwargs[key] = _coerce(value, hints[key], path)
    for key, f in fields.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if key not in kwargs and no_default:
            raise ConfigError(f"missing required config key {_join(where, key)!r}")
    try:
        return cls(**kwargs)
    except ValueError as err:  # a __post_init__ check: say which section it was about
        raise ConfigError(f"{where}: {err}" if where else str(err)) from err


def _over_field_default(f: dataclasses.Field, value: Any) -> Any:
    """A partial section laid over its field's own default: ``optim.lr=3e-3`` keeps the other
    values of ``TrainConfig.optim``'s default (warmup 0, constant lr), not those of
    ``OptimConfig()``. A component section keeps its default's values only while it names the
    same component."""
    if f.default_factory is dataclasses.MISSING or not isinstance(value, dict):
        return value
    default = f.default_factory()
    if not dataclasses.is_dataclass(default) or isinstance(default, type):
        return value
    base = to_dict(default)
    if "name" in base and value.get("name", base["name"]) != base["name"]:
        return value
    return _lay_over(base, value)


def _lay_over(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in new.items():
        old = out.get(key)
        same_component = not (isinstance(value, dict) and isinstance(old, dict)
                              and value.get("name", old.get("name")) != old.get("name"))  # fmt: skip
        if isinstance(value, dict) and isinstance(old, dict) and same_component:
            out[key] = _lay_over(old, value)
        else:
            out[key] = value
    return out


def _build_component(registry: Registry, default: str, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = to_dict(value)
    if isinstance(value, str):  # shorthand: ``task: countdown``
        value = {"name": value}
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"expected a mapping or a {registry.kind} name for {where!r}")
    name = value.get("name", default)
    if not isinstance(name, str):
        raise _bad(name, _join(where, "name"), str)
    cfg = _component_cls(registry, name, where)
    return _build(cfg, {**value, "name": name}, where, f" ({registry.kind} {name!r})")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` to annotation ``tp``; strings are accepted wherever a CLI would give one."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Union or origin is types.UnionType:
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.strip().lower() in _NULLS)
        ):
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _coerce(value, options[0], where)
        for option in options:
            try:
                return _coerce(value, option, where)
            except ValueError:
                continue
        raise _bad(value, where, tp)
    if origin is Literal:
        for choice in args:
            if type(choice) is type(value) and choice == value:
                return choice
        if not isinstance(value, bool):
            for choice in args:
                if str(choice) == str(value):
                    return choice
        raise ConfigError(
            f"invalid value {value!r} for {where!r}; valid: {', '.join(map(repr, args))}"
        )
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"invalid value {value!r} for {where!r}; expected bool (true/false)")
    if tp in _SCALARS:
        if isinstance(value, (int, float, str, Path)) and not isinstance(value, bool):
            try:
                return _SCALARS[tp](value)
            except (ValueError, TypeError, OverflowError):
                pass
        raise _bad(value, where, tp)
    if origin in (list, tuple) or tp in (list, tuple):
        items = _as_list(value, where, tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise _bad(value, where, tp)
            return tuple(
                _coerce(v, a, f"{where}[{i}]")
                for i, (v, a) in enumerate(zip(items, args, strict=True))
            )
        elem = args[0] if args else Any
        out = [_coerce(v, elem, f"{where}[{i}]") for i, v in enumerate(items)]
        return tuple(out) if (origin or tp) is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _bad(value, where, tp)
        kt, vt = args if args else (Any, Any)
        return {_coerce(k, kt, where): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, where, "")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _bad(value, where, tp)


def _to_int(value: int | float | str) -> int:
    """``"3"``, ``1e3`` or ``"1e3"`` as an int, but never silently truncate ``3.5``."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    number = float(value)
    if not number.is_integer():
        raise ValueError(value)
    return int(number)


# ``str`` takes numbers because ``run_name=2024`` reaches us as an int from YAML.
_SCALARS: dict[Any, Any] = {int: _to_int, float: float, str: str, Path: Path}


def _as_list(value: Any, where: str, tp: Any) -> list[Any]:
    """Lists come as YAML lists, ``"[16, 32]"``, ``"16,32"``, or one bare scalar."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = yaml.safe_load(text)
            except yaml.YAMLError as err:
                raise _bad(value, where, tp) from err
            if isinstance(parsed, list):
                return parsed
            raise _bad(value, where, tp)
        return [part.strip() for part in text.split(",")] if text else []
    if value is None or isinstance(value, dict):
        raise _bad(value, where, tp)
    return [value]


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


def parse_overrides(args: list[str], cls: type | None = None) -> dict[str, Any]:
    """``["optim.lr=1e-4", "sampler.gen_lengths=[16,32]"]`` -> nested dict; later args win.

    Values go through ``yaml.safe_load`` (lists, numbers, bools, null), except that text YAML
    would misread as a mapping (``prompt=Answer: 42``) or a comment stays a string. An empty
    value (``key=``) is the empty string. With ``cls`` (the config dataclass), a section's
    scalar shorthand and its keys combine (``model=PATH model.dtype=bfloat16``, ``task=gsm8k
    task.path=FILE``), and a ``str`` field keeps its text as typed (``model.response_prefix=
    [/INST]`` is that text, not a YAML list).
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
            if part in node:
                node[part] = _as_section(node_cls, part, node[part])
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                prefix = ".".join(parts[: i + 1])
                raise ConfigError(f"override {arg!r} conflicts with an earlier {prefix}=...")
            node_cls = _child_type(node_cls, part, node)
        last = parts[-1]
        value = _as_section(node_cls, last, _parse_value(raw, _text_kind(node_cls, last)))
        old = node.get(last)
        if _is_section(node_cls, last) and isinstance(old, dict) and isinstance(value, dict):
            value = {**old, **value}  # ``model.dtype=... model=PATH`` keeps the dtype
        node[last] = value
    return out


def _parse_value(raw: str, text: str | None) -> Any:
    """One command-line value (see :func:`parse_overrides`); ``text`` is ``"str"`` or
    ``"str | None"`` for a text field (kept as typed; null words are None for the second)."""
    if text is not None:
        return None if text != "str" and raw.strip().lower() in _NULLS else raw
    if not raw.strip():
        return raw
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if (isinstance(value, dict) and not raw.lstrip().startswith("{")) or (
        value is None and raw.strip().lower() not in _NULLS
    ):
        return raw
    return value


def _text_kind(cls: type | None, key: str) -> str | None:
    """``"str"`` or ``"str | None"`` when field ``key`` of ``cls`` holds text, else None."""
    if cls is None or not dataclasses.is_dataclass(cls) or key not in _fields(cls):
        return None
    hint = _hints(cls)[key]
    if hint is str:
        return "str"
    args = typing.get_args(hint)
    is_union = typing.get_origin(hint) in (Union, types.UnionType)
    return "str | None" if is_union and set(args) == {str, type(None)} else None


def _child_type(cls: type | None, key: str, node: dict[str, Any]) -> type | None:
    """The dataclass of section ``key`` of ``cls``: a plain section's type, or the ``Config``
    of the component that ``node``'s name (or the field's default) picks; None if unknown."""
    if not _is_component(cls, key):
        return _section_type(cls, key)
    meta = _fields(cls)[key].metadata  # type: ignore[arg-type]
    name = node.get("name", meta["default"])
    try:
        return _component_cls(meta["registry"], name, "") if isinstance(name, str) else None
    except ValueError:
        return None  # from_dict reports the bad name with its key


def _is_section(cls: type | None, key: str) -> bool:
    """``key`` of ``cls`` is a plain section or a component (not a scalar, not unknown)."""
    return _section_type(cls, key) is not None or _is_component(cls, key)


def _is_component(cls: type | None, key: str) -> bool:
    if cls is None or not dataclasses.is_dataclass(cls):
        return False
    f = _fields(cls).get(key)
    return f is not None and "registry" in f.metadata


def _as_section(cls: type | None, key: str, value: Any) -> Any:
    """``value`` of ``cls.key`` as a mapping where a scalar is a shorthand for one: a component
    name (``task=gsm8k`` is ``task.name=gsm8k``) or a plain section's ``shorthand`` key, so that
    it combines with the section's dotted keys (``task=gsm8k task.path=FILE``)."""
    if _is_component(cls, key) and isinstance(value, str):
        return {"name": value}
    return _expand_shorthand(_section_type(cls, key), value)


def _section_type(cls: type | None, key: str) -> type | None:
    """The dataclass type of plain section ``key`` of ``cls`` (unwrapping ``X | None``), or
    None for components, scalars and unknown keys."""
    if cls is None or not dataclasses.is_dataclass(cls):
        return None
    f = _fields(cls).get(key)
    if f is None or "registry" in f.metadata:
        return None
    hint = _hints(cls)[key]
    options = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if len(options) == 1 and isinstance(options[0], type) and dataclasses.is_dataclass(options[0]):
        return options[0]
    return None


def deep_merge(
    base: dict[str, Any], override: dict[str, Any], cls: type | None = None
) -> dict[str, Any]:
    """A new dict: nested dicts merged key by key, anything else replaced by ``override``.

    Switching a component drops the lower layer's section: if ``override`` sets a section's
    ``name`` to something other than the base's, the section becomes ``override``'s alone, so
    the new component starts from its own defaults and the old one's keys cannot be rejected.
    With ``cls`` (the config dataclass), this applies only to real :func:`component` fields and
    a base section without ``name`` counts as its default. Without ``cls``, any mapping with a
    ``name`` key in both layers is treated as a component section.
    """
    return _merge(base, override, cls, heuristic=cls is None)


def _merge(
    base: dict[str, Any], override: dict[str, Any], cls: type | None, heuristic: bool
) -> dict[str, Any]:
    out = dict(base)
    fields = _fields(cls) if cls is not None else {}
    for key, new in override.items():
        old, f = out.get(key), fields.get(key)
        meta = f.metadata if f is not None else {}
        is_component = "registry" in meta
        if is_component and isinstance(new, str):
            new = {"name": new}
        if is_component and isinstance(old, str):
            old = {"name": old}
        if f is not None and cls is not None and not is_component:
            section = _section_type(cls, key)
            old, new = _expand_shorthand(section, old), _expand_shorthand(section, new)
        if not (isinstance(old, dict) and isinstance(new, dict)):
            out[key] = new
            continue
        sub: type | None = None
        if is_component:
            old_name = old.get("name", meta["default"])
            if new.get("name", old_name) != old_name:
                out[key] = dict(new)
                continue
            try:
                sub = _component_cls(meta["registry"], old_name, key)
            except ValueError:
                sub = None  # from_dict will report the bad name with its path
        elif f is not None and cls is not None:
            sub = _section_type(cls, key)
        elif heuristic and "name" in old and "name" in new and old["name"] != new["name"]:
            out[key] = dict(new)
            continue
        out[key] = _merge(old, new, sub, heuristic)
    return out


def load_config(
    cls: type, path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None
) -> Any:
    """Dataclass defaults < YAML file at ``path`` < ``overrides`` (CLI strings or a dict)."""
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file not found: {file}")
        try:
            loaded = yaml.safe_load(file.read_bytes().decode("utf-8"))
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {file} is not valid YAML: {err}") from err
        except UnicodeDecodeError as err:
            raise ConfigError(
                f"config file {file} is not UTF-8 text (byte offset {err.start})"
            ) from None
        except OSError as err:
            raise ConfigError(f"cannot read config file {file}: {err.strerror}") from err
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {file} must hold a mapping, got {type(loaded).__name__}"
            )
        data = loaded or {}
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides, cls)
    merged = deep_merge(data, overrides or {}, cls)
    # A config class may fill defaults that depend on other keys (e.g. the training config
    # picks the estimator its objective is defined on unless one is named); the filled value
    # is then explicit in the resolved config that is saved with the run.
    fill = getattr(cls, "fill_defaults", None)
    if callable(fill):
        merged = fill(merged)
    return from_dict(cls, merged)


class _Dumper(yaml.SafeDumper):
    """Block-style sections, but lists of scalars on one line (``gen_lengths: [16, 32]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(v, (list, dict)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def format_config(obj: Any) -> str:
    """Readable YAML in field order, as printed at the start of a run and saved with it."""
    return yaml.dump(to_dict(obj), Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def save_config(obj: Any, path: str | Path) -> None:
    """Write the resolved config, which is what :func:`load_saved_config` reproduces exactly."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(format_config(obj), encoding="utf-8")


def load_saved_config(cls: type, path: str | Path) -> Any:
    """Read back a config written by :func:`save_config` (same validation as any YAML file)."""
    return load_config(cls, path)
