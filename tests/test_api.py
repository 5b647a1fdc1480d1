"""The Python API: the same results as the commands, ready-made objects, callbacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

import trafl
from tests.conftest import make_tiny
from trafl.commands.sample import SampleConfig, run_sample
from trafl.tasks import TASKS

BASE = Path(__file__).resolve().parents[1] / "models" / "countdown-base"


def test_import_trafl_is_cheap_and_names_the_api():
    code = "import sys, trafl; print('torch' in sys.modules, sorted(trafl.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split(" ", 1)[0] == "False"  # torch loads on first use only
    assert callable(trafl.train) and callable(trafl.generate) and callable(trafl.evaluate)


def test_generate_matches_trafl_sample_at_temperature_zero(tmp_path):
    """The same problems decoded greedily by `trafl sample` and by trafl.generate."""
    output = tmp_path / "s.jsonl"
    cfg = SampleConfig(num_problems=2, output=str(output), device="cpu", show=0)
    cfg.model.path = str(BASE)
    run_sample(cfg)
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    model = trafl.load_model(BASE, device="cpu")
    texts = trafl.generate(model, [r["prompt"] for r in rows], sampler=cfg.sampler)
    assert texts == [r["completion"] for r in rows]


def test_train_with_a_ready_made_policy_and_task_and_a_callback(tmp_path):
    """The policy object given is the one trained; history, the callback and metrics.jsonl
    agree step by step."""
    model_dir = tmp_path / "tiny"
    make_tiny(seed=3).save_pretrained(model_dir)
    policy = trafl.load_model(model_dir, device="cpu")
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    task = TASKS.get("countdown")()
    seen: list[tuple[int, float]] = []
    result = trafl.train(
        model=str(model_dir),
        out_dir=str(tmp_path / "run"),
        steps=2,
        device="cpu",
        policy=policy,
        task=task,
        callbacks=[lambda step, m: seen.append((step, m["loss"]))],
        **{"rollout.prompts_per_step": 2, "rollout.group_size": 4},
    )
    assert result.policy is policy
    assert any(not torch.equal(before[k], v) for k, v in policy.state_dict().items())
    logged = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(h["step"], h["loss"]) for h in result.history] == seen
    assert [(r["step"], r["loss"]) for r in logged] == seen == [(1, seen[0][1]), (2, seen[1][1])]
    assert result.out_dir == tmp_path / "run"


def test_evaluate_returns_what_it_writes(tmp_path):
    out = tmp_path / "eval"
    report = trafl.evaluate(
        model=str(BASE),
        num_problems=3,
        num_samples=2,
        gen_lengths=[16],
        bootstrap=10,
        heatmap_problems=0,
        greedy=False,
        device="cpu",
        out_dir=str(out),
        **{"sampler.gen_length": 16, "sampler.steps": 8},
    )
    assert report == json.loads((out / "eval.json").read_text())
    assert report["num_problems"] == 3 and list(report["lengths"]) == ["16"]
