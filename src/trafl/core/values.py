"""One config value read as its field's type (from YAML or ``key=value`` text), and checked.

:mod:`trafl.core.config` decides which value a key gets (the layers); this module turns that
value into what the annotation asks for, accepting the spellings a command line produces
(``"1e3"`` for an int, ``16,32`` for a list, ``yes`` for a bool, ``null`` for None) and
naming the key, the value and the expected type when it cannot. The ``check_*`` helpers are
the range checks that configs' ``__post_init__`` methods share.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from trafl.core.errors import UserError

NULLS = ("null", "none", "~")
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


def type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("NoneType", "None")


def bad_value(value: Any, where: str, tp: Any) -> ConfigError:
    return ConfigError(f"invalid value {value!r} for {where!r}; expected {type_name(tp)}")


def parse_value(raw: str, hint: Any = None) -> Any:
    """One command-line value: YAML (lists, numbers, bools, null), except that text YAML would
    misread as a mapping (``Answer: 42``) or a comment stays a string, and ``key=`` is ``""``.
    A field annotated ``str`` (``hint``) keeps its text as typed (``[/INST]`` is no list, and
    ``yes`` no bool); for ``str | None`` the null words are None."""
    if hint is str or set(typing.get_args(hint)) == {str, type(None)}:
        return None if hint is not str and raw.strip().lower() in NULLS else raw
    if not raw.strip():
        return raw
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if (isinstance(value, dict) and not raw.lstrip().startswith("{")) or (
        value is None and raw.strip().lower() not in NULLS
    ):
        return raw
    return value


Section = Callable[[type, Any, str, str], Any]  # builds a dataclass from a mapping


def coerce(value: Any, tp: Any, where: str, section: Section) -> Any:
    """``value`` as annotation ``tp`` (``where`` is its key path); strings are accepted wherever
    a command line would give one. A dataclass type is built by ``section``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Union or origin is types.UnionType:
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.strip().lower() in NULLS)
        ):
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return coerce(value, options[0], where, section)
        for option in options:
            try:
                return coerce(value, option, where, section)
            except ValueError:
                continue
        raise bad_value(value, where, tp)
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
        raise bad_value(value, where, tp)
    if origin in (list, tuple) or tp in (list, tuple):
        items = _as_list(value, where, tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise bad_value(value, where, tp)
            return tuple(
                coerce(v, a, f"{where}[{i}]", section)
                for i, (v, a) in enumerate(zip(items, args, strict=True))
            )
        elem = args[0] if args else Any
        out = [coerce(v, elem, f"{where}[{i}]", section) for i, v in enumerate(items)]
        return tuple(out) if (origin or tp) is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise bad_value(value, where, tp)
        kt, vt = args if args else (Any, Any)
        return {
            coerce(k, kt, where, section): coerce(v, vt, f"{where}.{k}", section)
            for k, v in value.items()
        }
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return section(tp, value, where, "")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise bad_value(value, where, tp)


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
                raise bad_value(value, where, tp) from err
            if isinstance(parsed, list):
                return parsed
            raise bad_value(value, where, tp)
        return [part.strip() for part in text.split(",")] if text else []
    if value is None or isinstance(value, dict):
        raise bad_value(value, where, tp)
    return [value]
