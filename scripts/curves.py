"""The fitted tilt against training step for methods of several studies on one figure.

    python scripts/curves.py docs/target/random-long/reach.png \
        "any-order TraFL (section 15)=results/target/random-long.tgz:trafl-b4" \
        "any-order TraFL (section 9)=results/target/random.tgz:trafl-b4" \
        "direct fit (section 14)=results/target/direct-long.tgz:direct-b4" --tilt 4 --bound 1.5

Each curve is one method of one study folder or pack (``LABEL=ROOT:METHOD``): its seeds'
b_hat at every evaluated step (points) and their mean (line) at the steps where every seed of
the curve is evaluated (a seed with no evaluation at all is not known to the curve).
``--tilt`` draws the target's b, ``--bound`` a criterion's line. The numbers drawn are also
printed, one line per curve and step, so that a figure is never the only place they are.
"""

from __future__ import annotations

import argparse
import statistics
from contextlib import ExitStack
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from packs import unpacked  # noqa: E402
from target_report import load, summary  # noqa: E402


def series(root: Path, method: str) -> dict[int, dict[int, float]]:
    """{step: {seed: b_hat}} for every seed evaluated at that step."""
    _, runs = load(root)
    if method not in runs:
        raise SystemExit(f"{root}: no evaluated runs of {method!r} (there: {', '.join(runs)})")
    out: dict[int, dict[int, float]] = {}
    for seed, evals in sorted(runs[method].items()):
        for step, ev in evals.items():
            out.setdefault(step, {})[seed] = summary(ev)["b_hat"]
    return dict(sorted(out.items()))


def mean_line(data: dict[int, dict[int, float]]) -> tuple[list[int], list[float]]:
    """The seed mean at each step where every seed of the curve is evaluated, and only there
    (a mean over fewer seeds would move with which seeds are missing)."""
    seeds = set().union(*data.values())
    steps = [step for step, values in data.items() if set(values) == seeds]
    return steps, [statistics.mean(data[step].values()) for step in steps]


def parse_spec(spec: str) -> tuple[str, Path, str]:
    label, _, rest = spec.partition("=")
    root, _, method = rest.rpartition(":")
    if not (label and root and method):
        raise SystemExit(f"{spec!r}: expected LABEL=ROOT:METHOD")
    return label, Path(root), method


def draw(curves: dict[str, dict[int, dict[int, float]]], out: Path, tilt: float | None,
         bound: float | None) -> list[str]:  # fmt: skip
    """The figure at ``out``; returns the lines printed beside it."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    lines = []
    for label, data in curves.items():
        steps, means = mean_line(data)
        (line,) = ax.plot(steps, means, marker="o", label=label)
        seeds = sorted(set().union(*data.values()))
        for step, values in data.items():
            ax.scatter([step] * len(values), list(values.values()), color=line.get_color(),
                       alpha=0.35, s=12)  # fmt: skip
            cells = " ".join(f"s{seed} {v:.3f}" for seed, v in values.items())
            mean = f"mean {statistics.mean(values.values()):.3f}"
            if step not in steps:
                mean += f" (seeds {len(values)} of {len(seeds)}: not on the line)"
            lines.append(f"{label} | step {step} | {mean} | {cells}")
    if tilt is not None:
        ax.axhline(tilt, color="black", lw=0.8, ls="--", label=f"b = {tilt:g} (the target)")
    if bound is not None:
        ax.axhline(bound, color="grey", lw=0.8, ls=":", label=f"bound {bound:g}")
    ax.set_xlabel("training step")
    ax.set_ylabel("b_hat (fitted tilt)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("curves", nargs="+", help="LABEL=ROOT:METHOD (a study folder or pack)")
    p.add_argument("--tilt", type=float)
    p.add_argument("--bound", type=float)
    args = p.parse_args(argv)
    curves = {}
    with ExitStack() as stack:
        for label, root, method in map(parse_spec, args.curves):
            curves[label] = series(stack.enter_context(unpacked(root)), method)
    print("\n".join(draw(curves, args.out, args.tilt, args.bound)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
