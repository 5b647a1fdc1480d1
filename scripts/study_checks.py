"""Checks docs/TARGET.md quotes beside its generated reports, from a study folder or pack.

    python scripts/study_checks.py seeds results/target/direct-long.tgz direct-b4
    python scripts/study_checks.py pair results/target/study.tgz trafl-temp1.3-b8 trafl-b8 --seeds 0 2
    python scripts/study_checks.py pair results/target/drawn.tgz trafl-drawn-b4 direct-b4 \
        --b-from results/target/direct-random.tgz --step 500
    python scripts/study_checks.py same results/target/direct-random.tgz \
        results/target/direct-long.tgz direct-b4-s0 1000
    python scripts/study_checks.py reach results/target/random-long.tgz trafl-b4 \
        --step 3000 --before 2000 --bound 1.50
    python scripts/study_checks.py weights runs/direct-long/direct-b4-s0/model \
        runs/direct-longer/direct-b4-s0/checkpoint-3000/model
    python scripts/study_checks.py training results/target/drawn-path.tgz trafl-drawnpath-b4 \
        --step 500 --pace 10 490

``seeds``: one method's every seed at every evaluated step (pass@1, pass@max, distinct, b_hat, shift
spread over its noise floor), which the reports give at the last step or as seed means. ``pair``:
the seed-pooled pass@k differences of ``target_report``'s "Differences" table, on a chosen subset of
the seeds (``--seeds``), then each seed's b_hat difference and their mean ± se; at ``--step``
(default: the last step both evaluated), with ``b`` from another study's folder or pack on the same
base (``--b-from``). ``same``: whether one run's evaluation at a step (and its direct fit's ceiling,
if any) is the same in two packs in every count, whatever paths, times and floating-point noise
differ. ``reach``: section 15's rule (TARGET.md, written before its runs): does a method's fitted
tilt get past a bound in every seed, or stop below it? ``weights``: whether two saved models hold
the same tensors bit for bit (a continuation that retrains steps against the run it continues,
section 16; their files' bytes can differ in metadata order). ``training``: each seed's logged
gradients up to ``--step`` (the policy's norm before clipping: its median and the share of steps
past ``optim.grad_clip``; log Z's own, clipped as its own group), ``log_z`` at the step and its
range, and the pace in seconds a step between the two steps of ``--pace`` (the runs' own times,
which restart at a resume: nan across one).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from contextlib import ExitStack
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
import yaml
from packs import unpacked
from safetensors.torch import load_file
from target_report import counts, load, summary

from trafl.evaluation.seeds import pooled_difference

COUNTS = ("correct_counts", "solution_counts")  # per problem: what a reproduction must repeat


def seeds(root: Path, method: str) -> list[str]:
    _, runs = load(root)
    lines = ["seed step pass@1 pass@max distinct b_hat shift/noise fell_sig"]
    for seed, evals in sorted(runs[method].items()):
        for step, ev in sorted(evals.items()):
            s = summary(ev)
            ratio = s.get("shift_sd", math.nan) / s.get("noise_sd", math.nan)
            lines.append(
                f"{seed} {step} {s['pass@1']:.3f} {s['pass@max']:.3f} {s['distinct@max']:.3f} "
                f"{s.get('b_hat', math.nan):.3f} {ratio:.3f} {s.get('fell_sig', math.nan):.0f}"
            )
    return lines


SAME_PROBLEMS = ("task", "split", "problems_sha1", "num_samples")  # what two evaluations share


def differs(first: dict[str, Any], second: dict[str, Any], counted: bool) -> str | None:
    """The first thing two evaluations do not share (problems, samples, length, and with
    ``counted`` the base's correct counts), as "FIELD X vs Y"; None if none."""
    for key in SAME_PROBLEMS:
        if first.get(key) != second.get(key):
            return f"{key} {first.get(key)!r} vs {second.get(key)!r}"
    if list(first["lengths"]) != list(second["lengths"]):
        return f"lengths {list(first['lengths'])} vs {list(second['lengths'])}"
    if counted and counts(first) != counts(second):
        return f"correct counts (sum {sum(counts(first))} vs {sum(counts(second))})"
    return None


def paired_runs(
    root: Path, a: str, b: str, chosen: list[int], other: Path | None, step: int | None
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """(base, {a: ..., b: ...}, step) once every check holds; else one line saying what is
    wrong and what is valid."""
    if len(set(chosen)) != len(chosen):
        raise SystemExit(f"--seeds {chosen}: each seed once")
    base, runs = load(root)
    if other is not None:
        other_base, other_runs = load(other)
        if why := differs(base, other_base, counted=True):
            raise SystemExit(f"--b-from: its base is not the base of {a}'s study ({why})")
        runs = {a: runs.get(a, {}), b: other_runs.get(b, {})}
    for m, where in ((a, "the first study"), (b, "--b-from" if other else "the first study")):
        if not runs.get(m):
            raise SystemExit(f"{m}: no evaluated run in {where}")
        if missing := [s for s in chosen if s not in runs[m]]:
            raise SystemExit(f"{m}: no seed {missing}; seeds: {sorted(runs[m])}")
    common = set.intersection(*(set(runs[m][s]) for m in (a, b) for s in chosen))
    if not common or (step is not None and step not in common):
        at = "no step" if step is None else f"step {step}"
        raise SystemExit(f"{at}: not evaluated for both in seeds {chosen}; both: {sorted(common)}")
    step = max(common) if step is None else step
    for s in chosen:
        if why := differs(runs[a][s][step], runs[b][s][step], counted=False):
            raise SystemExit(f"seed {s} at step {step}: the two evaluations differ in {why}")
    return base, runs, step


def pair(
    root: Path, a: str, b: str, chosen: list[int], other: Path | None = None,
    step: int | None = None, label: str | None = None,
) -> list[str]:  # fmt: skip
    """``a`` against ``b`` in the same seeds at one step (their last common one by default):
    seed-pooled pass@k differences, then each seed's b_hat difference (se of the two fits in
    quadrature, as if independent) and their mean ± se over seeds. ``b`` may come from
    ``other``, another study's folder or pack (named ``label`` in the output), which must hold
    the same base evaluation."""
    base, runs, step = paired_runs(root, a, b, chosen, other, step)
    n = base["num_samples"]
    ks = [1, 8, n]
    first = [counts(runs[a][s][step]) for s in chosen]
    second = [counts(runs[b][s][step]) for s in chosen]
    diffs = pooled_difference(first, second, n, n, ks)
    cells = [
        f"pass@{k} {d.diff:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}]" for k, d in zip(ks, diffs, strict=True)
    ]
    source = f" ({b} from {label or other})" if other is not None else ""
    lines = [f"{a} - {b}, seeds {chosen}, step {step}{source}: " + "; ".join(cells)]
    hats = []
    for s in chosen:
        x, y = (summary(runs[m][s][step]) for m in (a, b))
        (xb, xs), (yb, ys) = (
            (v.get("b_hat", math.nan), v.get("b_hat_se", math.nan)) for v in (x, y)
        )
        hats.append(xb - yb)  # NaN for an evaluation without the target instrument
        se = math.hypot(xs, ys)
        lines.append(f"seed {s}: b_hat {xb:.3f} - {yb:.3f} = {hats[-1]:+.3f} (se {se:.3f})")
    if len(hats) > 1:
        se = statistics.stdev(hats) / math.sqrt(len(hats))
        lines.append(f"b_hat difference {statistics.mean(hats):+.3f} +- {se:.3f} (se over seeds)")
    return lines


def length(ev: dict[str, Any]) -> dict[str, Any]:
    (one,) = ev["lengths"].values()
    return one


def same(first: Path, second: Path, run: str, step: int) -> list[str]:
    """Counts per problem and the fitted tilt must be equal; the rest may carry float noise."""
    a, b = (
        json.loads((r / run / f"eval-{step}" / "eval.json").read_text()) for r in (first, second)
    )
    la, lb = length(a), length(b)
    out = [f"{key}: {'equal' if la.get(key) == lb.get(key) else 'DIFFER'}" for key in COUNTS]
    fa, fb = la["target"]["fit"], lb["target"]["fit"]
    out.append(f"b_hat: {fa['b_hat']!r} / {fb['b_hat']!r} ({'equal' if fa == fb else 'DIFFER'})")
    ceilings = [r / run / "ceiling.json" for r in (first, second)]
    if all(c.is_file() for c in ceilings):
        ca, cb = (json.loads(c.read_text()) for c in ceilings)
        same_fit = ca["b_hat"] == cb["b_hat"] and ca["se"] == cb["se"]
        out.append(
            f"ceiling b_hat: {ca['b_hat']!r} / {cb['b_hat']!r} ({'equal' if same_fit else 'DIFFER'})"
        )
    return out


def reach(
    root: Path, method: str, step: int, before: int, bound: float, seeds: int = 3
) -> list[str]:
    """Per seed: b_hat at ``step`` and its move from ``before`` (se: the two evaluations' se
    in quadrature, as if independent); then the rule: "past the bound" if every seed's b_hat
    >= ``bound``, "stops short" if every seed is below it and every seed's |move| is within
    twice its se, else not settled; not settled too while fewer than ``seeds`` seeds are
    evaluated at both steps."""
    _, runs = load(root)
    lines = ["seed b_hat se rise rise_se flat above"]
    above, flat = [], []
    for seed, evals in sorted(runs.get(method, {}).items()):
        if step not in evals or before not in evals:
            lines.append(f"{seed} not evaluated at steps {before} and {step}")
            continue
        end, prior = summary(evals[step]), summary(evals[before])
        rise = end["b_hat"] - prior["b_hat"]
        rise_se = math.hypot(end["b_hat_se"], prior["b_hat_se"])
        above.append(end["b_hat"] >= bound)
        flat.append(abs(rise) <= 2 * rise_se)
        lines.append(
            f"{seed} {end['b_hat']:.3f} {end['b_hat_se']:.3f} {rise:+.3f} {rise_se:.3f} "
            f"{'yes' if flat[-1] else 'no'} {'yes' if above[-1] else 'no'}"
        )
    if len(above) < seeds:
        verdict = f"not settled ({len(above)} of {seeds} seeds evaluated at both steps)"
    elif all(above):
        verdict = f"past the bound {bound:g} in every seed"
    elif not any(above) and all(flat):
        verdict = f"stops short: below {bound:g} and not moving in every seed"
    else:
        verdict = "not settled"
    return [*lines, f"{method} at step {step}: {verdict}"]


def weights(first: Path, second: Path) -> list[str]:
    """The two models' tensors (``model.safetensors`` in each folder) compared bit for bit."""
    a, b = (load_file(str(folder / "model.safetensors")) for folder in (first, second))
    if a.keys() != b.keys():
        return [f"different tensors: {sorted(a.keys() ^ b.keys())}"]
    shaped = [k for k in sorted(a) if a[k].shape == b[k].shape]
    differ = [k for k in sorted(a) if k not in shaped or a[k].dtype != b[k].dtype
              or not torch.equal(a[k], b[k])]  # fmt: skip
    gap = max(((a[k].double() - b[k].double()).abs().max().item() for k in shaped), default=0.0)
    verdict = f"{len(differ)} differ, e.g. {differ[0]}" if differ else "equal bit for bit"
    return [f"{len(a)} tensors, max |difference| {gap:g}: {verdict}"]


def seconds_a_step(rows: dict[int, dict[str, Any]], first: int, last: int) -> float:
    """Seconds a step from ``first`` to ``last`` by the logged times, which restart at each
    resume: nan where the run resumed in between (a time not above the one before)."""
    times = [rows[s]["time"] for s in sorted(rows) if first <= s <= last]
    if first not in rows or last not in rows or any(b <= a for a, b in pairwise(times)):
        return math.nan
    return (rows[last]["time"] - rows[first]["time"]) / (last - first)


def training(root: Path, method: str, step: int, pace: tuple[int, int] | None) -> list[str]:
    """Per seed, from its metrics.jsonl and config.yaml (steps 1 to ``step``; a resume cuts the
    log back to its checkpoint, so each step is logged once, its time restarting there)."""
    lines = ["seed grad_med clipped objective_med objective_clipped log_z log_z_min log_z_max pace"]
    for folder in sorted(root.glob(f"{method}-s*")):
        clip = (yaml.safe_load((folder / "config.yaml").read_text()) or {})["optim"]["grad_clip"]
        logged = map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())
        rows = {r["step"]: r for r in logged if "grad_norm" in r and r["step"] <= step}
        if step not in rows:
            lines.append(f"{folder.name[len(method) + 2 :]} not trained to step {step}")
            continue
        past = clip if clip > 0 else math.inf
        g = [r["grad_norm"] for r in rows.values()]
        own = [r.get("objective_grad_norm", math.nan) for r in rows.values()]
        z = [r["log_z"] for r in rows.values()]
        seconds = seconds_a_step(rows, *pace) if pace else math.nan
        lines.append(
            f"{folder.name[len(method) + 2 :]} {statistics.median(g):.3f} "
            f"{sum(x > past for x in g) / len(g):.3f} {statistics.median(own):.3f} "
            f"{sum(x > past for x in own) / len(own):.3f} {rows[step]['log_z']:+.3f} "
            f"{min(z):+.3f} {max(z):+.3f} {seconds:.2f}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("seeds")
    s.add_argument("root", type=Path)
    s.add_argument("method")
    q = sub.add_parser("pair")
    q.add_argument("root", type=Path)
    q.add_argument("a")
    q.add_argument("b")
    q.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    q.add_argument("--b-from", type=Path, help="another study's folder or pack holding b")
    q.add_argument("--step", type=int, help="the step (default: the last both evaluated)")
    r = sub.add_parser("same")
    r.add_argument("first", type=Path)
    r.add_argument("second", type=Path)
    r.add_argument("run")
    r.add_argument("step", type=int)
    t = sub.add_parser("reach")
    t.add_argument("root", type=Path)
    t.add_argument("method")
    t.add_argument("--step", type=int, required=True)
    t.add_argument("--before", type=int, required=True)
    t.add_argument("--bound", type=float, required=True)
    t.add_argument("--seeds", type=int, default=3, help="seeds the rule needs")
    w = sub.add_parser("weights")
    w.add_argument("first", type=Path, help="a saved model's folder")
    w.add_argument("second", type=Path)
    g = sub.add_parser("training")
    g.add_argument("root", type=Path)
    g.add_argument("method")
    g.add_argument("--step", type=int, required=True, help="the last step counted")
    g.add_argument("--pace", type=int, nargs=2, metavar=("FROM", "TO"), help="steps timed")
    args = p.parse_args(argv)
    with ExitStack() as stack:
        if args.what == "weights":
            lines = weights(args.first, args.second)
        elif args.what == "same":
            first, second = (stack.enter_context(unpacked(x)) for x in (args.first, args.second))
            lines = same(first, second, args.run, args.step)
        else:
            root = stack.enter_context(unpacked(args.root))
            if args.what == "seeds":
                lines = seeds(root, args.method)
            elif args.what == "reach":
                lines = reach(root, args.method, args.step, args.before, args.bound, args.seeds)
            elif args.what == "training":
                lines = training(root, args.method, args.step, args.pace)
            else:
                other = stack.enter_context(unpacked(args.b_from)) if args.b_from else None
                lines = pair(root, args.a, args.b, args.seeds, other, args.step, str(args.b_from))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
