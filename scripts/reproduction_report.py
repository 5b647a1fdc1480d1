"""Aggregate the seeds of ``scripts/reproduce.sh`` into docs/REPRODUCTION.md (+ a plot).

    python scripts/reproduction_report.py runs/repro --out docs/REPRODUCTION.md

Reads ``ROOT/seed*/base/eval.json`` and ``ROOT/seed*/METHOD/eval/eval.json``; a method is
reported with however many seeds have finished (the table says how many). Every number in the
report is computed here from those files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from trafl.evaluation.seeds import PooledDifference, pooled_difference  # noqa: E402

METHODS = ["trafl", "trafl_path", "diffu_grpo", "wd1", "spg", "espo"]
LABELS = {"base": "base", "trafl": "TraFL", "trafl_path": "TraFL (exact path)",
          "diffu_grpo": "diffu-GRPO (d1)", "wd1": "wd1", "spg": "SPG", "espo": "ESPO"}  # fmt: skip


def load(root: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """{method: {seed: eval.json}} for every finished evaluation under ``root``."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for seed_dir in sorted(root.glob("seed*")):
        seed = int(seed_dir.name.removeprefix("seed"))
        for method in ["base", *METHODS]:
            f = seed_dir / method / ("eval.json" if method == "base" else "eval/eval.json")
            if f.is_file():
                out.setdefault(method, {})[seed] = json.loads(f.read_text())
    return out


def seed_mean(evals: dict[int, dict[str, Any]], length: str, get) -> float | None:
    values = [get(e["lengths"][length]) for e in evals.values() if length in e["lengths"]]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def differences(
    data: dict[str, dict[int, dict[str, Any]]], method: str, length: str
) -> list[PooledDifference]:
    seeds = sorted(set(data[method]) & set(data["base"]))
    m = [data[method][s]["lengths"][length]["correct_counts"] for s in seeds]
    b = [data["base"][s]["lengths"][length]["correct_counts"] for s in seeds]
    n_m, n_b = data[method][seeds[0]]["num_samples"], data["base"][seeds[0]]["num_samples"]
    ks = [int(k) for k in data["base"][seeds[0]]["lengths"][length]["pass_at_k"]]
    return pooled_difference(m, b, n_m, n_b, ks)


def fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def passk_table(data, length: str) -> list[str]:
    base = data["base"]
    ks = list(next(iter(base.values()))["lengths"][length]["pass_at_k"])
    lines = [
        "| method | seeds | " + " | ".join(f"pass@{k}" for k in ks) + " |",
        "|---|---|" + "---|" * len(ks),
    ]
    for method in ["base", *[m for m in METHODS if m in data]]:
        evals = data[method]
        cells = []
        diffs = None if method == "base" else {d.k: d for d in differences(data, method, length)}
        for k in ks:
            mean = seed_mean(evals, length, lambda r, k=k: r["pass_at_k"][k]["mean"])
            cell = fmt(mean)
            if diffs is not None:
                d = diffs[int(k)]
                mark = " **▼**" if d.hi < 0 else (" ▲" if d.lo > 0 else "")
                cell += f" ({d.diff:+.3f}{mark})"
            cells.append(cell)
        lines.append(f"| {LABELS[method]} | {len(evals)} | " + " | ".join(cells) + " |")
    return lines


def diversity_table(data, length: str) -> list[str]:
    lines = [
        "| method | greedy | distinct correct / problem | solution-set coverage | "
        "share on modal order | order entropy (norm.) | rank distance | "
        "correct: share on modal order |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method in ["base", *[m for m in METHODS if m in data]]:
        e = data[method]
        row = [
            seed_mean(e, length, lambda r: r.get("greedy_accuracy")),
            seed_mean(e, length, lambda r: r["coverage"]["mean_distinct_correct"]),
            seed_mean(e, length, lambda r: r["coverage"]["mean_coverage"]),
            seed_mean(e, length, lambda r: r["locking"]["order_share_of_mode"]),
            seed_mean(e, length, lambda r: r["locking"]["order_entropy_normalized"]),
            seed_mean(e, length, lambda r: r["locking"]["mean_pairwise_rank_distance"]),
            seed_mean(e, length, lambda r: r["locking"]["correct_order_share_of_mode"]),
        ]
        lines.append(f"| {LABELS[method]} | " + " | ".join(fmt(v) for v in row) + " |")
    return lines


def seed_spread_table(data, lengths: list[str]) -> list[str]:
    """Per method and length: the smallest and largest per-seed mean difference to the base."""
    cols = [f"L={n} pass@{k}" for n in lengths for k in ("1", "64")]
    lines = ["| method | seeds | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for method in [m for m in METHODS if m in data]:
        cells = []
        for length in lengths:
            by_k = {d.k: d for d in differences(data, method, length)}
            for k in (1, max(by_k)):
                d = by_k[k]
                cells.append(f"{d.seed_min:+.3f} .. {d.seed_max:+.3f}")
        seeds = len(set(data[method]) & set(data["base"]))
        lines.append(f"| {LABELS[method]} | {seeds} | " + " | ".join(cells) + " |")
    return lines


def verdict(data, method: str, lengths: list[str]) -> str:
    below, significant, cells = [], [], 0
    for length in lengths:
        for d in differences(data, method, length):
            cells += 1
            if d.diff < 0:
                below.append(f"L={length} k={d.k}")
            if d.hi < 0:
                significant.append(f"L={length} k={d.k}")
    seeds = len(set(data[method]) & set(data["base"]))
    head = f"**{LABELS[method]}** ({seeds} seed{'s' if seeds != 1 else ''}): "
    if not below:
        return head + f"at or above the base in all {cells} (length, k) cells."
    text = head + f"below the base in {len(below)} of {cells} cells ({', '.join(below[:8])}"
    text += ", ...)" if len(below) > 8 else ")"
    if significant:
        return text + f"; significantly (95 % interval below 0) at {', '.join(significant)}."
    return text + "; none of these drops is significant (every 95 % interval includes 0)."


def plot(data, lengths: list[str], path: Path) -> None:
    fig, axes = plt.subplots(2, len(lengths), figsize=(4.2 * len(lengths), 7), squeeze=False)
    for j, length in enumerate(lengths):
        top, bottom = axes[0][j], axes[1][j]
        for method in ["base", *[m for m in METHODS if m in data]]:
            evals = data[method]
            ks = [int(k) for k in next(iter(evals.values()))["lengths"][length]["pass_at_k"]]
            means = [seed_mean(evals, length, lambda r, k=k: r["pass_at_k"][str(k)]["mean"])
                     for k in ks]  # fmt: skip
            style = {"color": "black", "lw": 2.5} if method == "base" else {}
            top.plot(ks, means, marker="o", ms=3, label=LABELS[method], **style)
            if method != "base":
                d = differences(data, method, length)
                line = bottom.plot(ks, [x.diff for x in d], marker="o", ms=3)[0]
                bottom.fill_between(ks, [x.lo for x in d], [x.hi for x in d], alpha=0.12,
                                    color=line.get_color())  # fmt: skip
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.grid(alpha=0.3)
        bottom.axhline(0, color="black", lw=1)
        top.set_title(f"L = {length}")
        top.set_ylabel("pass@k (mean over seeds)")
        bottom.set_ylabel("pass@k - base (95 % CI)")
        bottom.set_xlabel("k")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(root: Path, out: Path) -> None:
    data = load(root)
    if "base" not in data:
        raise SystemExit(f"no base evaluation under {root}/seed*/base: run scripts/reproduce.sh")
    first = next(iter(data["base"].values()))
    lengths = list(first["lengths"])
    png = out.with_name("reproduction_pass_at_k.png")
    plot(data, lengths, png)
    methods = [m for m in METHODS if m in data]
    lines = [
        "# Reproduction: does TraFL stay above the base at every k and length? (Countdown)",
        "",
        "Generated by `python scripts/reproduction_report.py "
        f"{root} --out {out}` from the runs of `bash scripts/reproduce.sh` (each seed is one "
        "`trafl demo` with all six methods). Setting: the shipped Countdown base "
        "(`models/countdown-base`); every method post-trained from it for 30 steps of 16 "
        "prompts x 8 rollouts (a constant lr of 1e-4 for every method, no warm-up; each "
        "objective's own defaults otherwise, e.g. mu = 12 inner updates for d1 and wd1, see the "
        f"README table); evaluated on the first {first['num_problems']} test problems x "
        f"{first['num_samples']} samples at temperature 1, L = {', '.join(lengths)} "
        "(steps = L/2). A seed sets training and evaluation sampling; the base is evaluated "
        "again under every seed.",
        "",
        "Differences to the base are pooled over seeds per problem and bootstrapped over "
        "problems (`trafl.evaluation.seeds`); ▼ marks a 95 % interval entirely below 0, ▲ one "
        "entirely above. What TraFL's open knobs (lr, beta, reward normalisation, K, log Z) "
        "change: [ABLATION.md](ABLATION.md) (`python scripts/ablation.py`).",
        "",
        "## Verdicts",
        "",
        *[f"- {verdict(data, m, lengths)}" for m in methods],
        "",
        f"![pass@k and difference to the base]({png.name})",
        "",
        "## Seed to seed",
        "",
        "Smallest .. largest per-seed mean difference to the base (each seed against its own "
        "base evaluation): how far one run of a method can land from another.",
        "",
        *seed_spread_table(data, lengths),
        "",
    ]
    for length in lengths:
        lines += [f"## L = {length}", "", "pass@k, mean over seeds (difference to the base):", ""]
        lines += passk_table(data, length)
        lines += ["", "Coverage and reveal-order locking (means over seeds):", ""]
        lines += diversity_table(data, length) + [""]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out} and {png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="folder with seed*/ runs (runs/repro)")
    parser.add_argument("--out", type=Path, default=Path("docs/REPRODUCTION.md"))
    args = parser.parse_args()
    report(args.root, args.out)


if __name__ == "__main__":
    main()
