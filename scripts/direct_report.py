"""The direct fit's verdict (docs/TARGET.md sections 12, 13, 14 and 16) by the criteria written down
before its runs: per seed, the tilt the b = 4 fit adds over the b = 0 fit of the same draws,
the shape of the b = 4 fit and whether it still rises, against TraFL runs decoded the same way
(section 12, low-confidence: the remade 2000-step runs; section 13, any-order: section 9's
runs at step 1000, and the b = 0 fit must stay in place; section 14, the same fit three times
longer, its b = 0 fit allowed an offset that has stopped moving; section 16, section 14's
fits continued to step 5000 under its criteria). The folder's base decoding
and its fits' steps choose the criteria.

    python scripts/direct_report.py runs/direct --out docs/target/direct
    python scripts/direct_report.py runs/direct-random --out docs/target/direct-random
    python scripts/direct_report.py runs/direct-long --out docs/target/direct-long
    python scripts/direct_report.py runs/direct-longer --out docs/target/direct-longer

reads a folder (or a pack of it) that ``scripts/direct_fit.py`` filled, and writes
``results.md`` (or prints it without ``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from packs import unpacked  # noqa: E402
from target_report import load, target_numbers  # noqa: E402


@dataclass(frozen=True)
class Drift:
    """The b = 0 fit stays in place (sections 13 and 14): |b_hat| <= ``b_hat``, its shifts
    spread at most ``ratio`` x their noise floor, at most ``fell`` problems' success fell
    significantly, it keeps at least ``distinct`` x the base's measured distinct correct
    solutions at the largest n; and (``flat``) its b_hat's move between the criteria's two
    points, the mean over the seeds, is at most twice that mean's se (one test for the three
    seeds: about 5 % false alarms for a control that does not move, where a test per seed
    would give about 14 %)."""

    b_hat: float
    ratio: float
    fell: int
    distinct: float
    flat: bool


@dataclass(frozen=True)
class Criteria:
    """One diagnosis's criteria, written down before its runs (docs/TARGET.md), against the
    TraFL runs at b = 4 it is held against (three seeds, the same decoding)."""

    section: int
    steps: int  # the step read, for both fits
    before: int  # the earlier point the flatness tests read
    trafl_step: int  # the TraFL runs' step it is held against
    trafl: str  # TraFL's b_hat (mean +- sd over seeds) and shift sd there, as quoted
    reach: float  # t at or above it in every seed: halfway from TraFL's b_hat to b = 4
    plateau: float | None  # t at or below it in every seed, and flat: no further than TraFL
    # (None, section 14: t below ``reach`` in every seed, and flat: the fit stops short)
    shift_sd: float | None  # b = 4's shift sd at most this (None: see shape_ratio)
    shape_ratio: float | None  # b = 4's shift sd at most this x its noise floor
    drift: Drift | None  # the b = 0 fit must stay in place for either definite verdict
    reach_says: str = "TraFL's stop is TraFL's"  # what "within reach" says (section 14: less)


# section 13: the b = 0 fit stays in place if |b_hat| <= 0.25, its shifts spread at most 1.5
# times their noise floor, at most 3 problems' success fell significantly and it keeps at least
# 0.85 of the base's distinct correct solutions at the largest n; section 14 allows an offset
# of 0.5 (t subtracts it) and asks it to have stopped moving
DRIFT_13 = Drift(0.25, 1.5, 3, 0.85, False)
DRIFT_14 = Drift(0.5, 1.5, 3, 0.85, True)
# by the base's decoding (``sampler.remasking`` of its evaluation) and the fits' steps
CRITERIA = {
    # section 12: the remade 2000-step TraFL runs (docs/target/long2000-remade)
    ("low_confidence", 2000): Criteria(
        12, 2000, 1600, 2000, "2.06 +- 0.15 (shift sd 1.66)", 3.0, 2.36, 1.66, None, None
    ),
    # section 13: section 9's any-order TraFL runs at step 1000 (docs/target/random)
    ("random", 1000): Criteria(
        13, 1000, 500, 1000, "0.866 +- 0.033 (shift sd 0.742)", 2.43, 0.98, None, 1.5, DRIFT_13
    ),
    # section 14: the same fit three times longer, against the same TraFL runs (step 1000)
    ("random", 3000): Criteria(
        14,
        3000,
        2000,
        1000,
        "0.866 +- 0.033 (shift sd 0.742)",
        2.43,
        None,
        None,
        1.5,
        DRIFT_14,
        "halfway in 3000 steps, in the target's shape",
    ),
}
# section 16: section 14's fits continued to step 5000, its criteria read there
CRITERIA[("random", 5000)] = replace(
    CRITERIA[("random", 3000)],
    section=16,
    steps=5000,
    before=4000,
    reach_says="halfway in 5000 steps, in the target's shape",
)


def numbers(ev: dict[str, Any]) -> dict[str, float]:
    """The instrument's numbers of one evaluation (one length)."""
    (length,) = ev["lengths"].values()
    return target_numbers(length.get("target"))


def base_distinct(base: dict[str, Any]) -> float:
    """The base evaluation's own distinct correct solutions at its largest n, as measured (the
    b = 0 fit's measured count is held against it, like for like; the tilt's prediction at
    b = 0 is a plug-in estimate from the same counts and lower)."""
    (length,) = base["lengths"].values()
    distinct = (length.get("coverage_at_k") or {}).get("distinct") or {}
    return distinct[max(distinct, key=int)] if distinct else math.nan


def seed_row(
    runs: dict[str, Any], seed: int, c: Criteria, distinct_base: float = math.nan
) -> dict[str, float] | None:
    """One seed's numbers, None until both fits are evaluated at ``c.steps`` and b = 4 (with
    a flat drift condition, b = 0 too) at ``c.before``; ``distinct_base``: the base's measured
    distinct correct solutions."""
    last, before = c.steps, c.before
    b4, b0 = runs.get("direct-b4", {}).get(seed, {}), runs.get("direct-b0", {}).get(seed, {})
    b0_before = c.drift is not None and c.drift.flat
    if last not in b4 or before not in b4 or last not in b0 or (b0_before and before not in b0):
        return None
    end, prior, drift = numbers(b4[last]), numbers(b4[before]), numbers(b0[last])
    drift_prior = numbers(b0[before]) if before in b0 else {"b_hat": math.nan, "b_hat_se": 0.0}
    return {
        "seed": seed,
        "b_hat_b4": end["b_hat"],
        "b_hat_b0": drift["b_hat"],
        "t": end["b_hat"] - drift["b_hat"],
        "shift_sd": end["shift_sd"],
        "noise_sd": end["noise_sd"],
        "fell_sig": end["fell_sig"],
        "mae": end["mae"],
        "rise": end["b_hat"] - prior["b_hat"],
        "rise_se": math.hypot(end["b_hat_se"], prior["b_hat_se"]),
        "b0_shift_sd": drift["shift_sd"],
        "b0_noise_sd": drift["noise_sd"],
        "b0_fell_sig": drift["fell_sig"],
        "b0_distinct": drift["distinct_run"],
        "b0_distinct_base": distinct_base,
        "b0_rise": drift["b_hat"] - drift_prior["b_hat"],
        "b0_rise_se": math.hypot(drift["b_hat_se"], drift_prior["b_hat_se"]),
    }


def in_place(r: dict[str, float], d: Drift) -> bool:
    """Sections 13 and 14: the b = 0 fit did not drift from the base."""
    return (
        abs(r["b_hat_b0"]) <= d.b_hat
        and r["b0_shift_sd"] <= d.ratio * r["b0_noise_sd"]
        and r["b0_fell_sig"] <= d.fell
        and r["b0_distinct"] >= d.distinct * r["b0_distinct_base"]
    )


def b0_move(rows: list[dict[str, float]]) -> tuple[float, float]:
    """The b = 0 fit's move between the two points, mean over the seeds, and its se."""
    mean = sum(r["b0_rise"] for r in rows) / len(rows)
    return mean, math.sqrt(sum(r["b0_rise_se"] ** 2 for r in rows)) / len(rows)


def settled(rows: list[dict[str, float]], d: Drift) -> bool:
    """Section 14: the b = 0 fit has stopped moving (the seeds' mean move within 2 se)."""
    mean, se = b0_move(rows)
    return not d.flat or abs(mean) <= 2 * se


def shaped(c: Criteria, r: dict[str, float]) -> bool:
    """The b = 4 fit has the target's shape: no success fell significantly and the shifts
    spread no wider than the criteria allow."""
    limit = c.shift_sd if c.shape_ratio is None else c.shape_ratio * r["noise_sd"]
    return r["shift_sd"] <= limit and r["fell_sig"] == 0


def direct_rule(
    rows: list[dict[str, float]], c: Criteria = CRITERIA[("low_confidence", 2000)]
) -> str:
    """A diagnosis's criteria over the seeds' rows (three, written before the runs)."""
    if c.drift and not (all(in_place(r, c.drift) for r in rows) and settled(rows, c.drift)):
        return "not settled: the b = 0 fit drifts"
    if all(r["t"] >= c.reach and shaped(c, r) for r in rows):
        return f"within reach: {c.reach_says}"
    flat = all(abs(r["rise"]) <= 2 * r["rise_se"] for r in rows)
    if c.plateau is None and all(r["t"] < c.reach for r in rows) and flat:
        return "the direct fit stops short of halfway"
    if c.plateau is not None and all(r["t"] <= c.plateau for r in rows) and flat:
        return "SFT from the base gets no further than TraFL either"
    return "not settled"


def seeds_where(rows: list[dict[str, float]], holds: Callable[[dict[str, float]], bool]) -> str:
    """Which of the seeds judged a condition holds in: "every seed", "no seed", or a list
    with the others named."""
    yes = [f"{r['seed']:.0f}" for r in rows if holds(r)]
    no = [f"{r['seed']:.0f}" for r in rows if not holds(r)]
    if not no:
        return "every seed"
    if not yes:
        return "no seed"
    return f"seed{'s' * (len(yes) > 1)} {', '.join(yes)} (not {', '.join(no)})"


def conditions(rows: list[dict[str, float]], c: Criteria) -> str:
    """The b = 4 fit's conditions one by one, so that a verdict says which of them failed."""
    parts = [
        f"t >= {c.reach} in {seeds_where(rows, lambda r: r['t'] >= c.reach)}",
        f"the target's shape in {seeds_where(rows, lambda r: shaped(c, r))}",
    ]
    if c.plateau is not None:
        parts.append(f"t <= {c.plateau} in {seeds_where(rows, lambda r: r['t'] <= c.plateau)}")
    flat = seeds_where(rows, lambda r: abs(r["rise"]) <= 2 * r["rise_se"])
    parts.append(f"the rise within twice its se in {flat}")
    return "The b = 4 fit, condition by condition: " + "; ".join(parts) + "."


def report(root: Path, label: Path, c: Criteria) -> str:
    base, runs = load(root)
    last, before = c.steps, c.before
    seeds = sorted(set(runs.get("direct-b4", {})) | set(runs.get("direct-b0", {})))
    shape = (f"shift sd <= {c.shift_sd}" if c.shape_ratio is None
             else f"shift sd <= {c.shape_ratio} x noise")  # fmt: skip
    short = (f"no further: t <= {c.plateau} and flat" if c.plateau is not None
             else f"short: t < {c.reach} and flat")  # fmt: skip
    lines = [
        f"# The direct fit (docs/TARGET.md section {c.section})",
        "",
        f"Generated by `python scripts/direct_report.py {label}`. t = b_hat(direct-b4) - "
        f"b_hat(direct-b0) at step {last}; rise: b_hat(direct-b4) from step {before} to {last}, "
        f"with the se of that difference; ceiling: the b_hat of the draws' own tilted shares. "
        f"Held against TraFL at step {c.trafl_step}: {c.trafl}; reach: t >= {c.reach} with {shape} and "
        f"no significant fall; {short}.",
        "",
        "| seed | b_hat b4 | b_hat b0 | t | ceiling b4 | ceiling b0 | shift sd (noise) | fell sig "
        "| mae | rise (se) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = []
    for seed in seeds:
        row = seed_row(runs, seed, c, base_distinct(base))
        if row is None:
            lines.append(f"| {seed} | not evaluated at steps {before} and {last} yet |")
            continue
        rows.append(row)
        cap = ceilings(root, seed)
        lines.append(
            f"| {seed} | {row['b_hat_b4']:.3f} | {row['b_hat_b0']:.3f} | {row['t']:.3f} | "
            f"{cap.get('b4', math.nan):.3f} | {cap.get('b0', math.nan):.3f} | "
            f"{row['shift_sd']:.3f} ({row['noise_sd']:.3f}) | {row['fell_sig']:.0f} | "
            f"{row['mae']:.3f} | {row['rise']:+.3f} ({row['rise_se']:.3f}) |"
        )
    if c.drift:
        lines += ["", *drift_table(rows, c)]
    if rows:
        lines += ["", conditions(rows, c)]
    verdict = direct_rule(rows, c) if len(rows) == 3 else f"not judged: {len(rows)} of 3 seeds"
    return "\n".join([*lines, "", f"Verdict by the written criteria: **{verdict}**.", ""])


def drift_table(rows: list[dict[str, float]], c: Criteria) -> list[str]:
    """The b = 0 fit against the base, by the seeds judged (the drift condition)."""
    d = c.drift
    assert d is not None
    head = (f"The b = 0 fit stays in place if |b_hat| <= {d.b_hat}, shift sd <= {d.ratio} x "
            f"noise, fell sig <= {d.fell}")  # fmt: skip
    if d.flat:
        head += (f", distinct >= {d.distinct} x the base's, and its b_hat, the mean over the "
                 f"seeds, moved at most 2 se from step {c.before}:")  # fmt: skip
    else:
        head += f" and distinct >= {d.distinct} x the base's:"
    moved = " b_hat b0 move (se) |" if d.flat else ""
    lines = [
        head,
        "",
        f"| seed | b_hat b0 | shift sd b0 (noise) | fell sig b0 | distinct b0 (base) |{moved} "
        "in place |",
        "| --- | --- | --- | --- | --- |" + (" --- |" if d.flat else "") + " --- |",
    ]
    for r in rows:
        move = f" {r['b0_rise']:+.3f} ({r['b0_rise_se']:.3f}) |" if d.flat else ""
        lines.append(
            f"| {r['seed']:.0f} | {r['b_hat_b0']:.3f} | {r['b0_shift_sd']:.3f} ({r['b0_noise_sd']:.3f}) | "
            f"{r['b0_fell_sig']:.0f} | {r['b0_distinct']:.3f} ({r['b0_distinct_base']:.3f}) |{move} "
            f"{'yes' if in_place(r, d) else 'no'} |"
        )
    if d.flat and rows:
        mean, se = b0_move(rows)
        state = "settled" if settled(rows, d) else "still moving"
        lines += ["", f"The b = 0 fit's move from step {c.before} to {c.steps}, mean over the "
                  f"seeds: {mean:+.3f} ({se:.3f}): {state}."]  # fmt: skip
    return lines


def ceilings(root: Path, seed: int) -> dict[str, float]:
    """Each fit's ceiling (``ceiling.json`` beside its evaluations), by tilt."""
    out = {}
    for tilt in ("b4", "b0"):
        path = root / f"direct-{tilt}-s{seed}" / "ceiling.json"
        if path.is_file():
            out[tilt] = json.loads(path.read_text())["b_hat"]
    return out


def fit_steps(root: Path) -> int:
    """The fits' training steps: as their saved configs say (``direct-*/config.yaml``), or,
    with none saved, the last step evaluated."""
    for path in sorted(root.glob("direct-*/config.yaml")):
        return int(yaml.safe_load(path.read_text())["steps"])
    evals = [int(e.name.split("-")[1]) for e in root.glob("direct-*/eval-*")]
    return max(evals, default=0)


def criteria(root: Path) -> Criteria:
    """The criteria of the diagnosis the folder belongs to, by its base's decoding and its
    fits' steps; none written for them is refused in one line."""
    saved = yaml.safe_load((root / "base" / "eval_config.yaml").read_text())
    key = (saved["sampler"]["remasking"], fit_steps(root))
    if key not in CRITERIA:
        written = ", ".join(f"remasking={r} with {n} steps" for r, n in CRITERIA)
        sys.exit(
            f"no criteria written for remasking={key[0]} with {key[1]} steps; written: {written}"
        )
    return CRITERIA[key]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path, help="runs/direct, or a pack of it")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    with unpacked(args.root) as root:
        text = report(root, args.root, criteria(root))
    if args.out is None:
        print(text)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    print(f"wrote {args.out / 'results.md'}")


if __name__ == "__main__":
    main()
