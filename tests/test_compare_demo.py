"""``trafl compare`` verdicts on hand-made evaluations, and the quick demo end to end."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from trafl.commands import demo
from trafl.commands.compare import CompareConfig, compare
from trafl.commands.demo import DemoConfig, run_demo
from trafl.evaluation.plots import frontier_point, plot_frontier
from trafl.evaluation.report import below_base, markdown_table, verdicts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import packs  # noqa: E402


def fake_eval(name: str, curve: dict[str, float]) -> dict:
    length = {
        "greedy_accuracy": 0.2,
        "mean_reward": curve["1"],
        "pass_at_k": {k: {"mean": v, "ci": [v - 0.05, v + 0.05]} for k, v in curve.items()},
        "coverage": {"mean_coverage": 0.3, "mean_distinct_correct": 1.0},
        "locking": {"mean_pairwise_rank_distance": 0.1},
    }
    return {"model_name": name, "lengths": {"16": length, "32": length}}


def test_verdicts_mark_exactly_the_cells_below_the_base(tmp_path):
    results = {
        "base": fake_eval("base", {"1": 0.2, "2": 0.3, "4": 0.5}),
        "keeper": fake_eval("keeper", {"1": 0.3, "2": 0.4, "4": 0.5}),
        "locker": fake_eval("locker", {"1": 0.4, "2": 0.45, "4": 0.45}),
    }
    cells = below_base(results, "base")
    assert cells == {"keeper": [], "locker": [("16", "4"), ("32", "4")]}
    text = verdicts(results, "base")
    assert "at or above base at every k" in text["keeper"]
    assert "falls below base at 2 point(s)" in text["locker"]
    table = markdown_table(results, "base")
    assert "0.450 ↓" in table and "0.500 ↓" not in table
    paths = []
    for name, res in results.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval.json").write_text(json.dumps(res))
        paths.append(str(tmp_path / name))
    summary = compare(CompareConfig(evals=paths, out_dir=str(tmp_path / "cmp")))
    assert summary["base"] == "base"
    assert summary["verdicts"] == text and summary["below_base"] == cells
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["verdicts"] == text
    for name in ("pass_at_k.png", "coverage_locking.png"):
        assert (tmp_path / "cmp" / name).stat().st_size > 1000
    page = (tmp_path / "cmp" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<table>" in page  # self-contained
    assert "(missing figure" not in page


def test_quick_demo_runs_end_to_end_and_reuses_finished_stages(
    tmp_path, tmp_path_factory, monkeypatch
):
    """Fixed pool, two checkpoints per method through the target instrument, the frontier,
    one verdict per method on its tilt; a second run reuses every stage."""
    cfg = DemoConfig(quick=True, out_dir=str(tmp_path), device="cpu")
    report = run_demo(cfg)
    text = report.read_text()
    assert "Quick mode" in text and "the first 8 test problems" in text
    assert "**trafl**: trained for b = " in text  # TraFL's default: b = 32 * (G-1)/G
    assert "**diffu_grpo**: no tilt target; the tilt that fits it best is" in text
    for method in ("trafl", "diffu_grpo"):
        assert (tmp_path / method / "model" / "config.json").is_file()
        first, last = (
            json.loads((tmp_path / method / folder / "eval.json").read_text())
            for folder in ("eval-1", "eval")
        )
        assert first["num_problems"] == last["num_problems"] == 8
        assert "target" in last["lengths"]["16"] and last["config"]["task"]["pool"] == 8
    b = json.loads((tmp_path / "trafl" / "eval" / "eval.json").read_text())
    assert b["lengths"]["16"]["target"]["b"] == pytest.approx(32 * 3 / 4)  # quick: G = 4
    assert (tmp_path / "compare" / "frontier.png").stat().st_size > 1000
    page = (tmp_path / "report.html").read_text()  # report.md as one page, figures inlined
    assert page.count("data:image/png;base64,") == 3 and "(missing figure" not in page
    stamp = (tmp_path / "trafl" / "eval" / "eval.json").stat().st_mtime
    run_demo(cfg)  # everything is reused
    assert (tmp_path / "trafl" / "eval" / "eval.json").stat().st_mtime == stamp
    assert Path(tmp_path / "compare" / "pass_at_k.png").is_file()
    resumes_from_its_pack(cfg, tmp_path, tmp_path_factory.mktemp("elsewhere"), monkeypatch)


def resumes_from_its_pack(cfg: DemoConfig, out: Path, elsewhere: Path, monkeypatch) -> None:
    """A result pack holds no weights: a demo continued from one (another machine, a later
    session) reuses its evaluations instead of training again, and writes the same report."""
    packs.pack(out, elsewhere / "demo.tgz")
    again = elsewhere / "again"
    packs.unpack(elsewhere / "demo.tgz", again)
    assert not list(again.rglob("*.safetensors"))

    def no_training(*args, **kwargs):
        raise AssertionError("a finished method was trained again")

    monkeypatch.setattr(demo, "train", no_training)
    monkeypatch.setattr(demo, "evaluate", no_training)
    report = run_demo(replace(cfg, out_dir=str(again)))
    assert report.read_text() == (out / "report.md").read_text()


@pytest.mark.parametrize(
    "method, expected",
    [("trafl", [100, 200, 300]), ("diffu_grpo", [33, 66, 99, 100])],
)
def test_the_demo_evaluates_its_schedule_not_where_a_run_resumed(
    tmp_path, monkeypatch, method, expected
):
    """A demo run stopped by a signal at step 42 kept checkpoint-42 to resume from; only the
    ``points`` scheduled checkpoints are evaluated, in order of step, and the final model as
    the last point (100 steps checkpointed every 33: no checkpoint-100, the model is step 100)."""
    cfg = DemoConfig(points=3, steps=300, reuse_steps=100)  # d1 reuses batches: reuse_steps
    run_dir = tmp_path / method
    for step in (42, *expected[:-1]):
        (run_dir / f"checkpoint-{step}" / "model").mkdir(parents=True)
    (run_dir / "model").mkdir()
    (run_dir / "model" / "config.json").write_text("{}")  # finished: no training
    seen = []

    def recorded(cfg, model, out, demo=None):
        seen.append((out.name, Path(model.path)))
        return out / "eval.json"

    monkeypatch.setattr(demo, "stage_eval", recorded)
    demo.method_series(cfg, method, tmp_path)
    folders = [f"eval-{s}" for s in expected[:-1]] + ["eval"]
    models = [run_dir / f"checkpoint-{s}" / "model" for s in expected[:-1]] + [run_dir / "model"]
    assert seen == list(zip(folders, models, strict=True))


def test_a_run_folder_with_other_settings_is_refused_not_mixed_in(tmp_path):
    """A demo continued with another budget (steps 60 -> 90) would reuse or resume a run of
    the old one: refused with the settings that differ; out_dir and device may differ."""
    import yaml

    from trafl.core.config import to_dict
    from trafl.core.errors import UserError

    cfg = DemoConfig(points=3)
    (tmp_path / "trafl").mkdir()
    old = demo.train_config(replace(cfg, steps=60), "trafl", tmp_path / "elsewhere")
    (tmp_path / "trafl" / "config.yaml").write_text(yaml.safe_dump(to_dict(old)))
    with pytest.raises(
        UserError, match=r"other settings \(ckpt_every: 20 -> 30, steps: 60 -> 90\)"
    ):
        demo.method_series(cfg, "trafl", tmp_path)


def test_an_evaluation_with_other_settings_is_refused_not_reused(tmp_path):
    """A demo found eval.json and reused it whatever it had been run with: a point evaluated
    with 32 samples would have entered a report of 64. Now the settings in eval.json must
    match what the demo would run, except where it ran (a pack moved to another folder: the
    out_dir, the target's base folder and a point's model path differ)."""
    from trafl.core.config import to_dict
    from trafl.core.config_files import save_config
    from trafl.core.errors import UserError
    from trafl.models import ModelConfig

    cfg = DemoConfig(eval_samples=32)

    def saved(folder: Path, model: str, demo_dir: Path | None) -> Path:
        out = folder / "eval"
        settings = demo.eval_config(cfg, ModelConfig(path=model), out, demo_dir)
        save_config(settings, out / "eval_config.yaml")
        (out / "eval.json").write_text(json.dumps({"config": to_dict(settings)}))
        return out

    packed = saved(tmp_path / "then" / "trafl", "then/trafl/model", tmp_path / "then")
    here = tmp_path / "now" / "trafl" / "eval"
    here.parent.parent.mkdir()
    packed.parent.rename(here.parent)  # unpacked elsewhere: every path differs
    point = ModelConfig(path=str(here.parent / "model"))
    assert demo.stage_eval(cfg, point, here, tmp_path / "now") == here / "eval.json"
    with pytest.raises(UserError, match=r"other settings \(num_samples: 32 -> 64\)"):
        demo.stage_eval(replace(cfg, eval_samples=64), point, here, tmp_path / "now")
    # what eval.json was made with decides, not a yaml a later, unfinished `trafl eval` wrote
    save_config(
        demo.eval_config(replace(cfg, eval_samples=64), point, here, None),
        here / "eval_config.yaml",
    )
    assert demo.stage_eval(cfg, point, here, tmp_path / "now") == here / "eval.json"
    (here / "eval.json").write_text("{}")  # an eval.json without its config: the yaml's
    with pytest.raises(UserError, match="num_samples: 64 -> 32"):
        demo.stage_eval(cfg, point, here, tmp_path / "now")

    base = saved(tmp_path / "b", "models/countdown-base", None)  # the base's path is its identity
    assert demo.stage_eval(cfg, cfg.base, base) == base / "eval.json"
    with pytest.raises(UserError, match=r"model.path: 'models/countdown-base' -> 'other'"):
        demo.stage_eval(cfg, ModelConfig(path="other"), base)


def test_a_cut_short_eval_json_is_an_error_naming_it(tmp_path):
    """eval.json is written whole or not at all now; one cut short by an older version (or a
    full disk) is named, with what to do, where it was a JSONDecodeError traceback."""
    from trafl.commands.compare import load_eval
    from trafl.core.errors import UserError

    (tmp_path / "eval.json").write_text('{"lengths": {"16": {"pass_at')
    with pytest.raises(UserError, match=r"eval.json is not a whole eval.json .*delete it"):
        load_eval(str(tmp_path))


def test_a_finished_methods_evaluations_are_checked_too(tmp_path, monkeypatch):
    """A method whose every point is evaluated is not evaluated again, but its points are
    still compared: the target's K mask draws (balance_masks) are not in the base's settings,
    so only this check sees a demo continued with another K."""
    from trafl.core.config import to_dict
    from trafl.core.errors import UserError

    cfg = DemoConfig(points=2, steps=4)
    for folder, model in demo.evaluation_points(cfg, "trafl", tmp_path / "trafl"):
        settings = demo.eval_config(
            cfg, replace(cfg.base, path=str(model)), tmp_path / "trafl" / folder, tmp_path
        )
        Path(settings.out_dir).mkdir(parents=True)
        (Path(settings.out_dir) / "eval.json").write_text(json.dumps({"config": to_dict(settings)}))
    monkeypatch.setattr(demo, "train", lambda *a: pytest.fail("trained a finished method"))
    assert len(demo.method_series(cfg, "trafl", tmp_path)) == 2
    with pytest.raises(UserError, match=r"eval-2 holds .*balance_masks: 2 -> 4"):
        demo.method_series(replace(cfg, balance_masks=4), "trafl", tmp_path)


def test_a_consistent_drop_is_reported_as_significant():
    base = fake_eval("base", {"1": 0.5, "2": 0.6, "4": 0.7})
    worse = fake_eval("worse", {"1": 0.4, "2": 0.5, "4": 0.6})
    for res, counts in ((base, [2] * 40), (worse, [1] * 40)):
        res["num_samples"] = 4
        for length in res["lengths"].values():
            length["correct_counts"] = counts
    text = verdicts({"base": base, "worse": worse}, "base")["worse"]
    assert "with a 95 % paired-bootstrap interval of the difference below 0" in text


def test_the_frontier_reads_the_first_length_of_a_multi_length_evaluation(tmp_path):
    """The reproduction's demo evaluates at L = 16, 24, 32 (it crashed unpacking one length):
    the frontier is drawn at the first, and its points are that length's numbers."""

    def at(p1: float, pn: float, distinct: float) -> dict:
        return {
            "pass_at_k": {"1": {"mean": p1}, "64": {"mean": pn}},
            "coverage_at_k": {"distinct": {"64": distinct}},
        }

    def result(shift: float) -> dict:
        lengths = {
            "16": at(0.1 + shift, 0.6, 1.5),
            "24": at(0.9, 0.9, 9.0),
            "32": at(0.8, 0.8, 8.0),
        }
        return {"num_samples": 64, "lengths": lengths}

    assert frontier_point(result(0.05)) == (pytest.approx(0.15), 0.6, 1.5)
    plot_frontier(result(0.0), {"trafl": [result(0.05), result(0.1)]}, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
