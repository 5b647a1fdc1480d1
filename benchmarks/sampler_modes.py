"""Speed and accuracy of the sampler's fast modes against the plain sampler, same model, same run.

    python benchmarks/sampler_modes.py                       # shipped Countdown base, CPU
    python benchmarks/sampler_modes.py --device cuda --problems 128 --samples 32

For each mode: generated tokens per second, the ratio to the plain sampler, the number of
denoiser calls, Countdown pass@1 and pass@k over the same problems, and how far the recorded
per-token log-probs are from an exact replay of the same trajectory (0 for exact modes).
Writes ``benchmarks/sampler_modes.json``; RESULTS.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from trafl.core.batch import completion_mask_from_eos
from trafl.evaluation import pass_at_k_curve
from trafl.evaluation.seeds import pooled_difference
from trafl.likelihood.trajectory import TrajectoryLogp
from trafl.models import load_model
from trafl.run.rollouts import rollout_task, subset
from trafl.sampling import SamplerConfig
from trafl.tasks import TASKS

MODES = {
    "plain": {},
    "parallel_0.9": {"parallel_threshold": 0.9},
    "parallel_0.7": {"parallel_threshold": 0.7},
    "prefix_cache": {"cache": "prefix"},
    "dual_cache": {"cache": "dual"},
    "dual_cache+parallel_0.9": {"cache": "dual", "parallel_threshold": 0.9},
}


def replay_gap(model, scored, max_rows: int = 256) -> float:
    """Mean |recorded - exact| per-token log-prob over (at most) ``max_rows`` rows."""
    batch = scored.rows(slice(0, min(max_rows, scored.num_rows)))
    batch.completion_mask = completion_mask_from_eos(batch.completion_ids, model.eos_token_id)
    with torch.no_grad():
        exact = TrajectoryLogp().estimate(model, batch, {}).token_logp
    return float((exact - batch.trajectory.token_logp).abs().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/countdown-base")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--gen-length", type=int, default=32)
    parser.add_argument("--block-length", type=int, default=8)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/sampler_modes.json")
    args = parser.parse_args()

    model = load_model(args.model).to(args.device).eval()
    task = TASKS.get("countdown")()
    problems = subset(task.problems("test"), args.problems)
    base = SamplerConfig(
        gen_length=args.gen_length,
        block_length=args.block_length,
        steps=args.steps,
        temperature=1.0,
    )
    results = {}
    micro_batches = -(-len(problems) * args.samples // base.batch_size)
    for name, fields in MODES.items():
        cfg = replace(base, **fields)
        gen = torch.Generator(device=args.device).manual_seed(0)
        start = time.perf_counter()
        scored = rollout_task(model, task, problems, args.samples, cfg, gen)
        seconds = time.perf_counter() - start
        correct = (scored.rewards >= 1).view(len(problems), -1).sum(1).tolist()
        curve = pass_at_k_curve(correct, args.samples, [1, args.samples])
        tokens = scored.completion_ids.numel()
        results[name] = {
            "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1),
            "denoiser_calls_per_batch": round(scored.num_calls / micro_batches, 1),
            "pass@1": round(curve[1], 4),
            f"pass@{args.samples}": round(curve[args.samples], 4),
            "mean_abs_logp_gap_to_exact_replay": round(replay_gap(model, scored), 5),
            "correct_counts": correct,
        }
        print(name, {k: v for k, v in results[name].items() if k != "correct_counts"}, flush=True)
    plain = results["plain"]["tokens_per_s"]
    ks = [1, args.samples]
    for r in results.values():
        r["speedup_vs_plain"] = round(r["tokens_per_s"] / plain, 2)
        # pass@k minus the plain sampler's, paired per problem, 95 % bootstrap over problems
        diffs = pooled_difference(
            [r["correct_counts"]],
            [results["plain"]["correct_counts"]],
            args.samples,
            args.samples,
            ks,
        )
        r["pass_diff_vs_plain"] = {
            f"pass@{d.k}": [round(d.diff, 4), round(d.lo, 4), round(d.hi, 4)] for d in diffs
        }
    meta = {
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "device": args.device,
        **vars(args),
    }
    Path(args.out).write_text(json.dumps({"setup": meta, "modes": results}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
