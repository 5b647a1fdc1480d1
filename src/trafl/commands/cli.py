"""The ``trafl`` command: ``trafl COMMAND [CONFIG.yaml] [key=value ...]``.

A failure the user can act on (:class:`trafl.core.errors.TraflError`: a bad config, file, folder or
device, a run stopped on purpose) is one line on stderr, ``trafl COMMAND: message``, and the
error's exit code (2 for bad input); ``--debug`` anywhere on the line, or ``TRAFL_DEBUG=1``,
shows its traceback instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from trafl.core.config import ConfigError
from trafl.core.config_files import load_config
from trafl.core.errors import Interrupted, TraflError

USAGE = """\
trafl COMMAND [CONFIG.yaml] [key=value ...]

commands:
  pretrain   train a base denoiser on a task's supervised data
  train      RL post-training (TraFL or a baseline) from a base model
  sample     sample completions, score them, print accuracy (and pass@k)
  eval       pass@k across budgets and lengths, coverage, trajectory locking (+ plots)
  compare    one table and plots across evaluated runs (EVAL... [base=NAME])
  export     a run's policy as a full model folder with a model card, LoRA merged (RUN_OR_CHECKPOINT OUT)
  demo       the main job on the embedded defaults (--quick: a tiny smoke version)
  list       registered model types, tasks, objectives, estimators (+ plugins), sampler modes
  config     print the config a command resolves to and exit (COMMAND [CONFIG.yaml] [k=v])

Settings: dataclass defaults < CONFIG.yaml < key=value overrides (dotted keys, e.g.
sampler.temperature=0.9). Unknown keys and bad values are errors that list what is valid.
--debug (or TRAFL_DEBUG=1) shows the traceback of an error instead of its one-line message.
"""


def _pretrain(config_path: str | None, overrides: list[str]) -> None:
    from trafl.commands.pretrain import PretrainConfig, pretrain

    pretrain(load_config(PretrainConfig, config_path, overrides))


def _train(config_path: str | None, overrides: list[str]) -> None:
    from trafl.commands.train import TrainConfig, train

    train(load_config(TrainConfig, config_path, overrides))


def _sample(config_path: str | None, overrides: list[str]) -> None:
    from trafl.commands.sample import SampleConfig, run_sample

    run_sample(load_config(SampleConfig, config_path, overrides))


def _eval(config_path: str | None, overrides: list[str]) -> None:
    from trafl.commands.eval import EvalConfig, evaluate

    evaluate(load_config(EvalConfig, config_path, overrides))


def _compare(config_path: str | None, overrides: list[str]) -> None:
    from trafl.commands.compare import CompareConfig, compare

    paths = [o for o in overrides if "=" not in o]
    rest = [o for o in overrides if "=" in o]
    if config_path is not None:
        paths.insert(0, config_path)
    cfg = load_config(CompareConfig, None, rest)
    cfg.evals = cfg.evals + paths
    compare(cfg)


def _export(config_path: str | None, overrides: list[str]) -> None:
    from trafl.commands.export import ExportConfig, export

    paths = [o for o in overrides if "=" not in o]
    if len(paths) != 2:
        raise ConfigError(f"export takes RUN_OR_CHECKPOINT OUT, got {paths}")
    rest = [o for o in overrides if "=" in o]
    export(load_config(ExportConfig, None, [f"model.path={paths[0]}", f"out={paths[1]}", *rest]))


def _demo(config_path: str | None, overrides: list[str]) -> None:
    from trafl.commands.demo import DemoConfig, run_demo

    run_demo(load_config(DemoConfig, config_path, overrides))


def _list(config_path: str | None, overrides: list[str]) -> None:
    from trafl.commands.inspect import list_components

    print(list_components(overrides))


def _config(config_path: str | None, overrides: list[str]) -> None:
    from trafl.commands.inspect import show_config

    print(show_config(overrides), end="")


COMMANDS: dict[str, Callable[[str | None, list[str]], Any]] = {
    "pretrain": _pretrain,
    "sample": _sample,
    "train": _train,
    "compare": _compare,
    "demo": _demo,
    "eval": _eval,
    "export": _export,
    "list": _list,
    "config": _config,
}
NO_CONFIG_FILE = ("compare", "export", "list", "config")  # their first argument is no YAML


def _as_override(arg: str) -> str:
    """``--flag`` means ``flag=true`` and ``--key=value`` means ``key=value``."""
    if not arg.startswith("--") or arg == "--help":
        return arg
    return arg[2:] if "=" in arg else f"{arg[2:]}=true"


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM or SIGINT outside a training loop: remember it (trafl.run.signals) and unwind
    (temp files are removed); the command exits 128 + the signal's number with one line."""
    from trafl.run.signals import record

    record(signum)
    raise Interrupted(signum)


def one_line(err: BaseException) -> str:
    """The error's message on one line (YAML and state-dict errors span several)."""
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


def debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("TRAFL_DEBUG", "").lower() in ("1", "true", "yes")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line, like every other user error (argparse prints its usage block)."""
        print(f"trafl: {message} (trafl --help)", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    parser = _Parser(prog="trafl", usage=USAGE, add_help=True)
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    parser.add_argument("args", nargs="*", help="[CONFIG.yaml] [key=value ...]")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    ns = parser.parse_args([_as_override(a) for a in argv if a != "--debug"])
    config_path = None
    overrides = list(ns.args)
    if overrides and "=" not in overrides[0] and ns.command not in NO_CONFIG_FILE:
        config_path = overrides.pop(0)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):  # a training loop defers them
            signal.signal(signum, _interrupt)
    try:
        COMMANDS[ns.command](config_path, overrides)
    except TraflError as err:
        if debug:
            raise
        print(f"trafl {ns.command}: {one_line(err)}", file=sys.stderr)
        sys.exit(err.exit_code)
    except (Interrupted, KeyboardInterrupt) as err:  # outside a loop, or Ctrl-C twice in one
        if debug:
            raise
        name = str(err) if isinstance(err, Interrupted) else "interrupted"
        print(
            f"trafl {ns.command}: {name} (nothing saved since the last checkpoint)", file=sys.stderr
        )
        sys.exit(getattr(err, "exit_code", 130))
