"""Config files: read a YAML recipe under the layering of :mod:`trafl.core.config`, and write
the resolved config saved next to every run (readable YAML, in field order)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from trafl.core.config import from_dict, layer, parse_overrides, to_dict
from trafl.core.values import ConfigError


def load_config(
    cls: type, path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None
) -> Any:
    """Dataclass defaults < YAML file at ``path`` < ``overrides`` (CLI strings or a dict)."""
    data = _read_yaml(Path(path)) if path is not None else {}
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides, cls)
    merged = layer(data, overrides or {}, cls)
    # A config class may fill defaults that depend on other keys (e.g. the training config
    # picks the estimator its objective is defined on unless one is named); the filled value
    # is then explicit in the resolved config that is saved with the run.
    fill = getattr(cls, "fill_defaults", None)
    if callable(fill):
        merged = fill(merged)
    return from_dict(cls, merged)


def _read_yaml(file: Path) -> dict[str, Any]:
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
        raise ConfigError(f"config file {file} must hold a mapping, got {type(loaded).__name__}")
    return loaded or {}


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
