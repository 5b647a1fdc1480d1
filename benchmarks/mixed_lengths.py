"""Batched generation with per-sequence lengths against one batch per length, same model, same run.

    python benchmarks/mixed_lengths.py                        # shipped Countdown base, CPU
    python benchmarks/mixed_lengths.py --device cuda --problems 256

Samples every problem at each of ``--lengths`` (steps = L/2, one block, LLaDA's evaluation
setting) in two ways: one batch per length (what ``trafl eval`` does), and with the lengths
interleaved in the same micro-batches (``sample(..., lengths=...)``), each row at
``at_length(config, L)``. Both use one generator per row, so a row gets the same noise either
way: the script reports the share of rows whose tokens agree (1.0 unless the wider batch's
rounding flips a near-tie), the time of each (after a warm-up, ``--repeats`` alternating
rounds, the fastest kept) and their ratio, and the number of denoiser calls. Writes
``benchmarks/mixed_lengths.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from trafl.models import load_model
from trafl.run.rollouts import rollout_task, subset
from trafl.sampling import SamplerConfig, at_length
from trafl.tasks import TASKS


def row_generators(seeds: list[int], device: str) -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(s) for s in seeds]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/countdown-base")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 24, 32])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/mixed_lengths.json")
    return parser.parse_args()


def agreement(separate: list, mixed: Any, order: list, lengths: list[int]) -> tuple[int, dict]:
    """Rows whose tokens agree between the two ways, and per length the share and mean rewards."""
    same, per_length = 0, {}
    for j, length in enumerate(lengths):
        idx = [i for i, (jj, _) in enumerate(order) if jj == j]
        a = separate[j].completion_ids
        b = mixed.completion_ids[idx, :length]
        agree = (a == b).all(dim=1)
        same += int(agree.sum())
        per_length[str(length)] = {
            "rows_identical": round(float(agree.float().mean()), 4),
            "mean_reward_separate": round(float(separate[j].rewards.mean()), 4),
            "mean_reward_mixed": round(float(mixed.rewards[idx].mean()), 4),
        }
    return same, per_length


def main() -> None:
    args = parse()
    model = load_model(args.model).to(args.device).eval()
    task = TASKS.get("countdown")()
    problems = subset(task.problems("test"), args.problems)
    n = len(problems) * args.samples  # rows per length
    longest = max(args.lengths)
    config = SamplerConfig(
        gen_length=longest, steps=longest // 2, temperature=1.0, batch_size=args.batch_size
    )
    rows = [p for p in problems for _ in range(args.samples)]
    order = [(j, r) for r in range(n) for j in range(len(args.lengths))]  # interleaved

    def run_separate():  # one batch per length; row r of length j draws from seed j * n + r
        return [
            rollout_task(
                model,
                task,
                problems,
                args.samples,
                at_length(config, length),
                row_generators(list(range(j * n, (j + 1) * n)), args.device),
                pad_to=64,
            )
            for j, length in enumerate(args.lengths)
        ]

    def run_mixed():  # the same rows and seeds, lengths interleaved row by row
        return rollout_task(
            model,
            task,
            [rows[r] for _, r in order],
            1,
            config,
            row_generators([j * n + r for j, r in order], args.device),
            pad_to=64,
            lengths=[args.lengths[j] for j, _ in order],
        )

    rollout_task(model, task, problems[:2], 2, config, None)  # warm-up
    times: dict[str, list[float]] = {"separate": [], "mixed": []}
    outputs: dict[str, Any] = {}
    for _ in range(args.repeats):  # alternate, keep the fastest of each
        for name, fn in (("separate", run_separate), ("mixed", run_mixed)):
            start = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - start)
    separate, mixed = outputs["separate"], outputs["mixed"]
    separate_s, mixed_s = min(times["separate"]), min(times["mixed"])

    same, per_length = agreement(separate, mixed, order, args.lengths)
    tokens = sum(n * length for length in args.lengths)
    result = {
        "separate_seconds": round(separate_s, 2),
        "mixed_seconds": round(mixed_s, 2),
        "mixed_speedup": round(separate_s / mixed_s, 3),
        "separate_tokens_per_s": round(tokens / separate_s, 1),
        "mixed_tokens_per_s": round(tokens / mixed_s, 1),
        "rows_identical": round(same / (n * len(args.lengths)), 4),
        "denoiser_calls_separate": sum(r.num_calls for r in separate),
        "denoiser_calls_mixed": mixed.num_calls,
        "all_seconds": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "per_length": per_length,
    }
    print(json.dumps(result, indent=1))
    meta = {
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "device": args.device,
        **vars(args),
    }
    Path(args.out).write_text(json.dumps({"setup": meta, "result": result}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
