"""``task=dataset``: rows of a file as problems, scored by TRL-style reward functions, with the
arguments TRL passes, a held-out split, one-line errors, and per-component logging in training."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest
import torch

from trafl.commands.train import TrainConfig, Trainer
from trafl.core.config import from_dict
from trafl.core.config_files import load_config
from trafl.core.errors import UserError
from trafl.models import CharTokenizer
from trafl.run.rollouts import score_all
from trafl.tasks import TASKS, build_task
from trafl.tasks.dataset import DatasetTask
from trafl.tasks.trl_rewards import RewardError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "dataset_task"
HERE = "tests.test_dataset_task"
CALLS: list[dict] = []  # what `recording` received


def recording(completions, **kwargs):
    CALLS.append({"completions": completions, **kwargs})
    return [float(len(c)) for c in completions]


def says_yes(completions, solution, **kwargs):
    return [1.0 if c.strip() == s else 0.0 for c, s in zip(completions, solution, strict=True)]


def half_none(completions, **kwargs):
    return [None if i % 2 else 2.0 for i in range(len(completions))]


def raises(completions, **kwargs):
    raise KeyError("boom")


def too_short(completions, **kwargs):
    return [1.0]


def strict(completions, solution):  # no **kwargs: gets only what it names
    return [0.5] * len(completions)


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rows(n: int = 20) -> list[dict]:
    return [{"prompt": f"q{i}", "solution": str(i), "level": i % 3} for i in range(n)]


def task(path: Path, *rewards: str, **cfg) -> DatasetTask:
    specs = [f"{HERE}:{r}" for r in rewards]
    return build_task(
        from_dict(TASKS.get("dataset").Config, {"path": str(path), "rewards": specs, **cfg})
    )


def test_weighted_total_and_components_of_two_rewards(tmp_path):
    t = task(
        write_rows(tmp_path / "d.jsonl", rows()), "says_yes", "recording", reward_weights=[2.0, 0.5]
    )
    probs = [
        {"prompt": "q1", "solution": "1", "level": 1},
        {"prompt": "q2", "solution": "2", "level": 2},
    ]
    scores = t.score(probs, ["1", "wrong"])
    assert scores == [
        {"reward": 2.0 * 1.0 + 0.5 * 1.0, "says_yes": 1.0, "recording": 1.0},
        {"reward": 2.0 * 0.0 + 0.5 * 5.0, "says_yes": 0.0, "recording": 5.0},
    ]
    assert t.reward(probs[0], "1") == 2.5


def test_rewards_receive_prompts_completions_and_every_column_by_name(tmp_path):
    data = [{"prompt": "a", "solution": "1", "completion": "ref", "extra": [1, 2]}] * 10
    t = task(write_rows(tmp_path / "d.jsonl", data), "recording", test_fraction=0.0)
    CALLS.clear()
    t.score(t.problems("train")[:2], ["x", "yy"])
    # TRL's _calculate_rewards: every column but prompt / completion / completion_ids
    assert CALLS == [
        {
            "prompts": ["a", "a"],
            "completions": ["x", "yy"],
            "solution": ["1", "1"],
            "extra": [[1, 2], [1, 2]],
        }
    ]


def test_a_function_without_kwargs_gets_only_what_it_names(tmp_path):
    t = task(write_rows(tmp_path / "d.jsonl", rows()), "strict")
    assert t.score(t.problems("test"), ["a", "b"]) == [{"reward": 0.5, "strict": 0.5}] * 2


def test_none_adds_nothing_to_the_total_as_trl_nansum(tmp_path):
    t = task(write_rows(tmp_path / "d.jsonl", rows()), "half_none", "says_yes")
    probs = t.problems("train")[:2]
    scores = t.score(probs, [probs[0]["solution"], probs[1]["solution"]])
    assert [s["reward"] for s in scores] == [3.0, 1.0]
    assert [s["half_none"] for s in scores] == [2.0, 0.0]


def test_conversational_prompts_and_system_prompt(tmp_path):
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    data = [{"prompt": conv, "solution": "4"}] * 4
    t = task(
        write_rows(tmp_path / "d.jsonl", data), "recording", system_prompt="SYS", test_fraction=0.25
    )
    p = t.problems("test")[0]
    assert t.prompt(p) == "SYS\n\nBe brief.\n\n2+2?"
    CALLS.clear()
    t.score([p], ["4"])
    assert CALLS[0]["completions"] == [[{"role": "assistant", "content": "4"}]]
    assert CALLS[0]["prompts"] == [conv]


def test_held_out_split_is_a_seeded_tenth_never_trained_on(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", rows(20))
    t = task(path, "says_yes")
    test = [p["prompt"] for p in t.problems("test")]
    train = {p["prompt"] for p in t.problems("train")}
    assert len(test) == 2 and len(train) == 18 and not train & set(test)
    assert test == [p["prompt"] for p in task(path, "says_yes").problems("test")]  # fixed
    assert test != [p["prompt"] for p in task(path, "says_yes", split_seed=1).problems("test")]
    drawn = {p["prompt"] for p in t.sample_train(200, random.Random(0))}
    assert drawn <= train
    held = write_rows(tmp_path / "t.jsonl", rows(3))
    t2 = task(path, "says_yes", test_path=str(held))
    assert len(t2.problems("train")) == 20 and len(t2.problems("test")) == 3
    with pytest.raises(UserError, match="no test split.*task.test_fraction in"):
        task(path, "says_yes", test_fraction=0.0).problems("test")


def test_json_and_csv_read_alike(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps(rows(10)))
    (tmp_path / "d.csv").write_text(
        "prompt,solution,level\n" + "".join(f"q{i},{i},{i % 3}\n" for i in range(10))
    )
    a, b = task(tmp_path / "d.json", "says_yes"), task(tmp_path / "d.csv", "says_yes")
    assert [p["prompt"] for p in a.problems("train")] == [p["prompt"] for p in b.problems("train")]
    assert b.problems("train")[0]["level"] == "0"  # CSV values stay strings


def test_a_source_that_is_not_a_file_goes_to_the_hub(tmp_path, monkeypatch):
    seen = []

    def fake_hub(dataset, split, subset, task):
        seen.append((dataset, split, subset))
        return rows(10)

    monkeypatch.setattr("trafl.tasks.dataset.read_hub", fake_hub)
    task(Path("someone/maths"), "says_yes", subset="easy")
    assert seen == [("someone/maths", "train", "easy")]


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"rewards": []}, "task.rewards is empty"),
        ({"rewards": [f"{HERE}:nope"]}, "cannot import reward 'tests.test_dataset_task:nope'"),
        ({"rewards": ["no_such_module_x:f"]}, "No module named 'no_such_module_x'"),
        ({"rewards": [f"{HERE}:says_yes"], "prompt_column": "question"}, "no column 'question'"),
        ({"rewards": [f"{HERE}:rows"]}, "takes no 'completions' argument"),
        ({"rewards": [f"{HERE}:recording", f"{HERE}:recording"]}, "'recording' is used twice"),
        ({"rewards": [f"{HERE}:says_yes"], "reward_weights": [1.0, 2.0]}, "1 rewards"),
        ({"rewards": [f"{HERE}:says_yes"], "path": "x.parquet"}, "does not exist"),
    ],
)
def test_build_errors_are_one_line(tmp_path, cfg, message):
    path = write_rows(tmp_path / "d.jsonl", rows())
    with pytest.raises(ValueError, match=message) as info:
        build_task(from_dict(TASKS.get("dataset").Config, {"path": str(path), **cfg}))
    assert "\n" not in str(info.value)


def test_a_required_column_the_data_lacks_fails_at_build(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [{"prompt": "q", "answer": "1"}] * 10)
    with pytest.raises(
        UserError, match=r"says_yes requires the column solution, .* its columns: prompt, answer"
    ):
        task(path, "says_yes")


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    for name in ("pyarrow", "pyarrow.parquet"):  # as on a machine without the data extra
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: ImportError
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    with pytest.raises(UserError, match=r"pip install 'trafl\[data\]'"):
        task(tmp_path / "d.parquet", "says_yes")


def test_a_failing_reward_names_itself_and_the_trainer_counts_it(tmp_path):
    t = task(write_rows(tmp_path / "d.jsonl", rows()), "says_yes", "raises")
    probs = t.problems("train")[:3]
    with pytest.raises(
        RewardError, match=r"^reward tests.test_dataset_task:raises raised KeyError: 'boom'$"
    ):
        t.score(probs, ["a", "b", "c"])
    scores, errors = score_all(t, probs, ["a", "b", "c"])  # what rollouts do
    assert (
        scores == [{"reward": 0.0}] * 3
        and len(errors) == 3
        and "raises raised KeyError" in errors[0]
    )
    short = task(write_rows(tmp_path / "d.jsonl", rows()), "too_short")
    with pytest.raises(RewardError, match="too_short returned 1 values for 3 completions"):
        short.score(probs, ["a", "b", "c"])
    assert short.score(probs[:1], ["a"]) == [{"reward": 1.0, "too_short": 1.0}]  # one at a time


def test_solution_key_follows_a_reward_named_correct_else_the_total(tmp_path):
    t = task(write_rows(tmp_path / "d.jsonl", rows()), "says_yes")
    p = t.problems("train")[0]
    assert t.solution_key(p, f"  {p['solution']} ") == p["solution"]
    assert t.solution_key(p, "nope") is None and t.all_solutions(p) is None


def _example():
    spec = importlib.util.spec_from_file_location("dataset_task_example", EXAMPLE / "train.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_example_data_fits_the_base_tokenizer_and_its_solutions_score(tmp_path):
    example = _example()
    data = example.make_rows(50)
    alphabet = CharTokenizer.load(ROOT / "models" / "countdown-base" / "tokenizer.json")
    for row in data:
        alphabet.encode(row["prompt"])  # raises on a character the base does not know
    t = build_task(from_dict(DatasetTask.Config, {
        "path": str(write_rows(tmp_path / "d.jsonl", data)),
        "rewards": [f"{EXAMPLE / 'rewards.py'}:correct", f"{EXAMPLE / 'rewards.py'}:uses_numbers"],
        "reward_weights": [1.0, 0.2]}))  # fmt: skip
    p = {"prompt": "3 4 5 -> 17:", "nums": [3, 4, 5], "target": 17}
    assert t.score([p] * 3, ["3*4+5", "3+4+5", "2*4+9"]) == [
        {"reward": 1.2, "correct": 1.0, "uses_numbers": 1.0},
        {"reward": 0.2, "correct": 0.0, "uses_numbers": 1.0},
        {"reward": 0.0, "correct": 0.0, "uses_numbers": 0.0},
    ]


@pytest.fixture
def one_thread():
    """A 1.3M-parameter model gains nothing from a second thread, and on a shared machine the
    threads' synchronisation costs seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_example_trains_and_logs_each_component(tmp_path, one_thread):
    example = _example()
    data = write_rows(tmp_path / "d.jsonl", example.make_rows(40))
    args = example.command(data, tmp_path / "run", steps=1)[1:]
    small = ["rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.sampler.gen_length=8",
             "rollout.sampler.steps=4", "ckpt_every=0"]  # fmt: skip
    trainer = Trainer(load_config(TrainConfig, None, [*args, *small]))
    trainer.train()
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["rollout_reward_errors"] == 0
    assert row["reward"] == pytest.approx(
        1.0 * row["reward_correct"] + 0.2 * row["reward_uses_numbers"]
    )
