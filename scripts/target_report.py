"""Figures and tables of the target study (docs/TARGET.md) from its results folder.

    python scripts/target_report.py runs/target                 # -> docs/target/
    python scripts/target_report.py results/target/study.tgz    # the committed GPU runs
    python scripts/target_report.py results/target/random.tgz \
        --beside low-confidence=results/target/long.tgz         # the same runs decoded otherwise

Reads what ``scripts/target_study.py`` wrote (or its unpacked ``--pack`` archive): the base's
evaluation, and per run its config, metrics.jsonl and one evaluation per checkpoint. Writes
``frontier.png`` (pass@64 and distinct@64 against pass@1 over checkpoints, seeds averaged:
comparison at equal progress), ``target.png`` (predicted against achieved success per problem
for each TraFL tilt), ``progress.png`` (b_hat / b against step), ``monitor.png`` (distance to
balance during training) and ``results.md`` (every number the prose of docs/TARGET.md quotes).
``--beside LABEL=RUNS`` sets the same methods of another study (its own base) beside these:
b_hat / b and the balance gap at each one's last checkpoint, and dashed in ``progress.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from packs import unpacked  # noqa: E402

from trafl.commands.compare import load_eval  # noqa: E402
from trafl.core.errors import UserError  # noqa: E402
from trafl.evaluation.seeds import pooled_difference  # noqa: E402


def load(root: Path) -> tuple[dict[str, Any], dict[str, dict[int, dict[int, dict[str, Any]]]]]:
    """(base eval, {method: {seed: {step: eval}}})."""
    base = load_eval(str(root / "base" / "eval.json"))
    runs: dict[str, dict[int, dict[int, dict[str, Any]]]] = defaultdict(dict)
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "base"):
        match = re.fullmatch(r"(.+)-s(\d+)", folder.name)
        if not match:
            continue
        evals = {}
        for path in folder.glob("eval-*/eval.json"):
            evals[int(path.parent.name[5:])] = load_eval(str(path))
        if evals:
            runs[match.group(1)][int(match.group(2))] = evals
    return base, dict(runs)


def summary(ev: dict[str, Any]) -> dict[str, float]:
    """The numbers of one evaluation at its one length."""
    (length,) = ev["lengths"].values()
    ks = sorted(int(k) for k in length["pass_at_k"])
    top = str(ks[-1])
    out = {
        "pass@1": length["pass_at_k"]["1"]["mean"],
        "pass@8": length["pass_at_k"].get("8", {"mean": math.nan})["mean"],
        f"pass@{top}": length["pass_at_k"][top]["mean"],
        "pass@max": length["pass_at_k"][top]["mean"],
        "distinct@max": length["coverage_at_k"]["distinct"][top],
        "coverage@max": (length["coverage_at_k"]["coverage"] or {}).get(top, math.nan),
        "mode_share": length["locking"]["order_share_of_mode"],
    }
    out |= target_numbers(length.get("target"))
    return out


def target_numbers(target: dict[str, Any] | None) -> dict[str, float]:
    """The instrument's headline numbers (docs/EVAL.md, ``target``); empty without it."""
    if not target:
        return {}
    pick = {
        "b": ("b",),
        "b_hat": ("fit", "b_hat"),
        "b_hat_se": ("fit", "se"),
        "mae": ("predicted", "b", "mae"),
        "corr": ("predicted", "b", "correlation"),
        "mae_hat": ("predicted", "b_hat", "mae"),
        "fell": ("violations", "num_fell"),
        "fell_sig": ("violations", "num_significant"),
        "shift_sd": ("shifts", "std"),
        "noise_sd": ("shifts", "noise_floor_std"),
        "gap": ("balance", "gap"),
    }
    out = {}
    for name, path in pick.items():
        value: Any = target
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        out[name] = math.nan if value is None else float(value)
    top = max(target["achieved"]["distinct"], key=int)
    out["distinct_run"] = target["achieved"]["distinct"][top]
    for which in ("b", "b_hat"):
        pred = (target.get("predicted") or {}).get(which) or {}
        out[f"distinct_pred_{which}"] = float((pred.get("distinct") or {}).get(top, math.nan))
    return out


def mean_sd(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def by_step(seeds: dict[int, dict[int, dict[str, Any]]], key: str) -> tuple[list[int], list[float]]:
    """Every evaluated step and the mean of ``key`` over the seeds evaluated there (a run
    stopped early contributes its checkpoints up to where it stopped)."""
    steps = sorted(set().union(*(set(s) for s in seeds.values())))
    means = [
        statistics.mean(summary(seeds[s][step])[key] for s in seeds if step in seeds[s])
        for step in steps
    ]
    return steps, means


def frontier(base: dict[str, Any], runs: dict[str, Any], out: Path) -> None:
    b = summary(base)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, label in (
        (axes[0], "pass@max", "pass@n"),
        (axes[1], "distinct@max", "distinct correct in n"),
    ):
        ax.plot([b["pass@1"]], [b[key]], "k*", ms=12, label="base")
        colours = plt.get_cmap("tab20").colors  # one colour per method (tab10 repeats at 11)
        for i, method in enumerate(sorted(runs)):
            _, xs = by_step(runs[method], "pass@1")
            _, ys = by_step(runs[method], key)
            style = "-o" if method.startswith("trafl") else "--s"
            ax.plot([b["pass@1"], *xs], [b[key], *ys], style, ms=4, label=method,
                    color=colours[i % len(colours)])  # fmt: skip
        ax.set_xlabel("pass@1")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    n = base["num_samples"]
    axes[0].set_title(f"equal progress: pass@{n} against pass@1 (checkpoints, seed mean)")
    axes[1].set_title(f"distinct correct solutions in {n} samples")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "frontier.png", dpi=120)
    plt.close(fig)


def progress(runs: dict[str, Any], out: Path) -> None:
    """b_hat / b against step for every run trained for a tilt b (seed mean): how far towards
    its target each checkpoint got, and whether it is still moving (dashed: a knob, a variant
    or a study set beside this one). A run trained at b = 0 (the direct fit's drift) has no
    such ratio: its b_hat is in the tables."""
    trained_for = {m: by_step(r, "b")[1][0] for m, r in runs.items()}
    tilted = {m: r for m, r in runs.items() if not math.isnan(trained_for[m]) and trained_for[m]}
    if not tilted:
        return
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method in sorted(tilted):
        steps, b_hat = by_step(tilted[method], "b_hat")
        _, b = by_step(tilted[method], "b")
        style = "-o" if method.startswith("trafl-b") else "--s"
        ax.plot([0, *steps], [0, *(h / t for h, t in zip(b_hat, b, strict=True))], style, ms=4,
                label=method)  # fmt: skip
    ax.axhline(1.0, color="k", ls=":", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("b_hat / b (1 = the target)")
    ax.set_title("how far towards its tilt (fitted b_hat / trained b, seed mean)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "progress.png", dpi=120)
    plt.close(fig)


def monitor(root: Path, out: Path) -> bool:
    """Per TraFL run (seed 0): loss / loss_at_ref and the balance gap D(success) - D(failure);
    False (no figure) where there are no TraFL runs."""
    folders = sorted(root.glob("trafl-b*-s0"), key=lambda p: float(p.name.split("-b")[1][:-3]))
    if not folders:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for folder in folders:
        rows = metrics(folder)
        steps = [r["step"] for r in rows]
        ratio = [r["loss"] / r["loss_at_ref"] if r["loss_at_ref"] > 0 else math.nan for r in rows]
        gap = [r["log_ratio_success"] - r["log_ratio_failure"] for r in rows]
        (line,) = axes[0].plot(steps, smooth(ratio), label=folder.name[:-3])
        axes[1].plot(steps, smooth(gap), color=line.get_color(), label=folder.name[:-3])
        beta = float(folder.name.split("-b")[1][:-3])
        axes[1].axhline(beta, color=line.get_color(), ls=":", lw=0.8)
    axes[0].set_yscale("log")
    axes[0].set_title("TB loss / its value at theta = ref (20-step mean)")
    axes[1].set_title("D(success) - D(failure), sequence nats; dotted: b (balance)")
    axes[1].set_yscale("symlog", linthresh=1)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "monitor.png", dpi=120)
    plt.close(fig)
    return True


def metrics(folder: Path) -> list[dict[str, Any]]:
    """A TraFL run's metrics.jsonl rows that carry the balance monitor (``loss_at_ref``)."""
    rows = [json.loads(r) for r in (folder / "metrics.jsonl").read_text().splitlines() if r]
    return [r for r in rows if "loss_at_ref" in r]


MONITOR_FROM = 30  # the ratio's statistics skip the first 30 steps (the lr runs' warm-up)
REPLAY_FROM = 20  # replay's share of rows is averaged from here (the buffer fills first)


def run_monitor(rows: list[dict[str, Any]]) -> list[float] | None:
    """One run's monitor numbers (the columns of :func:`training_monitor`), None if too short."""
    rows = [r for r in rows if r["loss_at_ref"] > 0]
    ratio = sorted(r["loss"] / r["loss_at_ref"] for r in rows if r["step"] > MONITOR_FROM)
    if not ratio:
        return None
    n = len(ratio)
    high = [r["step"] for r in rows if r["loss"] / r["loss_at_ref"] > 100]
    reward = [r["reward"] for r in rows]
    replay = [r["replay_rows"] for r in rows if "replay_rows" in r and r["step"] >= REPLAY_FROM]
    last = rows[-1]
    return [ratio[n // 2], ratio[n // 10], ratio[(9 * n) // 10], high[0] if high else math.nan,
            statistics.mean(reward[:10]), statistics.mean(reward[-50:]),
            statistics.mean(replay) if replay else math.nan,
            last.get("replay_stored", math.nan), last.get("replay_prompts", math.nan)]  # fmt: skip


def training_monitor(root: Path, seeds: dict[str, list[int]]) -> list[str]:
    """Per TraFL method (means over its given seeds, the finished ones): how far from balance
    the loss stood, the reward, and (with replay) the share of replayed rows and what the
    buffer held at the end."""
    lines = ["| method | seeds | loss/loss_at_ref median (q10, q90) | first step > 100 | "
             "reward, steps 1-10 | reward, last 50 steps | replayed rows | stored (prompts) |",
             "|" + " --- |" * 8]  # fmt: skip
    for method, done in seeds.items():
        folders = [root / f"{method}-s{s}" for s in done]
        stats = [s for s in (run_monitor(metrics(f)) for f in folders) if s is not None]
        if not stats:
            continue
        m = [statistics.mean([v for v in column if not math.isnan(v)] or [math.nan])
             for column in zip(*stats, strict=True)]  # fmt: skip
        first = "-" if math.isnan(m[3]) else f"{m[3]:.0f}"
        replay = "-" if math.isnan(m[6]) else f"{m[6]:.3f}"
        stored = "-" if math.isnan(m[7]) else f"{m[7]:.0f} ({m[8]:.0f})"
        lines.append(f"| {method} | {len(stats)} | {m[0]:.1f} ({m[1]:.1f}, {m[2]:.1f}) | "
                     f"{first} | {m[4]:.3f} | {m[5]:.3f} | {replay} | {stored} |")  # fmt: skip
    return lines


def windows(rows: list[dict[str, Any]], steps: list[int]) -> list[tuple[float, float, float]]:
    """Per checkpoint step: the mean reward, the median loss / loss_at_ref and the mean balance
    gap D(success) - D(failure) over the steps since the previous checkpoint (rows with a zero
    loss_at_ref, no signal, left out; the gap over rows that logged both sides, else NaN)."""
    out, prev = [], 0
    for step in steps:
        part = [r for r in rows if prev < r["step"] <= step and r["loss_at_ref"] > 0]
        gaps = [g for r in part if math.isfinite(g := gap_of(r))]
        out.append((statistics.mean(r["reward"] for r in part),
                    statistics.median(r["loss"] / r["loss_at_ref"] for r in part),
                    statistics.mean(gaps) if gaps else math.nan))  # fmt: skip
        prev = step
    return out


def gap_of(row: dict[str, Any]) -> float:
    """One step's logged balance gap, NaN where a side is missing (a batch of one kind)."""
    success, failure = row.get("log_ratio_success"), row.get("log_ratio_failure")
    if success is None or failure is None:
        return math.nan
    return float(success) - float(failure)


def between_checkpoints(root: Path, runs: dict[str, Any]) -> list[str]:
    """Per TraFL method and checkpoint interval (means over the finished seeds): is training
    still moving when the evaluations stop moving?"""
    lines = [
        "| method | seeds | steps | reward | loss/loss_at_ref median | gap |",
        "|" + " --- |" * 6,
    ]
    for method in (m for m in sorted(runs) if "trafl" in m):
        _, done = finished(runs[method])
        steps = sorted(runs[method][done[0]])
        seeds = [windows(metrics(root / f"{method}-s{s}"), steps) for s in done]
        for i, step in enumerate(steps):
            reward, ratio, gap = (statistics.mean(w[i][j] for w in seeds) for j in (0, 1, 2))
            first = steps[i - 1] + 1 if i else 1
            lines.append(
                f"| {method} | {len(done)} | {first}-{step} | {reward:.3f} | {ratio:.2f} "
                f"| {gap:.3f} |"
            )
    return lines


def per_seed(base: dict[str, Any], runs: dict[str, Any], keys: list[str]) -> list[str]:
    """Each seed of every method with more than one, at the method's last checkpoint."""
    head = [k.replace("max", str(base["num_samples"])) for k in keys]
    lines = [
        "| method | seed | step | " + " | ".join(head) + " |",
        "|" + " --- |" * (3 + len(keys)),
    ]
    for method in sorted(runs):
        if len(runs[method]) < 2:
            continue
        for row in last_common(runs[method]):
            cells = " | ".join(f"{row.get(k, math.nan):.3f}" for k in keys)
            lines.append(f"| {method} | {row['seed']} | {row['step']} | {cells} |")
    return lines


def smooth(values: list[float], width: int = 20) -> list[float]:
    out = []
    for i in range(len(values)):
        window = [v for v in values[max(0, i - width + 1) : i + 1] if not math.isnan(v)]
        out.append(statistics.mean(window) if window else math.nan)
    return out


PASS_KEYS = ["pass@1", "pass@8", "pass@max", "distinct@max", "coverage@max", "mode_share"]
TARGET_KEYS = ["b", "b_hat", "mae", "corr", "mae_hat", "fell", "fell_sig", "shift_sd", "noise_sd",
               "distinct_pred_b", "distinct_pred_b_hat", "distinct_run", "gap"]  # fmt: skip


def finished(seeds: dict[int, dict[int, dict[str, Any]]]) -> tuple[int, list[int]]:
    """The method's last evaluated step and the seeds that reached it, in order (a run still
    going, or stopped early, is left out of every last-checkpoint table)."""
    step = max(set().union(*(set(s) for s in seeds.values())))
    return step, [s for s in sorted(seeds) if step in seeds[s]]


def last_common(seeds: dict[int, dict[int, dict[str, Any]]]) -> list[dict[str, float]]:
    """Each seed's numbers at the method's last checkpoint, over the seeds that reached it."""
    step, done = finished(seeds)
    return [summary(seeds[s][step]) | {"step": step, "seed": s} for s in done]


def table(base: dict[str, Any], runs: dict[str, Any], keys: list[str]) -> list[str]:
    """Each method at its last common checkpoint: mean ± sd over seeds."""
    n = base["num_samples"]
    head = [k.replace("max", str(n)) for k in keys]
    lines = ["| method | seeds | step | " + " | ".join(head) + " |"]
    lines.append("|" + " --- |" * (3 + len(keys)))
    if keys == PASS_KEYS:
        b = summary(base)
        lines.append("| base | - | 0 | " + " | ".join(f"{b[k]:.3f}" for k in keys) + " |")
    for method in sorted(runs):
        rows = last_common(runs[method])
        cells = [mean_sd([r.get(k, math.nan) for r in rows]) for k in keys]
        lines.append(f"| {method} | {len(rows)} | {rows[0]['step']} | " + " | ".join(cells) + " |")
    return lines


def checkpoints(runs: dict[str, Any]) -> list[str]:
    keys = ["pass@1", "pass@max", "distinct@max", "mode_share", "b_hat", "b_hat_se"]
    lines = ["| method | step | pass@1 | pass@n | distinct@n | mode share | b_hat | b_hat se |"]
    lines.append("|" + " --- |" * 8)
    for method in sorted(runs):
        steps, _ = by_step(runs[method], "pass@1")
        columns = [by_step(runs[method], key)[1] for key in keys]
        for row in zip(steps, *columns, strict=True):
            lines.append(
                f"| {method} | {row[0]} | " + " | ".join(f"{v:.3f}" for v in row[1:]) + " |"
            )
    return lines


VARIANT = re.compile(r"^(.*trafl)-[^-]+(-b[\d.]+.*)$")  # trafl-KNOB-bB...: a knob or variant


def plain_run(method: str, runs: dict[str, Any]) -> str | None:
    """The run ``method`` changes one thing of (trafl-replay0.25-b4 -> trafl-b4), when there is
    one with the same last checkpoint step to hold it against; else None."""
    match = VARIANT.match(method)
    plain = match[1] + match[2] if match else None
    if plain not in runs or finished(runs[method])[0] != finished(runs[plain])[0]:
        return None
    return plain


def counts(ev: dict[str, Any]) -> list[int]:
    (length,) = ev["lengths"].values()
    return length["correct_counts"]


def paired(runs: dict[str, Any], method: str) -> list[dict[str, Any]]:
    """Each seed's evaluation at the method's last checkpoint, in seed order."""
    step, done = finished(runs[method])
    return [runs[method][s][step] for s in done]


def differences(base: dict[str, Any], runs: dict[str, Any]) -> list[str]:
    """pass@k differences with 95 % intervals (bootstrap over problems, seeds paired in order,
    ``trafl.evaluation.seeds``): each method against the base, and each knob or variant against
    the same run without it, at the same last step (``plain_run``)."""
    n = base["num_samples"]
    ks = [1, 8, n]
    pairs = [(f"{m} - base", paired(runs, m), [base]) for m in sorted(runs)]
    for m in sorted(runs):
        if plain := plain_run(m, runs):
            pairs.append((f"{m} - {plain}", paired(runs, m), paired(runs, plain)))
    lines = ["| difference | seeds | " + " | ".join(f"pass@{k}" for k in ks) + " |"]
    lines.append("|" + " --- |" * (2 + len(ks)))
    for label, a, b in pairs:
        seeds = min(len(a), len(b)) if len(b) > 1 else len(a)
        b = b[:seeds] if len(b) > 1 else b * seeds
        diffs = pooled_difference(
            [counts(e) for e in a[:seeds]], [counts(e) for e in b], n, b[0]["num_samples"], ks
        )
        cells = [f"{d.diff:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}]" for d in diffs]
        lines.append(f"| {label} | {seeds} | " + " | ".join(cells) + " |")
    return lines


def paired_rule(diffs: list[float]) -> str:
    """The rule the third diagnosis wrote down before its runs (docs/TARGET.md, end): with the
    arm's b_hat minus the control's per seed, "supported" if every difference is positive and
    their mean exceeds twice their sd, "refuted" if the mean is negative or below one sd,
    otherwise "not settled". The sd is the sample sd (n - 1), as in the tables' mean ± sd."""
    if len(diffs) < 2:
        return "one seed: no rule"
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    if mean < 0 or mean < sd:
        return "refuted"
    if all(d > 0 for d in diffs) and mean > 2 * sd:
        return "supported"
    return "not settled"


def variant_seeds(runs: dict[str, Any], rule: bool) -> list[str]:
    """Each knob or variant against the run without it (``plain_run``), seed by seed at their
    common last step: b_hat of each, their difference, and the balance gap beside; with
    ``rule``, the outcome of ``paired_rule`` on the differences."""
    lines = ["| arm - control | step | seed | b_hat arm | b_hat control | difference | gap arm "
             "| gap control |", "|" + " --- |" * 8]  # fmt: skip
    verdicts = []
    for method in sorted(runs):
        if not (plain := plain_run(method, runs)):
            continue
        step, done = finished(runs[method])
        seeds = [s for s in done if s in finished(runs[plain])[1]]
        diffs = []
        for s in seeds:
            arm, ctl = (summary(runs[m][s][step]) for m in (method, plain))
            a_hat, a_gap, c_hat, c_gap = (
                x.get(k, math.nan) for x in (arm, ctl) for k in ("b_hat", "gap")
            )
            diffs.append(a_hat - c_hat)
            lines.append(f"| {method} - {plain} | {step} | {s} | {a_hat:.3f} | {c_hat:.3f} | "
                         f"{diffs[-1]:+.3f} | {a_gap:.3f} | {c_gap:.3f} |")  # fmt: skip
        clean = [d for d in diffs if not math.isnan(d)]
        verdict = f"; rule: **{paired_rule(clean)}**" if rule else ""
        verdicts.append(f"- {method} - {plain}: b_hat difference {mean_sd(clean)} over "
                        f"{len(clean)} seed{'s' * (len(clean) != 1)}{verdict}")  # fmt: skip
    return lines + [""] + verdicts if verdicts else []


def target_figure(runs: dict[str, Any], out: Path) -> None:
    """Achieved against predicted success per problem, seed 0's last checkpoint per method
    (at b for TraFL, at the fitted b_hat for the reward maximisers)."""
    methods = [m for m in sorted(runs) if 0 in runs[m]]
    if not methods:
        return
    cols = min(4, len(methods))
    rows = math.ceil(len(methods) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax, method in zip(axes.flat, methods, strict=False):
        ev = runs[method][0][max(runs[method][0])]
        (length,) = ev["lengths"].values()
        target = length.get("target")
        if not target:
            continue
        which = "b" if "b" in (target.get("predicted") or {}) else "b_hat"
        pred = target["predicted"][which]
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.scatter(pred["success"], target["achieved"]["success"], s=10)
        ax.scatter(target["base_success"], target["achieved"]["success"], s=6, c="0.7")
        ax.set_title(f"{method}: {which}={pred['b']:.2g}, MAE {pred['mae']:.3f}", fontsize=8)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
    for ax in axes[-1]:
        ax.set_xlabel("predicted p* (blue) / base p (grey)")
    for ax in axes[:, 0]:
        ax.set_ylabel("achieved success")
    for ax in list(axes.flat)[len(methods) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "target.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path)
    p.add_argument("--out", type=Path, default=Path("docs/target"))
    p.add_argument("--beside", metavar="LABEL=RUNS", action="append", default=[],
                   help="another study's folder or pack, its shared methods set beside these")  # fmt: skip
    p.add_argument("--rule", action="store_true",
                   help="apply the third diagnosis's rule to each variant's b_hat per seed")  # fmt: skip
    args = p.parse_args(argv)
    beside = []
    for item in args.beside:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            p.error(f"--beside {item!r}: expected LABEL=RUNS (e.g. low-confidence=runs/long)")
        beside.append((label, Path(path)))
    args.out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:  # folders, or --pack archives of target_study.py
        root = stack.enter_context(unpacked(args.root))
        others = [(label, path, stack.enter_context(unpacked(path))) for label, path in beside]
        write_report(root, args.root, args.out, others, args.rule)


def decoding(base: dict[str, Any]) -> str:
    """How the base (and, by the study's one ``sampler``, every rollout) was decoded."""
    c = base["config"]["sampler"]
    return (
        f"decoded at L = {c['gen_length']}, {c['steps']} denoiser calls, temperature "
        f"{c['temperature']:g}, {c['remasking'].replace('_', '-')} remasking"
    )


def write_report(
    root: Path,
    name: Path,
    out: Path,
    beside: list[tuple[str, Path, Path]] = (),
    rule: bool = False,
) -> None:
    """``beside``: (label, as given, folder) of other studies set beside this one; ``rule``:
    judge each variant by ``paired_rule``."""
    base, runs = load(root)
    pool = {m: s for m, s in runs.items() if not m.startswith("heldout-")}
    heldout = {m: s for m, s in runs.items() if m.startswith("heldout-")}
    others = [(label, *load(folder)) for label, _, folder in beside]
    shown = dict(pool)
    for label, _, other in others:
        shown |= {f"{label}: {m}": other[m] for m in sorted(pool) if m in other}
    frontier(base, pool, out)
    target_figure(pool, out)
    progress(shown, out)
    figures = ["frontier.png", "target.png", "progress.png", *["monitor.png"] * monitor(root, out)]
    flags = [*(f"--beside {label}={path}" for label, path, _ in beside), *["--rule"] * rule]
    command = " ".join([str(name), *flags])
    text = [
        "# Target study: the numbers",
        "",
        f"Generated by `python scripts/target_report.py {command}` from the runs of "
        f"`{made_by(pool)}`; docs/TARGET.md explains them.",
        "",
        f"Base: {base['model_name']} on {base['task']}, {base['num_problems']} problems "
        f"(the fixed pool), {base['num_samples']} samples each; {decoding(base)}.",
        "",
        "## Each method at its last checkpoint (mean ± sd over seeds)",
        "",
        *table(base, pool, PASS_KEYS),
        "",
        "## The target instrument at the last checkpoint (mean ± sd over seeds)",
        "",
        TARGET_LEGEND,
        "",
        *table(base, pool, TARGET_KEYS),
        "",
        "## Differences at the last checkpoint, with 95 % intervals over problems",
        "",
        "Seed-pooled per problem, percentile bootstrap over problems (`trafl.evaluation.seeds`); "
        "an interval that excludes 0 is a difference this pool of problems resolves, not one "
        "that another seed must repeat (the seed spread is in the tables above).",
        "",
        *differences(base, pool),
        "",
        *variant_section(pool, rule),
        "## Every checkpoint (seed means): the frontier's points",
        "",
        "b_hat se: the fit's standard error given the base's rates (the run's evaluation "
        "noise, not the base's nor the seed's; `trafl.evaluation.target.fit_shift`).",
        "",
        *checkpoints(pool),
        "",
        "## Each seed at the last checkpoint (methods with more than one)",
        "",
        *per_seed(base, pool, PASS_KEYS),
        "",
        *(monitor_section(root, pool) if any("trafl" in m for m in pool) else []),
    ]
    for label, other_base, other in others:
        text += beside_section(pool, label, other_base, other)
    if heldout:
        text += heldout_section(root, heldout)
    (out / "results.md").write_text("\n".join(text))
    print(f"wrote {out}/results.md, {', '.join(figures)}")


def made_by(runs: dict[str, Any]) -> str:
    """The script whose runs these are: the direct fit's (``direct-*``) or the study's."""
    direct = bool(runs) and all(m.startswith("direct-") for m in runs)
    return "scripts/direct_fit.py" if direct else "scripts/target_study.py"


def variant_section(runs: dict[str, Any], rule: bool) -> list[str]:
    lines = variant_seeds(runs, rule)
    if not lines:
        return []
    return [
        "## Each knob or variant against the run without it, seed by seed",
        "",
        "b_hat at their common last checkpoint, paired by seed; the balance gap beside it.",
        "",
        *lines,
        "",
    ]


def monitor_section(root: Path, runs: dict[str, Any]) -> list[str]:
    return [
        "## Training monitor (TraFL runs, means over the seeds that reached the last checkpoint)",
        "",
        f"The ratio's median and 10th / 90th percentiles over steps after {MONITOR_FROM}; "
        "1 at the start, lower as the policy balances; the first step where it passed 100 "
        "(a seed mean, over the seeds where it did); with replay, the share of rows replayed "
        f"from step {REPLAY_FROM} on and the completions (prompts) the buffer held at the end "
        "(the reward counts replayed rows too).",
        "",
        *training_monitor(root, {m: finished(runs[m])[1] for m in sorted(runs) if "trafl" in m}),
        "",
        "Between checkpoints: the mean training reward, the median of loss / loss_at_ref and "
        "the mean balance gap D(success) - D(failure) logged in training (on each step's own "
        "rollouts, in sequence nats) over the steps since the previous checkpoint (seed means).",
        "",
        *between_checkpoints(root, runs),
        "",
    ]


def beside_section(
    runs: dict[str, Any], label: str, other_base: dict[str, Any], other: dict[str, Any]
) -> list[str]:
    """The tilted methods of this study and of ``other`` (each fitted against its own base) at
    each one's last checkpoint: b_hat / b and the balance gap, seed mean ± sd and each seed."""
    lines = [
        f"## Beside {label}: the same methods, {decoding(other_base)}",
        "",
        "Each study's runs against its own base. b_hat / b: how far towards its tilt (1 = the "
        "target); gap / b: D(success) - D(failure) over b (1 at balance); mean ± sd over "
        "seeds, then each seed in order.",
        "",
        "| method | study | seeds | step | b_hat / b | each seed | gap / b | each seed |",
        "|" + " --- |" * 8,
    ]
    for method in sorted(m for m in runs if m in other):
        for study, seeds in (("here", runs[method]), (label, other[method])):
            rows = last_common(seeds)
            if math.isnan(rows[0].get("b", math.nan)):
                break  # not trained for a tilt
            cells = []
            for key in ("b_hat", "gap"):
                values = [r[key] / r["b"] for r in rows]
                cells += [mean_sd(values), ", ".join(f"{v:.3f}" for v in values)]
            head = f"| {method} | {study} | {len(rows)} | {rows[0]['step']} | "
            lines.append(head + " | ".join(cells) + " |")
    return [*lines, ""]


def heldout_section(root: Path, heldout: dict[str, Any]) -> list[str]:
    held_base = load_eval(str(root / "base-heldout" / "eval.json"))
    return [
        "## Held out: trained on the generator (`-tpN`: on N fixed training problems, "
        f"`task.train_pool`), evaluated on {held_base['num_problems']} test problems x "
        f"{held_base['num_samples']} samples",
        "",
        *table(held_base, heldout, PASS_KEYS),
        "",
        *table(held_base, heldout, TARGET_KEYS),
        "",
        *differences(held_base, heldout),
        "",
        *per_seed(held_base, heldout, PASS_KEYS),
        "",
        *monitor_section(root, heldout)[2:],
    ]


TARGET_LEGEND = (
    "b: the tilt trained for (TraFL; `center_loo` makes b = beta); b_hat: the single tilt "
    "that best fits the run's counts from the base's; mae / corr: predicted p* at b against "
    "achieved success per problem; mae_hat: the same at b_hat; fell / fell_sig: problems "
    "whose success fell (a tilt never lowers one) / of those significant (one-sided Fisher, "
    "0.05, uncorrected); shift_sd / noise_sd: spread of per-problem log-odds shifts and what "
    "sampling noise alone gives; distinct_pred_b / _b_hat / _run: distinct correct solutions "
    "in n samples predicted by the tilt and achieved; gap: D(success) - D(failure) in "
    "sequence nats (= b at balance)."
)


if __name__ == "__main__":
    try:
        main()
    except UserError as err:  # a cut-short eval.json: one line, not a traceback
        raise SystemExit(f"error: {err}") from None
