"""Wall time per RL step of every registered objective, on the shipped Countdown base model.

    .venv/bin/python benchmarks/step_time.py [--steps 3] [--out benchmarks/step_time.json]

Each objective runs `--steps` training steps with the default recipe (16 prompts x 8 rollouts,
gen_length 16, 8 sampling steps, its own estimator and inner updates mu); the first step is a
warm-up and is excluded. Reported: seconds per step and how they split into rollout sampling
and the update (estimator forwards + backward + optimiser, times mu).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from trafl.config import load_config
from trafl.objectives import OBJECTIVES
from trafl.train import TrainConfig, Trainer


def measure(objective: str, steps: int, out_dir: str) -> dict[str, float]:
    cfg = load_config(TrainConfig, None, [f"objective.name={objective}", f"out_dir={out_dir}",
                                          "device=cpu", "save_completions_every=0", "ckpt_every=0"])  # fmt: skip
    trainer = Trainer(cfg)
    sample_s, update_s = [], []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        _, batch = trainer.rollouts()
        t1 = time.perf_counter()
        trainer.update(batch)
        t2 = time.perf_counter()
        if i > 0:  # the first step warms caches and allocators
            sample_s.append(t1 - t0)
            update_s.append(t2 - t1)
    n = len(sample_s)
    return {
        "inner_updates": trainer.mu,
        "estimator": cfg.estimator.name,
        "sample_s": sum(sample_s) / n,
        "update_s": sum(update_s) / n,
        "step_s": (sum(sample_s) + sum(update_s)) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/step_time.json")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in OBJECTIVES.names():
            results[name] = measure(name, args.steps, str(Path(tmp) / name))
            r = results[name]
            print(f"{name:12s} {r['estimator']:11s} mu={r['inner_updates']:<3d} "
                  f"step {r['step_s']:.2f}s = sample {r['sample_s']:.2f}s + update {r['update_s']:.2f}s")  # fmt: skip
    meta = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "torch": torch.__version__, "steps_measured": args.steps}  # fmt: skip
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
