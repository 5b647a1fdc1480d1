"""``trafl eval`` end to end on the shipped base with tiny n: a valid eval.json and plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trafl.commands.eval import EvalConfig, evaluate, resolve_model_path
from trafl.core.config import load_config

BASE = Path(__file__).resolve().parents[1] / "models" / "countdown-base"


def test_eval_writes_a_valid_eval_json_and_plots(tmp_path):
    cfg = load_config(EvalConfig, None, [f"model={BASE}", "num_problems=6", "num_samples=4",
                                         "gen_lengths=[16,24]", f"out_dir={tmp_path}",
                                         "bootstrap=50", "heatmap_problems=2", "device=cpu"])  # fmt: skip
    evaluate(cfg)
    result = json.loads((tmp_path / "eval.json").read_text())
    assert set(result["lengths"]) == {"16", "24"}
    for res in result["lengths"].values():
        assert set(res["pass_at_k"]) == {"1", "2", "4"}
        curve = [res["pass_at_k"][k]["mean"] for k in ("1", "2", "4")]
        assert curve == sorted(curve)  # pass@k never decreases in k
        for k in ("1", "2", "4"):
            lo, hi = res["pass_at_k"][k]["ci"]
            assert lo <= res["pass_at_k"][k]["mean"] <= hi
        assert res["pass_at_k"]["1"]["mean"] == pytest.approx(res["mean_reward"])
        assert 0 <= res["greedy_accuracy"] <= 1
        assert res["coverage"]["num_prompts"] == 6
        assert 0 <= res["locking"]["order_share_of_mode"] <= 1
    for name in ("pass_at_k.png", "coverage.png", "reveal_orders_L16.png", "reveal_orders_L24.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_model_path_resolution(tmp_path):
    assert resolve_model_path(str(BASE)) == BASE
    with pytest.raises(ValueError, match="neither a model folder nor a run folder"):
        resolve_model_path(str(tmp_path))


def test_correctness_is_the_correct_component_when_a_task_reports_one():
    """A weighted total (2 * correct + 0.5 * format) is not correctness: format-only rewards of
    1.0 must not count as solved."""
    import torch

    from trafl.run.rollouts import ScoredRollout, solved

    def scored(rewards, components):
        return ScoredRollout([], torch.zeros(3), None, [], torch.tensor(rewards), 0, components)  # type: ignore[arg-type]

    weighted = scored([1.0, 2.5, 0.5], {"correct": torch.tensor([0.0, 1.0, 0.0])})
    assert solved(weighted).tolist() == [False, True, False]
    plain = scored([1.0, 0.0, 0.9], {})
    assert solved(plain).tolist() == [True, False, False]
