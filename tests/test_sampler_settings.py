"""One sampler setting: rollouts, the in-training evaluation, ``trafl eval`` and ``trafl sample``
decode a given length with the same schedule (issue 15).

A spy on the sampler's planning (``row_plans``, which every call of ``sample`` goes through)
records the config each path actually sampled with and the reveal schedule of each row."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_tiny
from trafl.commands.cli import main
from trafl.commands.eval import EvalConfig, evaluate
from trafl.commands.sample import SampleConfig, run_sample
from trafl.commands.train import TrainConfig, Trainer
from trafl.core.config import to_dict
from trafl.core.config_files import load_config
from trafl.models import load_model
from trafl.run.rollouts import rollout_task, subset
from trafl.sampling import SamplerConfig, at_length, row_plans
from trafl.sampling import sampler as sampler_module
from trafl.tasks import TASKS
from trafl.tasks.countdown import CountdownConfig

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "train_trafl.yaml"
# a test split of 8 problems (drawing countdown's 500 solves each number set: many seconds)
TASK = {"name": "countdown", "num_test": 8}
SMALL = ["task.num_test=8", "rollout.prompts_per_step=2", "rollout.group_size=2",
         "eval_problems=2", "device=cpu"]  # fmt: skip
# beside the shipped recipe (one block), blocks with nucleus sampling and both fast modes
BLOCKS_AND_FAST = ["rollout.sampler.block_length=8", "rollout.sampler.top_p=0.9",
                   "rollout.sampler.parallel_threshold=0.6", "rollout.sampler.cache=dual",
                   "rollout.sampler.cache_refresh_every=2"]  # fmt: skip
NOT_SCHEDULE = ("temperature", "batch_size")  # how hot, how many rows per call: not the schedule


class Spy:
    """Records (the config, the row plans) of every ``sample`` call."""

    def __init__(self) -> None:
        self.calls: list[tuple[SamplerConfig, list[Any]]] = []

    def __call__(self, config: SamplerConfig, lengths: Any, n: int) -> list[Any]:
        plans = row_plans(config, lengths, n)
        self.calls.append((config, plans))
        return plans

    def take(self) -> list[tuple[SamplerConfig, list[Any]]]:
        calls, self.calls = self.calls, []
        return calls


def schedules(calls: list[tuple[SamplerConfig, list[Any]]]) -> set[tuple]:
    """What decides how each row was decoded: its config at its length (as the sampler derives
    it) less temperature and batch size, its block length and the reveals per step."""
    out = set()
    for config, plans in calls:
        for plan in plans:
            row = asdict(at_length(config, plan.length))
            setting = tuple(sorted((k, v) for k, v in row.items() if k not in NOT_SCHEDULE))
            out.add((plan.length, plan.block, plan.schedule, setting))
    return out


def temperatures(calls: list[tuple[SamplerConfig, list[Any]]]) -> set[float]:
    return {config.temperature for config, _ in calls}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A small random denoiser: the schedule, not the model, is under test."""
    path = tmp_path_factory.mktemp("tiny") / "model"
    make_tiny(seed=3).save_pretrained(path)
    return path


@pytest.fixture
def spy(monkeypatch) -> Spy:
    recorder = Spy()
    monkeypatch.setattr(sampler_module, "row_plans", recorder)
    return recorder


def eval_config(model: Path, sampler: SamplerConfig, out: Path, *lengths: int) -> EvalConfig:
    return load_config(
        EvalConfig,
        None,
        {
            "model": str(model),
            "task": TASK,
            "num_problems": 2,
            "num_samples": 2,
            "gen_lengths": list(lengths),
            "sampler": to_dict(sampler),
            "bootstrap": 10,
            "heatmap_problems": 1,
            "out_dir": str(out),
            "device": "cpu",
        },
    )


@pytest.mark.parametrize("extra", [[], BLOCKS_AND_FAST], ids=["train_trafl.yaml", "blocks+fast"])
def test_the_four_paths_decode_the_rollout_length_with_one_schedule(tmp_path, tiny, spy, extra):
    cfg = load_config(
        TrainConfig, RECIPE, [f"model={tiny}", *SMALL, *extra, f"out_dir={tmp_path / 'run'}"]
    )
    rollout = cfg.rollout.sampler
    length = rollout.gen_length
    trainer = Trainer(cfg)

    trainer.rollouts()
    paths = {"rollouts": spy.take()}
    trainer.evaluate()
    paths["in-training evaluation"] = spy.take()
    evaluate(eval_config(tiny, rollout, tmp_path / "eval", length))
    paths["trafl eval"] = spy.take()
    run_sample(
        load_config(
            SampleConfig,
            None,
            {
                "model": str(tiny),
                "task": TASK,
                "num_problems": 2,
                "sampler": to_dict(rollout),
                "show": 0,
                "device": "cpu",
            },
        )
    )
    paths["trafl sample"] = spy.take()

    found = {name: schedules(calls) for name, calls in paths.items()}
    assert all(len(s) == 1 for s in found.values()), found  # every row alike within a path
    assert len(set.union(*found.values())) == 1, found  # and the same schedule on every path
    ((_, block, reveals, _),) = found["rollouts"]
    assert (block, reveals) == ((8, (2,) * 4) if extra else (16, (2,) * 8))  # 8 steps in all
    assert temperatures(paths["rollouts"]) == {0.9} == temperatures(paths["trafl sample"])
    assert temperatures(paths["in-training evaluation"]) == {0.0}  # greedy, the same schedule
    assert temperatures(paths["trafl eval"]) == {0.0, 0.9}  # its greedy pass and its samples


def test_a_shorter_length_is_decoded_alike_by_trafl_eval_and_a_mixed_length_batch(
    tmp_path, tiny, spy
):
    """``trafl eval`` at L and a row of length L in a rollout batch: one rule (at_length)."""
    cfg = load_config(TrainConfig, RECIPE, [*SMALL, *BLOCKS_AND_FAST, "rollout.sampler.steps=16"])
    rollout = cfg.rollout.sampler  # 16 tokens in blocks of 8, 8 steps per block
    evaluate(eval_config(tiny, rollout, tmp_path / "eval", 8))
    in_eval = schedules(spy.take())
    task = TASKS.get("countdown")(CountdownConfig(num_test=8))
    problems = subset(task.problems("test"), 2)
    rollout_task(load_model(tiny), task, problems, 2, rollout, lengths=[8, 16, 8, 16])
    in_batch = {s for s in schedules(spy.take()) if s[0] == 8}
    assert in_eval == in_batch and len(in_eval) == 1
    ((_, block, reveals, setting),) = in_eval
    assert (block, len(reveals), dict(setting)["steps"]) == (8, 8, 8)  # steps per block kept


def test_top_p_and_the_fast_modes_set_on_trafl_eval_reach_the_sampler(tmp_path, tiny, spy):
    main(
        [
            "eval",
            f"model={tiny}",
            "task.num_test=8",
            "num_problems=2",
            "num_samples=2",
            "gen_lengths=[8,16]",
            "sampler.gen_length=16",
            "sampler.block_length=8",
            "sampler.steps=8",
            "sampler.top_p=0.8",
            "sampler.parallel_threshold=0.7",
            "sampler.cache=prefix",
            "bootstrap=10",
            "heatmap_problems=1",
            f"out_dir={tmp_path}",
            "device=cpu",
        ]
    )
    calls = spy.take()
    assert {c.gen_length for c, _ in calls} == {8, 16}
    for config, _ in calls:
        assert (config.block_length, config.top_p, config.parallel_threshold, config.cache) == (
            8,
            0.8,
            0.7,
            "prefix",
        )
        assert config.resolved_steps() == config.gen_length // 2  # 4 steps per block of 8
