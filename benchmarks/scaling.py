"""How an RL step's time and memory grow with generation length and batch size (log-log plot).

    .venv/bin/python benchmarks/scaling.py                     # shipped Countdown base, CPU
    .venv/bin/python benchmarks/scaling.py --device cuda --lengths 64 128 256 512 --batches 64 256 1024

One TraFL step (and optionally others, ``--objectives``) per grid point, each in a fresh process
(``step_time.measure``): generation lengths at a fixed batch, then batch sizes (rollouts =
prompts x 8) at a fixed length; steps = L / 2 and one block of length min(L, 32) as in LLaDA's
recipe. The fitted slope of log(time) on log(size) is printed and written: 1 is linear, 2
quadratic. Writes ``benchmarks/scaling.json`` and ``benchmarks/scaling.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from step_time import isolated  # noqa: E402

GROUP = 8


def overrides(length: int, rollouts: int) -> list[str]:
    block = min(length, 32)
    return [
        f"rollout.sampler.gen_length={length}",
        f"rollout.sampler.steps={length // 2}",
        f"rollout.sampler.block_length={block}",
        f"rollout.group_size={GROUP}",
        f"rollout.prompts_per_step={rollouts // GROUP}",
    ]


def slope(x: list[int], y: list[float]) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def plot(results: dict[str, dict[str, list[dict]]], args: argparse.Namespace) -> dict[str, float]:
    """The log-log figure (``OUT.png``); returns the fitted slopes."""
    slopes = {}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for objective, by_axis in results.items():
        for axis, rows in by_axis.items():
            x = [r[axis] for r in rows]
            ax = axes[0] if axis == "gen_length" else axes[1]
            for key, style in (("sample_s", "-o"), ("update_s", "--s")):
                y = [r[key] for r in rows]
                slopes[f"{objective} {key} vs {axis}"] = round(slope(x, y), 2)
                ax.plot(
                    x,
                    y,
                    style,
                    label=f"{objective} {key.removesuffix('_s')} (slope {slope(x, y):.2f})",
                )
            ax.set_xticks(x, [str(v) for v in x])
            mem_key = "peak_cuda_mb" if "peak_cuda_mb" in rows[0] else "peak_rss_mb"
            axes[2].plot(x, [r[mem_key] for r in rows], "-o", label=f"{objective} vs {axis}")
    for ax, xlabel, ylabel in (
        (axes[0], f"generation length (rollouts = {args.fixed_batch})", "seconds"),
        (axes[1], f"rollouts per step (L = {args.fixed_length})", "seconds"),
        (axes[2], "generation length, or rollouts per step", "peak memory (MiB)"),
    ):
        ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_xticks(args.lengths, [str(v) for v in args.lengths])
    axes[1].set_xticks(args.batches, [str(v) for v in args.batches])
    fig.suptitle(f"one RL step, {args.device}: sampling and update time, peak memory")
    fig.tight_layout()
    fig.savefig(f"{args.out}.png", dpi=120)
    plt.close(fig)
    return slopes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--objectives", nargs="+", default=["trafl"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[16, 32, 64, 128])
    parser.add_argument("--batches", nargs="+", type=int, default=[16, 64, 256])
    parser.add_argument("--fixed-batch", type=int, default=64)
    parser.add_argument("--fixed-length", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1, help="measured steps per point")
    parser.add_argument("--out", default="benchmarks/scaling")
    parser.add_argument("--replot", action="store_true", help="redraw OUT.png from OUT.json")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(Path(f"{args.out}.json").read_text())
        for key in ("lengths", "batches", "fixed_batch", "fixed_length", "device"):
            setattr(args, key, saved["meta"][key])
        plot(saved["results"], args)
        print(f"wrote {args.out}.png")
        return

    grids = {
        "gen_length": [(n, args.fixed_batch) for n in args.lengths],
        "rollouts": [(args.fixed_length, b) for b in args.batches],
    }
    results: dict[str, dict[str, list[dict]]] = {}
    for objective in args.objectives:
        for axis, points in grids.items():
            rows = []
            for length, rollouts in points:
                r = isolated(objective, args.steps, args.device, overrides(length, rollouts))
                r |= {"gen_length": length, "rollouts": rollouts}
                rows.append(r)
                mem = r.get("peak_cuda_mb", r["peak_rss_mb"])
                print(
                    f"{objective} L={length:<4d} rollouts={rollouts:<5d} sample "
                    f"{r['sample_s']:.2f}s update {r['update_s']:.2f}s peak {mem:.0f} MiB",
                    flush=True,
                )
            results.setdefault(objective, {})[axis] = rows

    slopes = plot(results, args)
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "device": args.device,
        **vars(args),
    }
    Path(f"{args.out}.json").write_text(
        json.dumps({"meta": meta, "slopes": slopes, "results": results}, indent=1)
    )
    for name, value in slopes.items():
        print(f"slope {name}: {value}")
    print(f"wrote {args.out}.json and {args.out}.png")


if __name__ == "__main__":
    main()
