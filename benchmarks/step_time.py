"""Wall time and peak memory per RL step of every registered objective.

    .venv/bin/python benchmarks/step_time.py [--steps 3] [--device cpu|cuda] [--out FILE]
    .venv/bin/python benchmarks/step_time.py --only trafl diffu_grpo --set rollout.sampler.gen_length=32

Each objective runs in a fresh process (so its peak memory is its own) for ``--steps`` training
steps of the default recipe (the shipped Countdown base, 16 prompts x 8 rollouts, gen_length
16, 8 sampling steps, its own estimator and inner updates mu) after one warm-up step.
Reported: seconds per step split into rollout sampling and the update (estimator forwards,
backward and optimiser, times mu), and peak memory: on CUDA the peak allocated by torch during
the measured steps; on CPU the process's peak resident set (``ru_maxrss``) and the resident set
after the model and trainer were built, whose difference is what the steps themselves need.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch

from trafl.commands.train import TrainConfig, Trainer
from trafl.core.config_files import load_config
from trafl.objectives import OBJECTIVES


def rss_mb() -> float:
    """This process's current resident set in MiB (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def measure(objective: str, steps: int, device: str, extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = load_config(
            TrainConfig,
            None,
            [
                f"objective.name={objective}",
                f"out_dir={out_dir}",
                f"device={device}",
                "save_completions_every=0",
                "ckpt_every=0",
                *extra,
            ],
        )
        trainer = Trainer(cfg)
        sample_s, update_s = [], []
        built_mb = rss_mb()
        for i in range(steps + 1):
            if i == 1 and device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            step = trainer.rollouts()
            sync(device)
            t1 = time.perf_counter()
            trainer.update(step)
            sync(device)
            t2 = time.perf_counter()
            if i > 0:  # the first step warms caches and allocators
                sample_s.append(t1 - t0)
                update_s.append(t2 - t1)
    n = len(sample_s)
    result = {
        "inner_updates": trainer.mu,
        "estimator": cfg.estimator.name,
        "sample_s": sum(sample_s) / n,
        "update_s": sum(update_s) / n,
        "step_s": (sum(sample_s) + sum(update_s)) / n,
        "rss_after_build_mb": round(built_mb, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if device == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _child(queue, *args) -> None:
    queue.put(measure(*args))


def isolated(*args) -> dict[str, float]:
    """``measure`` in a fresh spawned process: peak memory is per objective."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, *args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", nargs="+", choices=OBJECTIVES.names(), help="objectives")
    parser.add_argument("--set", nargs="*", default=[], help="train config overrides for all")
    parser.add_argument("--out", default="benchmarks/step_time.json")
    args = parser.parse_args()
    results = {}
    for name in args.only or OBJECTIVES.names():
        results[name] = r = isolated(name, args.steps, args.device, list(args.set))
        mem = (
            f"peak cuda {r['peak_cuda_mb']:.0f} MiB"
            if "peak_cuda_mb" in r
            else f"peak rss {r['peak_rss_mb']:.0f} MiB (after build {r['rss_after_build_mb']:.0f})"
        )
        print(
            f"{name:12s} {r['estimator']:11s} mu={r['inner_updates']:<3d} "
            f"step {r['step_s']:.2f}s = sample {r['sample_s']:.2f}s + update {r['update_s']:.2f}s, "
            f"{mem}",
            flush=True,
        )
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "steps_measured": args.steps,
        "device": args.device,
        "overrides": args.set,
    }
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
