"""``trafl compare EVAL...``: one table and one set of plots across evaluated runs.

Each argument is an ``eval.json``, a folder holding one, or a run folder with ``eval/eval.json``.
The first (or ``base=NAME``) is the reference every other method is compared with: a cell is
marked where the method's pass@k is below the base's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from rich.table import Table  # noqa: E402

from trafl.evaluation import paired_difference_ci  # noqa: E402
from trafl.run.runtime import console  # noqa: E402


@dataclass
class CompareConfig:
    evals: list[str] = field(default_factory=list)  # eval.json files or folders
    names: list[str] = field(default_factory=list)  # display names (default: model names)
    base: str | None = None  # name of the reference method (default: the first)
    out_dir: str = "runs/compare"


def load_eval(path: str) -> dict[str, Any]:
    p = Path(path)
    for candidate in (p, p / "eval.json", p / "eval" / "eval.json"):
        if candidate.is_file():
            return json.loads(candidate.read_text())
    raise ValueError(f"no eval.json at {path!r} (give an eval.json, its folder, or a run folder)")


def below_base(results: dict[str, dict[str, Any]], base: str) -> dict[str, list[tuple[str, str]]]:
    """For each method, the (length, k) cells where its mean pass@k is below the base's."""
    out: dict[str, list[tuple[str, str]]] = {}
    ref = results[base]["lengths"]
    for name, res in results.items():
        if name == base:
            continue
        cells = []
        for length, r in res["lengths"].items():
            for k, v in r["pass_at_k"].items():
                if length in ref and k in ref[length]["pass_at_k"]:
                    if v["mean"] < ref[length]["pass_at_k"][k]["mean"]:
                        cells.append((length, k))
        out[name] = cells
    return out


def significant_drops(
    results: dict[str, dict[str, Any]], base: str
) -> dict[str, list[tuple[str, str]]]:
    """Cells where the method is below the base with the paired 95 % bootstrap interval of the
    difference entirely below 0 (needs per-problem ``correct_counts`` on the same problems)."""
    out: dict[str, list[tuple[str, str]]] = {}
    ref = results[base]
    for name, res in results.items():
        if name == base:
            continue
        cells = []
        for length, r in res["lengths"].items():
            b = ref["lengths"].get(length)
            if b is None or "correct_counts" not in r or "correct_counts" not in b:
                continue
            if len(r["correct_counts"]) != len(b["correct_counts"]):
                continue
            ks = [int(k) for k in r["pass_at_k"] if k in b["pass_at_k"]]
            diffs = paired_difference_ci(r["correct_counts"], res["num_samples"],
                                         b["correct_counts"], ref["num_samples"], ks)  # fmt: skip
            cells += [(length, str(k)) for k, (_, _, hi) in diffs.items() if hi < 0]
        out[name] = cells
    return out


def verdicts(results: dict[str, dict[str, Any]], base: str) -> dict[str, str]:
    """One sentence per method: does it stay above the base at every k and length, and is any
    drop larger than the noise of the problem set?"""
    sentences = {}
    significant = significant_drops(results, base)
    for name, cells in below_base(results, base).items():
        if not cells:
            sentences[name] = f"**{name}** is at or above {base} at every k and every length."
            continue
        where = ", ".join(f"L={length} k={k}" for length, k in cells)
        sig = significant.get(name, [])
        noise = (
            f"{len(sig)} of them with a 95 % paired-bootstrap interval of the difference below 0 "
            f"({', '.join(f'L={x} k={k}' for x, k in sig)})" if sig
            else "none of them beyond the 95 % paired-bootstrap interval of the difference"
        )  # fmt: skip
        sentences[name] = (
            f"**{name}** falls below {base} at {len(cells)} point(s): {where}; {noise}."
        )
    return sentences


def compare(cfg: CompareConfig) -> dict[str, Any]:
    if not cfg.evals:
        raise ValueError("compare needs at least one eval (evals=[a,b,...])")
    loaded = [load_eval(p) for p in cfg.evals]
    names = cfg.names or [r["model_name"] for r in loaded]
    if len(names) != len(loaded) or len(set(names)) != len(names):
        raise ValueError(f"names must be unique, one per eval; got {names}")
    results = dict(zip(names, loaded, strict=True))
    base = cfg.base or names[0]
    if base not in results:
        raise ValueError(f"base {base!r} is not one of {names}")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_pass_at_k_grid(results, base, out / "pass_at_k.png")
    plot_coverage_locking(results, out / "coverage_locking.png")
    print_comparison(results, base)
    summary = {"base": base, "verdicts": verdicts(results, base),
               "below_base": below_base(results, base)}  # fmt: skip
    (out / "compare.json").write_text(json.dumps(summary, indent=1))
    for sentence in summary["verdicts"].values():
        console.print(sentence.replace("**", ""))
    return summary


def plot_pass_at_k_grid(results: dict[str, dict[str, Any]], base: str, path: Path) -> None:
    """One panel per generation length, one line per method (the base dashed)."""
    lengths = list(next(iter(results.values()))["lengths"])
    fig, axes = plt.subplots(1, len(lengths), figsize=(4.2 * len(lengths), 3.8), squeeze=False)
    for ax, length in zip(axes[0], lengths, strict=True):
        for name, res in results.items():
            if length not in res["lengths"]:
                continue
            pk = res["lengths"][length]["pass_at_k"]
            ks = [int(k) for k in pk]
            style = {"linestyle": "--", "color": "black"} if name == base else {}
            line = ax.plot(
                ks, [pk[str(k)]["mean"] for k in ks], marker="o", ms=3, label=name, **style
            )[0]
            ax.fill_between(ks, [pk[str(k)]["ci"][0] for k in ks], [pk[str(k)]["ci"][1] for k in ks],
                            color=line.get_color(), alpha=0.12)  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_ylim(0, 1)
        ax.set_title(f"L = {length}")
        ax.set_xlabel("k")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("pass@k")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_coverage_locking(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Grouped bars per length: solution-set coverage and pairwise reveal-order distance."""
    names = list(results)
    lengths = list(next(iter(results.values()))["lengths"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        lens = results[name]["lengths"]
        xs = [j + i * width for j in range(len(lengths))]
        axes[0].bar(
            xs, [lens[x]["coverage"]["mean_coverage"] or 0 for x in lengths], width, label=name
        )
        axes[1].bar(xs, [lens[x]["locking"]["mean_pairwise_rank_distance"] for x in lengths], width)
    for ax, title in zip(
        axes,
        ["solution-set coverage", "reveal-order diversity (pairwise rank distance)"],
        strict=True,
    ):
        ax.set_xticks(
            [j + 0.4 - width / 2 for j in range(len(lengths))], [f"L={x}" for x in lengths]
        )
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def comparison_rows(
    results: dict[str, dict[str, Any]], base: str
) -> tuple[list[str], list[list[str]]]:
    """Header and rows (method x metric per length); '↓' marks pass@k below the base."""
    lengths = list(results[base]["lengths"])
    ks = list(results[base]["lengths"][lengths[0]]["pass_at_k"])
    header = ["method", "L", "greedy", *[f"pass@{k}" for k in ks], "coverage", "rank dist."]
    rows = []
    for name, res in results.items():
        for length in lengths:
            r = res["lengths"].get(length)
            if r is None:
                continue
            ref = results[base]["lengths"][length]["pass_at_k"]
            cells = []
            for k in ks:
                v = r["pass_at_k"][k]["mean"]
                mark = " ↓" if name != base and v < ref[k]["mean"] else ""
                cells.append(f"{v:.3f}{mark}")
            greedy = r.get("greedy_accuracy")
            cov = r["coverage"]["mean_coverage"]
            rows.append([name, length, "-" if greedy is None else f"{greedy:.3f}", *cells,
                         "-" if cov is None else f"{cov:.3f}",
                         f"{r['locking']['mean_pairwise_rank_distance']:.3f}"])  # fmt: skip
    return header, rows


def print_comparison(results: dict[str, dict[str, Any]], base: str) -> None:
    header, rows = comparison_rows(results, base)
    table = Table(title=f"pass@k vs {base} (↓ = below the base)")
    for h in header:
        table.add_column(h, justify="left" if h in ("method", "L") else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def markdown_table(results: dict[str, dict[str, Any]], base: str) -> str:
    header, rows = comparison_rows(results, base)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
