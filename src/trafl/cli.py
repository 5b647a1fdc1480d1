"""The ``trafl`` command: ``trafl COMMAND [CONFIG.yaml] [key=value ...]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from trafl.config import ConfigError, load_config

USAGE = """\
trafl COMMAND [CONFIG.yaml] [key=value ...]

commands:
  pretrain   train a base denoiser on a task's supervised data
  train      RL post-training (TraFL or a baseline) from a base model
  sample     sample completions, score them, print accuracy (and pass@k)
  eval       pass@k across budgets and lengths, coverage, trajectory locking (+ plots)
  demo       the main job on the embedded defaults

Settings: dataclass defaults < CONFIG.yaml < key=value overrides (dotted keys, e.g.
sampler.temperature=0.9). Unknown keys and bad values are errors that list what is valid.
"""


def _pretrain(config_path: str | None, overrides: list[str]) -> None:
    from trafl.pretrain import PretrainConfig, pretrain

    pretrain(load_config(PretrainConfig, config_path, overrides))


def _train(config_path: str | None, overrides: list[str]) -> None:
    from trafl.train import TrainConfig, train

    train(load_config(TrainConfig, config_path, overrides))


def _sample(config_path: str | None, overrides: list[str]) -> None:
    from trafl.generate import SampleConfig, run_sample

    run_sample(load_config(SampleConfig, config_path, overrides))


def _eval(config_path: str | None, overrides: list[str]) -> None:
    from trafl.evaluate import EvalConfig, evaluate

    evaluate(load_config(EvalConfig, config_path, overrides))


def _demo(config_path: str | None, overrides: list[str]) -> None:
    from trafl.demo import DemoConfig, run_demo

    run_demo(load_config(DemoConfig, config_path, overrides))


COMMANDS: dict[str, Callable[[str | None, list[str]], Any]] = {
    "pretrain": _pretrain,
    "sample": _sample,
    "train": _train,
    "demo": _demo,
    "eval": _eval,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="trafl", usage=USAGE, add_help=True)
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    parser.add_argument("args", nargs="*", help="[CONFIG.yaml] [key=value ...]")
    ns = parser.parse_args(argv)
    config_path = None
    overrides = list(ns.args)
    if overrides and "=" not in overrides[0]:
        config_path = overrides.pop(0)
    try:
        COMMANDS[ns.command](config_path, overrides)
    except ConfigError as err:
        print(f"trafl {ns.command}: config error: {err}", file=sys.stderr)
        sys.exit(2)
