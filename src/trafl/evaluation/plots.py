"""Every PNG figure of trafl, one function each, drawn from ``eval.json`` dicts: one evaluation
(pass@k curves, coverage bars, reveal-order heatmaps: ``trafl eval``), several methods (pass@k
per length, coverage and locking bars: ``trafl compare`` and the demo), several seeds (pass@k and
the pooled difference to the base: ``scripts/reproduction_report.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from trafl.evaluation.report import BASE, Results, Seeds  # noqa: E402
from trafl.evaluation.seed_report import differences, seed_mean  # noqa: E402


def plot_pass_at_k(result: dict[str, Any], path: Path) -> None:
    """One line per generation length, pass@k against log2 k, with bootstrap bands."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for length, res in result["lengths"].items():
        ks = [int(k) for k in res["pass_at_k"]]
        mean = [res["pass_at_k"][str(k)]["mean"] for k in ks]
        lo = [res["pass_at_k"][str(k)]["ci"][0] for k in ks]
        hi = [res["pass_at_k"][str(k)]["ci"][1] for k in ks]
        line = ax.plot(ks, mean, marker="o", label=f"L={length}")[0]
        ax.fill_between(ks, lo, hi, color=line.get_color(), alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("pass@k")
    ax.set_ylim(0, 1)
    ax.set_title(f"{result['model_name']}: pass@k")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_coverage(result: dict[str, Any], path: Path) -> None:
    """Bars per length: distinct correct solutions per problem and solution-set coverage."""
    lengths = list(result["lengths"])
    distinct = [result["lengths"][x]["coverage"]["mean_distinct_correct"] or 0 for x in lengths]
    cover = [result["lengths"][x]["coverage"]["mean_coverage"] or 0 for x in lengths]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
    axes[0].bar([f"L={x}" for x in lengths], distinct, color="tab:blue")
    axes[0].set_title("distinct correct solutions / problem")
    axes[1].bar([f"L={x}" for x in lengths], cover, color="tab:green")
    axes[1].set_ylim(0, 1)
    axes[1].set_title("fraction of the solution set reached")
    fig.suptitle(result["model_name"])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_reveal_heatmaps(
    reveal_steps: list[np.ndarray], rewards: list[np.ndarray], titles: list[str], path: Path
) -> None:
    """For a few prompts: samples x positions, coloured by the step at which each position was
    revealed; rows sorted by order so identical paths form bands; a tick marks correct rows."""
    fig, axes = plt.subplots(
        1,
        len(reveal_steps),
        figsize=(3.2 * len(reveal_steps) + 1, 4),
        squeeze=False,
        layout="constrained",
    )
    panels = zip(axes[0], reveal_steps, rewards, titles, strict=True)
    for i, (ax, steps, reward, title) in enumerate(panels):
        order = np.lexsort(steps.T[::-1])  # group identical reveal orders together
        image = ax.imshow(steps[order], aspect="auto", cmap="viridis", interpolation="nearest")
        correct = np.nonzero(reward[order] >= 1)[0]
        ax.scatter(
            np.full(len(correct), steps.shape[1] - 0.5),
            correct,
            marker="<",
            s=8,
            color="red",
            clip_on=False,
        )
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("completion position")
        if i == 0:
            ax.set_ylabel("sample (sorted by reveal order; < = correct)")
    fig.colorbar(image, ax=axes[0].tolist(), label="reveal step")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_pass_at_k_grid(results: Results, base: str, path: Path) -> None:
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
            ax.fill_between(
                ks,
                [pk[str(k)]["ci"][0] for k in ks],
                [pk[str(k)]["ci"][1] for k in ks],
                color=line.get_color(),
                alpha=0.12,
            )
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


def plot_coverage_locking(results: Results, path: Path) -> None:
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


def plot_seed_differences(
    data: Seeds, lengths: list[str], labels: dict[str, str], path: Path
) -> None:
    """Two rows, one column per length: pass@k (mean over seeds, the base black) on top, the
    seed-pooled difference to the base with its 95 % interval below."""
    fig, axes = plt.subplots(2, len(lengths), figsize=(4.2 * len(lengths), 7), squeeze=False)
    for j, length in enumerate(lengths):
        top, bottom = axes[0][j], axes[1][j]
        for method in [BASE, *[m for m in data if m != BASE]]:
            evals = data[method]
            ks = [int(k) for k in next(iter(evals.values()))["lengths"][length]["pass_at_k"]]
            means = [
                seed_mean(evals, length, lambda r, k=k: r["pass_at_k"][str(k)]["mean"]) for k in ks
            ]
            style = {"color": "black", "lw": 2.5} if method == BASE else {}
            top.plot(ks, means, marker="o", ms=3, label=labels.get(method, method), **style)
            if method != BASE:
                d = differences(data, method, length)
                line = bottom.plot(ks, [x.diff for x in d], marker="o", ms=3)[0]
                bottom.fill_between(
                    ks, [x.lo for x in d], [x.hi for x in d], alpha=0.12, color=line.get_color()
                )
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


def plot_target(target: dict[str, Any], title: str, path: Path) -> None:
    """Predicted against achieved success per problem: the base tilted at b (when known,
    crosses) and at the fitted b_hat (dots), the identity line; problems whose success fell
    circled on the b_hat dots (filled red: significant)."""
    achieved = np.array(target["achieved"]["success"])  # (B,)
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot([0, 1], [0, 1], color="black", lw=1, label="identity")
    styles = {"b": ("x", "tab:orange", "b"), "b_hat": ("o", "tab:blue", "b_hat")}
    marked = None
    for name, (marker, color, label) in styles.items():
        pred = target["predicted"].get(name)
        if pred is None:
            continue
        predicted = np.array(pred["success"])  # (B,)
        ax.scatter(
            predicted,
            achieved,
            s=14,
            marker=marker,
            color=color,
            alpha=0.7,
            label=f"problem, tilt at {label} = {pred['b']:.2f}",
        )
        marked = predicted
    if marked is not None:
        viol = target["violations"]
        for v in viol["problems"]:
            fill = "red" if v["p_value"] < viol["alpha"] else "none"
            i = v["problem"]
            ax.scatter(marked[i], achieved[i], s=60, facecolors=fill, edgecolors="red")
        ax.scatter(
            [],
            [],
            s=60,
            facecolors="none",
            edgecolors="red",
            label="success fell (filled: p < 0.05)",
        )
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("predicted success p* (the base tilted)")
    ax.set_ylabel("achieved success")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def frontier_point(result: dict[str, Any]) -> tuple[float, float, float]:
    """(pass@1, pass@n, distinct correct in n) of an evaluation at its first length (the
    shortest listed, e.g. 16 of ``gen_lengths=[16,24,32]``), n its samples."""
    length = next(iter(result["lengths"].values()))
    top = str(max(int(k) for k in length["pass_at_k"]))
    return (
        length["pass_at_k"]["1"]["mean"],
        length["pass_at_k"][top]["mean"],
        length["coverage_at_k"]["distinct"][top],
    )


def plot_frontier(
    base: dict[str, Any], series: dict[str, list[dict[str, Any]]], path: Path
) -> None:
    """Comparison at equal progress: pass@n and distinct correct solutions in n samples against
    pass@1, one line per method through its checkpoints' evaluations (in training order), all
    starting at the base (a star), at the evaluations' first length (named in the titles)."""
    b = frontier_point(base)
    n, first = base["num_samples"], next(iter(base["lengths"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, index, label in ((axes[0], 1, f"pass@{n}"), (axes[1], 2, f"distinct correct in {n}")):
        ax.plot([b[0]], [b[index]], "k*", ms=12, label="base")
        for name, results in series.items():
            points = [b, *(frontier_point(r) for r in results)]
            style = "-o" if name.startswith("trafl") else "--s"
            ax.plot([p[0] for p in points], [p[index] for p in points], style, ms=4, label=name)
        ax.set_xlabel("pass@1")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"equal progress at L = {first}: pass@{n} against pass@1 over checkpoints")
    axes[1].set_title(f"distinct correct solutions in {n} samples")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
