"""The fitted tilt against training step for methods of several studies on one figure.

    python scripts/curves.py docs/target/random-long/reach.png \
        "any-order TraFL (section 15)=results/target/random-long.tgz:trafl-b4" \
        "any-order TraFL (section 9)=results/target/random.tgz:trafl-b4" \
        "direct fit (section 14)=results/target/direct-long.tgz:direct-b4" --tilt 4 --bound 1.5

Each curve is one method of one study folder or pack (``LABEL=ROOT:METHOD``): its seeds'
b_hat at every evaluated step (points) and their mean (line), where every seed is evaluated.
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


def series(root: Path, method: str) -> dict[int, list[float]]:
    """{step: [b_hat of each seed evaluated there, in seed order]}."""
    _, runs = load(root)
    if method not in runs:
        raise SystemExit(f"{root}: no evaluated runs of {method!r} (there: {', '.join(runs)})")
    out: dict[int, list[float]] = {}
    for _, evals in sorted(runs[method].items()):
        for step, ev in evals.items():
            out.setdefault(step, []).append(summary(ev)["b_hat"])
    return dict(sorted(out.items()))


def parse_spec(spec: str) -> tuple[str, Path, str]:
    label, _, rest = spec.partition("=")
    root, _, method = rest.rpartition(":")
    if not (label and root and method):
        raise SystemExit(f"{spec!r}: expected LABEL=ROOT:METHOD")
    return label, Path(root), method


def draw(curves: dict[str, dict[int, list[float]]], out: Path, tilt: float | None,
         bound: float | None) -> list[str]:  # fmt: skip
    """The figure at ``out``; returns the lines printed beside it."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    lines = []
    for label, data in curves.items():
        full = max(len(v) for v in data.values())
        steps = [s for s, v in data.items() if len(v) == full]
        (line,) = ax.plot(steps, [statistics.mean(data[s]) for s in steps], marker="o", label=label)
        for step, values in data.items():
            ax.scatter([step] * len(values), values, color=line.get_color(), alpha=0.35, s=12)
            seeds = " ".join(f"{v:.3f}" for v in values)
            lines.append(f"{label} | step {step} | mean {statistics.mean(values):.3f} | {seeds}")
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
