"""Third-party components: a task class named by import path or installed as a plugin (a real
entry point, from a dist-info folder on sys.path) is checked against the Task protocol when its
config is read, and resolved by its short name."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from trafl.commands.cli import main
from trafl.commands.train import TrainConfig
from trafl.core.config_files import load_config
from trafl.core.errors import UserError
from trafl.core.registry import Registry, required_methods
from trafl.likelihood import ESTIMATORS
from trafl.objectives import OBJECTIVES
from trafl.tasks import TASKS, Task, build_task

PLUGIN = '''
import random
from dataclasses import dataclass

from trafl.tasks import TaskConfig


@dataclass
class EchoConfig(TaskConfig):
    name: str = "echo"
    word: str = "hi"


class Echo:
    """Repeat a word: the smallest complete task."""

    Config = EchoConfig
    name = "echo"

    def __init__(self, config):
        self.config = config

    def problems(self, split):
        return [{"word": self.config.word}]

    def sample_train(self, num, rng):
        return [{"word": self.config.word}] * num

    def prompt(self, problem):
        return problem["word"] + ":"

    def demonstration(self, problem, rng):
        return problem["word"]

    def reward(self, problem, completion):
        return float(completion == problem["word"])

    def solution_key(self, problem, completion):
        return completion if completion == problem["word"] else None

    def all_solutions(self, problem):
        return {problem["word"]}


class Broken:
    """Has a Config but only part of the protocol."""

    Config = EchoConfig

    def problems(self, split): ...
    def sample_train(self, num, rng): ...
    def prompt(self, problem): ...
    def reward(self, problem, completion): ...
    def solution_key(self, problem, completion): ...
'''

ENTRY_POINTS = """
[trafl.tasks]
echo = trafl_demo_plugin:Echo
broken = trafl_demo_plugin:Broken
gone = trafl_demo_plugin_missing:Task

[trafl.objectives]
my_trafl = trafl.objectives.trafl:TraFL
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch) -> Iterator[Path]:
    """A pip-installed plugin as pip leaves it: a package and its dist-info folder."""
    (tmp_path / "trafl_demo_plugin").mkdir()
    (tmp_path / "trafl_demo_plugin" / "__init__.py").write_text(PLUGIN)
    info = tmp_path / "trafl_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: trafl-demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("trafl_demo_plugin", None)


def test_an_installed_plugin_task_is_resolved_by_short_name(plugin):
    cls = TASKS.get("echo")
    assert cls.__module__ == "trafl_demo_plugin" and cls.__name__ == "Echo"
    cfg = load_config(TrainConfig, None, ["task=echo", "task.word=ok"])
    task = build_task(cfg.task)
    assert type(task) is cls and task.prompt(task.sample_train(1, random.Random(0))[0]) == "ok:"
    assert TASKS.plugins()["echo"] == "trafl_demo_plugin:Echo"
    assert "echo" not in TASKS.names()  # names() are the built-ins


def test_an_objective_plugin_uses_the_same_mechanism(plugin):
    from trafl.objectives.trafl import TraFL

    assert OBJECTIVES.get("my_trafl") is TraFL
    cfg = load_config(TrainConfig, None, ["objective=my_trafl", "objective.beta=4"])
    assert cfg.objective.beta == 4.0
    assert ESTIMATORS.group == "trafl.estimators" and OBJECTIVES.group == "trafl.objectives"


def test_a_task_missing_protocol_methods_fails_when_the_config_is_read(plugin):
    expected = (
        "task 'broken' does not implement the Task protocol (trafl.tasks.base.Task): "
        "missing methods all_solutions, demonstration"
    )
    with pytest.raises(UserError) as info:
        TASKS.get("broken")
    assert str(info.value) == expected
    with pytest.raises(ValueError, match=r"^task.name: task 'trafl_demo_plugin:Broken' does not"):
        load_config(TrainConfig, None, ["task.name=trafl_demo_plugin:Broken"])


def test_the_command_line_prints_the_protocol_error_as_one_line(plugin, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "task=broken"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "trafl train: task.name: task 'broken' does not implement the Task protocol "
        "(trafl.tasks.base.Task): missing methods all_solutions, demonstration"
    ]


def test_unknown_names_list_plugins_and_broken_plugins_name_their_entry_point(plugin):
    with pytest.raises(UserError) as info:
        TASKS.get("ecco")
    message = str(info.value)
    assert "countdown" in message and "echo" in message and "'trafl.tasks'" in message
    with pytest.raises(
        UserError, match=r"cannot load task plugin 'gone' \(trafl_demo_plugin_missing:Task"
    ):
        TASKS.get("gone")


def test_a_task_class_by_file_path(tmp_path):
    (tmp_path / "mytask.py").write_text(PLUGIN)
    cls = TASKS.get(f"{tmp_path / 'mytask.py'}:Echo")
    assert cls.__name__ == "Echo" and cls is TASKS.get(f"{tmp_path / 'mytask.py'}:Echo")
    with pytest.raises(UserError, match="cannot import task .*no such file"):
        TASKS.get(f"{tmp_path / 'nope.py'}:Echo")


def test_every_builtin_task_implements_the_protocol():
    assert required_methods(Task) == (
        "all_solutions", "demonstration", "problems", "prompt", "reward", "sample_train",
        "solution_key",
    )  # fmt: skip
    for name in TASKS.names():
        TASKS.check(TASKS.get(name), name)


def test_a_registry_without_a_protocol_checks_nothing():
    reg = Registry("widget")
    reg.register("w")(object)
    assert reg.get("w") is object and reg.group == "trafl.widgets"
    assert Registry("model type").group == "trafl.model_types"
    with pytest.raises(UserError, match="unknown widget 'v'; valid: w "):
        reg.get("v")


def test_list_shows_plugins_and_why_one_is_unusable(plugin, capsys):
    main(["list", "tasks"])
    rows = {
        line.split()[0]: " ".join(line.split()[1:])
        for line in capsys.readouterr().out.splitlines()[1:]
        if line
    }
    assert (
        rows["echo"] == "plugin trafl_demo_plugin:Echo: Repeat a word: the smallest complete task"
    )
    assert rows["broken"].startswith(
        "plugin trafl_demo_plugin:Broken, unusable: task 'broken' does not"
    )
    assert rows["gone"].startswith("plugin trafl_demo_plugin_missing:Task, unusable: cannot load")
