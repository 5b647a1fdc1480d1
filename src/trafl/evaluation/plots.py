"""PNG plots of an evaluation: pass@k curves, coverage bars, reveal-order heatmaps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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
    fig, axes = plt.subplots(1, len(reveal_steps), figsize=(3.2 * len(reveal_steps) + 1, 4),
                             squeeze=False, layout="constrained")  # fmt: skip
    panels = zip(axes[0], reveal_steps, rewards, titles, strict=True)
    for i, (ax, steps, reward, title) in enumerate(panels):
        order = np.lexsort(steps.T[::-1])  # group identical reveal orders together
        image = ax.imshow(steps[order], aspect="auto", cmap="viridis", interpolation="nearest")
        correct = np.nonzero(reward[order] >= 1)[0]
        ax.scatter(np.full(len(correct), steps.shape[1] - 0.5), correct, marker="<", s=8,
                   color="red", clip_on=False)  # fmt: skip
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("completion position")
        if i == 0:
            ax.set_ylabel("sample (sorted by reveal order; < = correct)")
    fig.colorbar(image, ax=axes[0].tolist(), label="reveal step")
    fig.savefig(path, dpi=120)
    plt.close(fig)
