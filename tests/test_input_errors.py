"""Bad input is one line naming the file, key or record, exit code 2, before any work: range
checks on every count, corrupt models and data, unknown names, missing devices; user text is
never read as rich markup; a run whose rewards keep raising stops."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import make_tiny
from trafl.commands.cli import main
from trafl.commands.sample import SampleConfig, print_summary, summarize
from trafl.commands.train import TrainConfig
from trafl.core.batch import Rollout, Trajectory
from trafl.core.config import ConfigError
from trafl.core.config_files import load_config
from trafl.core.errors import RunStopped, UserError
from trafl.objectives import OBJECTIVES, build_objective
from trafl.run.rollouts import check_reward_errors, rollout_task
from trafl.sampling import SamplerConfig
from trafl.tasks import TASKS

GSM8K_ROW = '{"question": "What is 1+2?", "answer": "1+2=3\\n#### 3"}\n'


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "model"
    make_tiny().save_pretrained(path)
    return path


def fails_in_one_line(capsys, args: list[str]) -> str:
    """Run ``trafl ARGS``; assert exit code 2 and one stderr line without a traceback."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"trafl {args[0]}: ")
    return lines[0]


# ------------------------------------------------------------------ range checks


@pytest.mark.parametrize(
    "override",
    [
        "steps=0",
        "inner_updates=0",
        "inner_updates=-1",
        "micro_batch_groups=0",
        "log_every=0",
        "eval_problems=0",
        "ckpt_every=-1",
        "max_bad_steps=0",
        "save_completions_every=-1",
        "rollout.prompts_per_step=0",
        "rollout.group_size=0",
        "max_reward_error_rate=1.5",
    ],
)
def test_every_train_count_is_range_checked(capsys, override):
    key = override.partition("=")[0]
    line = fails_in_one_line(capsys, ["train", override])
    assert key in line and override.partition("=")[2] in line


@pytest.mark.parametrize(
    ("command", "override"),
    [
        ("pretrain", "steps=0"),
        ("pretrain", "batch_size=0"),
        ("pretrain", "log_every=0"),
        ("pretrain", "eval_problems=0"),
        ("pretrain", "completion_lengths=[]"),
        ("sample", "num_samples=0"),
        ("sample", "num_problems=0"),
        ("eval", "num_samples=0"),
        ("eval", "gen_lengths=[16,0]"),
        ("eval", "bootstrap=0"),
    ],
)
def test_other_commands_range_check_their_counts(capsys, command, override):
    assert override.partition("=")[0] in fails_in_one_line(capsys, [command, override])


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_group_size_one_is_refused_exactly_where_the_objective_is_blind_to_rewards(name):
    """With G = 1 a group-relative objective's prepared signal does not depend on the rewards
    (or it refuses the batch), so training would change nothing the reward asks for."""
    cfg = load_config(TrainConfig, None, [f"objective.name={name}"]).objective
    objective = build_objective(cfg, hidden_size=8)
    group = torch.arange(4)

    def signal(rewards: torch.Tensor) -> dict[str, torch.Tensor] | None:
        try:
            return objective.prepare(rewards, group, 1)
        except ValueError:
            return None

    a, b = signal(torch.tensor([0.0, 1.0, 0.0, 1.0])), signal(torch.tensor([1.0, 0.0, 1.0, 1.0]))
    blind = a is None or b is None or all(torch.equal(a[k], b[k]) for k in a)
    assert blind and type(objective).min_group_size(cfg) == 2
    with pytest.raises(ConfigError, match=rf"rollout.group_size must be >= 2 .*'{name}'"):
        load_config(TrainConfig, None, [f"objective.name={name}", "rollout.group_size=1"])


def test_trafl_on_raw_rewards_with_a_learned_log_z_may_use_groups_of_one():
    cfg = load_config(TrainConfig, None, ["objective.reward_norm=none", "rollout.group_size=1"])
    assert cfg.rollout.group_size == 1
    with pytest.raises(ConfigError, match="group_size must be >= 2"):  # vargrad: log Z = -score
        load_config(
            TrainConfig,
            None,
            ["objective.reward_norm=none", "objective.log_z=vargrad", "rollout.group_size=1"],
        )


# ------------------------------------------------------------------ models, data, names, devices


def test_missing_model_folder(capsys, tmp_path):
    line = fails_in_one_line(capsys, ["sample", f"model={tmp_path / 'nope'}", "device=cpu"])
    assert str(tmp_path / "nope") in line


@pytest.mark.parametrize(
    ("file", "content"),
    [
        ("config.json", b"{not json"),
        ("model.safetensors", b"garbage" * 20),
        ("model.safetensors", None),
        ("tokenizer.json", b'{"type": "ch'),
    ],
)
def test_corrupt_model_folder(capsys, tmp_path, tiny, file, content):
    model = tmp_path / "m"
    shutil.copytree(tiny, model)
    if content is None:
        (model / file).unlink()
    else:
        (model / file).write_bytes(content)
    line = fails_in_one_line(capsys, ["sample", f"model={model}", "device=cpu"])
    assert str(model) in line


def test_weights_that_do_not_fit_the_config(capsys, tmp_path):
    model = tmp_path / "m"
    make_tiny().save_pretrained(model)
    make_tiny(hidden_size=16, num_heads=2).save_pretrained(tmp_path / "other")
    shutil.copy(tmp_path / "other" / "model.safetensors", model / "model.safetensors")
    line = fails_in_one_line(capsys, ["sample", f"model={model}", "device=cpu"])
    assert str(model) in line and "size mismatch" in line


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (GSM8K_ROW.encode() + b'{"question": oops}\n', "line 2: not valid JSON"),
        (GSM8K_ROW.encode() + b"[1, 2]\n", "line 2: expected a JSON object"),
        (GSM8K_ROW.encode() + b'{"question": "caf\xe9"}\n', "not UTF-8 text: byte 0xe9 at offset"),
        (GSM8K_ROW.encode() + b'{"question": "no answer"}\n', "record 2 of 2 is malformed"),
    ],
)
def test_bad_data_file_fails_before_the_model_loads_and_leaves_no_run_folder(
    capsys, tmp_path, content, expected
):
    data = tmp_path / "train.jsonl"
    data.write_bytes(content)
    out = tmp_path / "run"
    line = fails_in_one_line(
        capsys,
        [
            "train",
            "task=gsm8k",
            f"task.train_path={data}",
            f"model={tmp_path / 'no-model'}",
            f"out_dir={out}",
            "device=cpu",
        ],
    )
    assert str(data) in line and expected in line  # the data, not the missing model
    assert not out.exists()


def test_eval_with_bad_data_leaves_no_eval_folder(capsys, tmp_path, tiny):
    data = tmp_path / "test.jsonl"
    data.write_bytes(b"\xff\xfe")
    out = tmp_path / "eval"
    line = fails_in_one_line(
        capsys,
        [
            "eval",
            f"model={tiny}",
            "task=gsm8k",
            f"task.path={data}",
            f"out_dir={out}",
            "device=cpu",
        ],
    )
    assert str(data) in line and "offset 0" in line
    assert not out.exists()


def test_unknown_names_list_the_valid_ones(capsys):
    line = fails_in_one_line(capsys, ["train", "objective=nope"])
    assert "objective.name" in line and "'nope'" in line and "diffu_grpo" in line
    line = fails_in_one_line(capsys, ["sample", "task=nope"])
    assert "task.name" in line and "countdown" in line


def test_a_device_that_is_not_there(capsys, tiny):
    line = fails_in_one_line(capsys, ["sample", f"model={tiny}", "device=cuda:99"])
    assert "'cuda:99'" in line
    assert "'tpu0'" in fails_in_one_line(capsys, ["sample", f"model={tiny}", "device=tpu0"])


def test_a_config_file_that_is_not_utf8_or_not_yaml(capsys, tmp_path):
    (tmp_path / "a.yaml").write_bytes(b"steps: 2\nseed: \xff\n")
    assert "a.yaml is not UTF-8" in fails_in_one_line(capsys, ["train", str(tmp_path / "a.yaml")])
    (tmp_path / "b.yaml").write_text("steps: [2\nseed: 1\n")
    assert "b.yaml is not valid YAML" in fails_in_one_line(
        capsys, ["train", str(tmp_path / "b.yaml")]
    )


def test_debug_shows_the_traceback(capsys, monkeypatch, tmp_path):
    with pytest.raises(UserError, match="no model at"):
        main(["sample", f"model={tmp_path / 'nope'}", "--debug"])
    monkeypatch.setenv("TRAFL_DEBUG", "1")
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        main(["train", "steps=0"])


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(cfg):
        raise ZeroDivisionError("a bug, not bad input")

    monkeypatch.setattr("trafl.commands.sample.run_sample", broken)
    with pytest.raises(ZeroDivisionError):
        main(["sample"])


# ------------------------------------------------------------------ task=NAME task.key=...


def test_task_shorthand_combines_with_task_keys(tmp_path):
    data = tmp_path / "test.jsonl"
    data.write_text(GSM8K_ROW)
    for args in (["task=gsm8k", f"task.path={data}"], [f"task.path={data}", "task=gsm8k"]):
        cfg = load_config(SampleConfig, None, args)
        assert (cfg.task.name, cfg.task.path) == ("gsm8k", str(data))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: countdown\n")
    cfg = load_config(SampleConfig, recipe, ["task=gsm8k", f"task.path={data}"])
    task = TASKS.get(cfg.task.name)(cfg.task)
    assert [p["answer"] for p in task.problems("test")] == ["3"]


# ------------------------------------------------------------------ user text is not markup


def test_problems_and_completions_print_literally(capsys):
    problems = [{"q": "[/b] and [bold]"}, {"q": "x"}]
    empty = torch.zeros(2, 1)
    scored = Rollout(
        empty,
        empty.bool(),
        empty.long(),
        Trajectory(empty.long(), empty, empty),
        problems=problems,
        texts=["ok [/INST] done", "[/b]"],
        rewards=torch.tensor([1.0, 0.0]),
        group=torch.arange(2),
    )
    cfg = SampleConfig(model="models/[/INST]", show=2)
    print_summary(scored, summarize(scored, 2, 1), cfg)
    err = capsys.readouterr().err
    for text in ("[/b] and [bold]", "ok [/INST] done", "'[/b]'", "models/[/INST]"):
        assert text in err


def test_pretrain_prints_its_config_literally(capsys, tmp_path, tiny):
    main(
        [
            "pretrain",
            f"init_from={tiny}",
            "init_from.response_prefix=[/INST]",
            "steps=1",
            "batch_size=2",
            "eval_every=0",
            "completion_lengths=[16]",
            "device=cpu",
            f"out_dir={tmp_path / 'run'}",
        ]
    )
    err = capsys.readouterr().err
    assert "response_prefix: '[/INST]'" in err
    assert "completion_lengths: [16]" in err


# ------------------------------------------------------------------ rewards that raise


class BrokenReward:
    """A task whose reward function always raises (a checker that is down)."""

    name = "broken"

    def prompt(self, problem: dict) -> str:
        return "1+1="

    def reward(self, problem: dict, completion: str) -> float:
        raise RuntimeError("checker is down")


def test_a_step_whose_rewards_all_raise_stops_the_run():
    sampler = SamplerConfig(gen_length=4, steps=4, temperature=1.0)
    scored = rollout_task(make_tiny(), BrokenReward(), [{}, {}], 2, sampler)  # type: ignore[arg-type]
    assert scored.num_reward_errors == 4 and "checker is down" in scored.reward_error
    with pytest.raises(RunStopped, match=r"step 3: 4 of 4 rewards raised .*checker is down"):
        check_reward_errors(scored.num_reward_errors, 4, 0.5, 3, scored.reward_error)
    check_reward_errors(2, 4, 0.5, 3)  # at the rate: goes on
    check_reward_errors(4, 4, 1.0, 3)  # 1.0: never stops
    assert TrainConfig().max_reward_error_rate == 0.5


def test_the_console_never_reads_user_text_as_markup_or_emoji():
    """Tables, rules and progress descriptions print text like ``[/INST]`` or ``:smile:``
    literally: rich would otherwise crash on a closing tag or drop or replace it."""
    from rich.table import Table

    from trafl.run.runtime import console, make_progress

    text = "[/INST] [/b] [red]x :smile:"
    with console.capture() as cap:
        console.print(text)
        table = Table(title=text)
        table.add_column(text)
        table.add_row(text)
        console.print(table)
        console.rule(text)
    assert cap.get().count(text) == 5
    with make_progress() as progress:  # must not raise MarkupError
        progress.add_task(text, total=1)


def test_an_unknown_command_is_one_line_with_exit_code_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["trian"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "'trian'" in err[0] and "train" in err[0]


def test_training_on_a_test_only_task_fails_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(["train", "task=humaneval", f"out_dir={out}", "device=cpu"])
    assert exc.value.code == 2 and "test set" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json"])
def test_a_model_file_of_the_wrong_json_shape_is_one_line(tmp_path, capsys, name):
    from tests.conftest import make_tiny

    make_tiny().save_pretrained(tmp_path / "m")
    (tmp_path / "m" / name).write_text("[]")
    with pytest.raises(SystemExit) as exc:
        main(["sample", f"model={tmp_path / 'm'}", "device=cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and name in err[0] and "not an object" in err[0]
