"""The benchmark scripts still run against the current API (at toy sizes; nothing is timed).

Speed is measured by the scripts themselves (benchmarks/RESULTS.md); these tests only keep
them working and check what must hold at any size: exact sampler modes replay exactly, and a
step's bookkeeping is consistent."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TOY = ["rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.sampler.gen_length=8",
       "rollout.sampler.steps=4"]  # fmt: skip


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name: str, args: list[str], monkeypatch) -> None:
    """Run a benchmark's command line in this process (as ``python benchmarks/NAME.py ARGS``
    from the repository root, without a new interpreter's imports)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", [f"benchmarks/{name}.py", *args])
    load_script(name).main()


@pytest.mark.parametrize("objective", ["trafl", "diffu_grpo"])
def test_step_time_measures_a_step(objective):
    result = load_script("step_time").measure(objective, 1, "cpu", TOY)
    assert result["step_s"] == pytest.approx(result["sample_s"] + result["update_s"])
    assert result["sample_s"] > 0 and result["update_s"] > 0
    assert result["peak_rss_mb"] >= result["rss_after_build_mb"] > 0
    assert result["inner_updates"] == (1 if objective == "trafl" else 12)
    # the split covers the whole step; the calls show which forwards ran
    assert sum(result["phases"].values()) == pytest.approx(result["step_s"], rel=0.02, abs=0.01)
    assert all(v >= 0 for v in result["phases"].values())
    calls, mu = result["calls"], result["inner_updates"]
    assert calls["sampling"] == calls["reward"] == 1
    assert calls["reference"] == mu  # one reference pass per inner update's masks
    assert calls["old"] == (0 if mu == 1 else mu)  # skipped when mu = 1
    assert calls["policy"] == calls["backward"] == calls["optimizer"] == mu
    assert calls["prompt_hidden"] == (mu if objective == "trafl" else 0)


def test_llada_cache_counts_forwards_and_flops(tmp_path, monkeypatch):
    path = ROOT / "benchmarks" / "llada_cache.py"
    spec = importlib.util.spec_from_file_location("llada_cache", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "llada_cache", bench)  # its dataclasses look it up
    spec.loader.exec_module(bench)
    shape = bench.Shape(layers=1, width=32, heads=2, mlp=64, vocab=64)
    model = bench.build_model(shape, "cpu", torch.float32, 10.0, 0)
    matrices = sum(p.numel() for p in model.parameters() if p.dim() == 2)
    assert matrices == shape.params_per_token() + shape.vocab * shape.width  # + the embedding
    llada_8b = bench.Shape(**bench.SHAPES["llada-8b"])
    total = llada_8b.params_per_token() + llada_8b.vocab * llada_8b.width
    assert total == pytest.approx(8.02e9, rel=1e-3)  # LLaDA-8B's parameter count
    out = tmp_path / "cache.json"
    toy = "--layers 1 --width 32 --heads 2 --mlp 64 --vocab 64 --prompt 6 --gen-length 16"
    argv = f"{toy} --block-length 8 --steps 8 --repeats 1 --out {out}".split()
    monkeypatch.setattr(sys, "argv", ["llada_cache.py", *argv])
    bench.main()
    result = json.loads(out.read_text())
    modes, t = result["modes"], 6 + 16
    assert set(modes) == set(bench.MODES)
    assert modes["plain"]["tokens_per_forward"] == [t] * 8
    # a full forward at each block start, then the window: the block (dual), or the block
    # and everything after it (prefix)
    assert modes["dual"]["tokens_per_forward"] == [t, 8, 8, 8] * 2
    assert modes["prefix"]["tokens_per_forward"] == [t, 16, 16, 16, t, 8, 8, 8]
    for r in modes.values():  # every forward attends to all t keys: FLOPs go with tokens
        assert r["arithmetic_speedup"] == pytest.approx(8 * t / sum(r["tokens_per_forward"]))
        assert r["share_of_limit"] == pytest.approx(r["speedup"] / r["arithmetic_speedup"])
        assert 0 < r["forward_s"] <= r["wall_s"]
    assert modes["plain"]["gflops"] == pytest.approx(shape.flops(1, t, t) * 8 / 1e9)
    assert {"full", "dual_window"} <= set(result["profile"])
    assert result["profile"]["dual_window"]["top_ops"]


def test_sampler_modes_exact_modes_replay_exactly(tmp_path, monkeypatch):
    out = tmp_path / "modes.json"
    args = [
        "--problems",
        "3",
        "--samples",
        "2",
        "--gen-length",
        "8",
        "--block-length",
        "4",
        "--steps",
        "8",
        "--out",
        str(out),
    ]
    run_script("sampler_modes", args, monkeypatch)
    modes = json.loads(out.read_text())["modes"]
    assert set(modes) == set(load_script("sampler_modes").MODES)
    for name in ("plain", "parallel_0.9", "parallel_0.7"):  # recorded log-probs are exact
        assert modes[name]["mean_abs_logp_gap_to_exact_replay"] == pytest.approx(0, abs=1e-5)
    assert modes["plain"]["speedup_vs_plain"] == 1.0
    assert modes["plain"]["pass_diff_vs_plain"]["pass@1"] == [0.0, 0.0, 0.0]
    assert modes["plain"]["denoiser_calls_per_batch"] == 8
    assert modes["parallel_0.7"]["denoiser_calls_per_batch"] <= 8


def test_mixed_lengths_rows_equal_one_batch_per_length(tmp_path, monkeypatch):
    out = tmp_path / "mixed.json"
    args = [
        "--problems",
        "3",
        "--samples",
        "2",
        "--lengths",
        "8",
        "12",
        "--batch-size",
        "4",
        "--repeats",
        "1",
        "--out",
        str(out),
    ]
    run_script("mixed_lengths", args, monkeypatch)
    result = json.loads(out.read_text())["result"]
    assert result["rows_identical"] == 1.0  # same per-row noise: the same completions
    # 6 rows per length in micro-batches of 4: lengths 8 and 12 at steps L/2 -> 4 + 6 calls
    # per batch of one length; mixed batches run 6 calls each (their longest row)
    assert result["denoiser_calls_separate"] == 2 * 4 + 2 * 6
    assert result["denoiser_calls_mixed"] == 3 * 6
    for per in result["per_length"].values():
        assert per["mean_reward_separate"] == per["mean_reward_mixed"]


def test_sampler_ab_compares_a_revision_with_the_working_tree():
    args = [
        "--rev",
        "HEAD",
        "--problems",
        "2",
        "--samples",
        "1",
        "--modes",
        "none",
        "--rounds",
        "1",
    ]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sampler_ab.py"), *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    unchanged = (
        subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", "src/trafl/sampling/sampler.py"], cwd=ROOT
        ).returncode
        == 0
    )
    if unchanged:  # (a clean checkout, as in CI): HEAD's sampler is the working tree's
        assert "identical completions: True" in done.stdout
    else:
        assert "identical completions:" in done.stdout


def test_prompt_hidden_encodes_each_prompt_once_loss_unchanged(tmp_path, monkeypatch):
    """The redundancy step_time's split showed: TraFL's log Z input encoded every row's prompt,
    G copies per group. Encoding each distinct prompt once leaves the update bit for bit."""
    from trafl.commands import train as train_module
    from trafl.commands.train import TrainConfig, Trainer
    from trafl.core.config_files import load_config

    def run(dedup: bool) -> tuple[list[int], dict, list[torch.Tensor]]:
        cfg = load_config(
            TrainConfig,
            None,
            ["objective.name=trafl", f"out_dir={tmp_path / str(dedup)}", "ckpt_every=0",
             "save_completions_every=0", "micro_batch_groups=1", *TOY[:1],
             "rollout.group_size=4", *TOY[2:]],
        )  # fmt: skip
        trainer = Trainer(cfg)
        if not dedup:  # the previous code: every row's prompt through the policy
            monkeypatch.setattr(
                trainer,
                "prompt_hidden",
                lambda batch, idx: train_module.prompt_hidden(
                    trainer.policy, batch.prompt_ids[idx], batch.prompt_mask[idx]
                ),
            )
        rows: list[int] = []
        encode = train_module.prompt_hidden
        monkeypatch.setattr(
            train_module,
            "prompt_hidden",
            lambda m, ids, mask: rows.append(len(ids)) or encode(m, ids, mask),
        )
        metrics = trainer.update(trainer.rollouts())
        monkeypatch.setattr(train_module, "prompt_hidden", encode)
        params = [p.detach().clone() for p in trainer.optimizer.param_groups[0]["params"]]
        params += [p.detach().clone() for p in trainer.objective.parameters()]
        return rows, metrics, params

    rows_once, once, params_once = run(dedup=True)
    rows_all, every, params_all = run(dedup=False)
    assert rows_all == [4, 4] and rows_once == [1, 1]  # two micro-batches of one group of 4
    assert once["loss"] == every["loss"]
    assert all(torch.equal(a, b) for a, b in zip(params_once, params_all, strict=True))


@pytest.mark.slow
def test_suite_threads_times_a_test_at_each_setting(tmp_path, monkeypatch):
    """Two nested pytest runs (a test of a few milliseconds): each setting is timed, the thread
    count reaches the run, and no busy loop outlives its run."""
    bench = load_script("suite_threads")
    started, envs = [], []
    popen, run = subprocess.Popen, subprocess.run

    def keep(cmd, *args, **kwargs):  # the module's own: other callers pass through
        proc = popen(cmd, *args, **kwargs)
        if cmd[-1:] == [bench.LOOP]:
            started.append(proc)
        return proc

    def seen(cmd, *args, **kwargs):
        if "pytest" in cmd:
            envs.append(kwargs["env"]["OMP_NUM_THREADS"])
        return run(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", keep)
    monkeypatch.setattr(subprocess, "run", seen)
    monkeypatch.setattr(sys, "argv", ["suite_threads.py", "--test",
                                      "tests/test_eval_metrics.py::test_power_of_two_ks",
                                      "--threads", "1", "2", "--hogs", "1",
                                      "--out", str(tmp_path / "t.json")])  # fmt: skip
    bench.main()
    result = json.loads((tmp_path / "t.json").read_text())
    assert [(r["hogs"], r["threads"]) for r in result["rows"]] == [(1, 1), (1, 2)]
    # junit's time has a resolution of 1 ms: a test this quick may read 0 on a fast machine
    assert all(0 <= r["tests_s"]["median"] <= r["process_s"]["median"] for r in result["rows"])
    assert envs == ["1", "2"]
    assert len(started) == 2 and all(loop.poll() is not None for loop in started)


def test_suite_threads_refuses_a_report_without_a_test_case(monkeypatch):
    """A run that passes but whose report holds no case (a test id that ran nothing) stops the
    benchmark with one line, instead of timing it as 0 s."""
    bench = load_script("suite_threads")

    def empty(cmd, *args, **kwargs):
        report = next(c for c in cmd if c.startswith("--junitxml=")).split("=", 1)[1]
        Path(report).write_text('<testsuites><testsuite name="pytest" tests="0"/></testsuites>')
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", empty)
    with pytest.raises(SystemExit, match="holds no test case at 1 thread"):
        bench.timed_run("tests/x.py::y", 1, 0)
