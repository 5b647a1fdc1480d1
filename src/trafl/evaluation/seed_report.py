"""Markdown from several seeds of each method: ``seeds = {method: {seed: eval.json}}``, the
base under ``"base"`` (``scripts/reproduce.sh``, docs/REPRODUCTION.md).

The difference to the base (or to another method) is paired per problem with the base evaluated
under the same seed, pooled over seeds (``trafl.evaluation.seeds``); ▼ / ▲ mark a 95 % interval
entirely below / above 0. One bootstrap, ``pooled_difference``, as in
:mod:`trafl.evaluation.report`, so the demo of a seed and the reproduction agree on significance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from trafl.evaluation.report import BASE, Seeds, fmt
from trafl.evaluation.seeds import PooledDifference, pooled_difference


def seed_mean(
    evals: dict[int, dict[str, Any]], length: str, get: Callable[[dict[str, Any]], Any]
) -> float | None:
    """Mean over seeds of ``get(eval.json["lengths"][length])``, skipping missing values."""
    values = [get(e["lengths"][length]) for e in evals.values() if length in e["lengths"]]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def shared_seeds(data: Seeds, method: str, other: str = BASE) -> list[int]:
    """The seeds both methods were evaluated under (the pairs of a paired difference)."""
    return sorted(set(data.get(method, {})) & set(data.get(other, {})))


def largest_k(data: Seeds, length: str) -> int:
    """The largest budget k of the base's pass@k at ``length``."""
    return max(int(k) for k in next(iter(data[BASE].values()))["lengths"][length]["pass_at_k"])


def differences(
    data: Seeds, method: str, length: str, against: str = BASE
) -> list[PooledDifference]:
    """pass@k(method) - pass@k(against) per k (by default against the base), paired per seed
    and problem, pooled over seeds (at least one shared seed)."""
    seeds = shared_seeds(data, method, against)
    m = [data[method][s]["lengths"][length]["correct_counts"] for s in seeds]
    b = [data[against][s]["lengths"][length]["correct_counts"] for s in seeds]
    n_m, n_b = data[method][seeds[0]]["num_samples"], data[against][seeds[0]]["num_samples"]
    ks = [int(k) for k in data[against][seeds[0]]["lengths"][length]["pass_at_k"]]
    return pooled_difference(m, b, n_m, n_b, ks)


def head_to_head_table(
    data: Seeds, pairs: list[tuple[str, str]], lengths: list[str], labels: dict[str, str]
) -> list[str]:
    """One row per (method, other) evaluated under a seed in common: pass@1 and pass@k_max of
    method - other at each length, paired per seed and problem like the differences to the base
    (▼ / ▲ as there), with the number of seeds paired."""
    k_max = largest_k(data, lengths[0])
    cols = [f"L={n} pass@{k}" for n in lengths for k in (1, k_max)]
    head = "| method | against | seeds | " + " | ".join(cols) + " |"
    lines = [head, "|---|---|---|" + "---|" * len(cols)]
    for method, other in pairs:
        seeds = shared_seeds(data, method, other)
        if not seeds:
            continue
        cells = []
        for length in lengths:
            by_k = {d.k: d for d in differences(data, method, length, against=other)}
            cells += [difference_text(by_k[1]), difference_text(by_k[k_max])]
        names = f"{labels.get(method, method)} | {labels.get(other, other)} | {len(seeds)}"
        lines.append(f"| {names} | " + " | ".join(cells) + " |")
    return lines


def difference_text(d: PooledDifference) -> str:
    """``+0.012``, with ``**▼**`` / ``▲`` when the interval lies entirely below / above 0."""
    mark = " **▼**" if d.hi < 0 else (" ▲" if d.lo > 0 else "")
    return f"{d.diff:+.3f}{mark}"


def methods_of(data: Seeds) -> list[str]:
    return [m for m in data if m != BASE]


def seed_passk_table(data: Seeds, length: str, labels: dict[str, str]) -> list[str]:
    """pass@k means over seeds, the method rows with their difference to the base."""
    ks = list(next(iter(data[BASE].values()))["lengths"][length]["pass_at_k"])
    lines = [
        "| method | seeds | " + " | ".join(f"pass@{k}" for k in ks) + " |",
        "|---|---|" + "---|" * len(ks),
    ]
    for method in [BASE, *methods_of(data)]:
        evals = data[method]
        diffs = {} if method == BASE else {d.k: d for d in differences(data, method, length)}
        cells = []
        for k in ks:
            cell = fmt(seed_mean(evals, length, lambda r, k=k: r["pass_at_k"][k]["mean"]))
            cells.append(cell if method == BASE else f"{cell} ({difference_text(diffs[int(k)])})")
        lines.append(f"| {labels.get(method, method)} | {len(evals)} | " + " | ".join(cells) + " |")
    return lines


def seed_diversity_table(data: Seeds, length: str, labels: dict[str, str]) -> list[str]:
    """Greedy accuracy, coverage and reveal-order locking, means over seeds."""
    lines = [
        "| method | greedy | distinct correct / problem | solution-set coverage | "
        "share on modal order | order entropy (norm.) | rank distance | "
        "correct: share on modal order |",
        "|---|---|---|---|---|---|---|---|",
    ]
    getters: list[Callable[[dict[str, Any]], Any]] = [
        lambda r: r.get("greedy_accuracy"),
        lambda r: r["coverage"]["mean_distinct_correct"],
        lambda r: r["coverage"]["mean_coverage"],
        lambda r: r["locking"]["order_share_of_mode"],
        lambda r: r["locking"]["order_entropy_normalized"],
        lambda r: r["locking"]["mean_pairwise_rank_distance"],
        lambda r: r["locking"]["correct_order_share_of_mode"],
    ]
    for method in [BASE, *methods_of(data)]:
        row = [fmt(seed_mean(data[method], length, get)) for get in getters]
        lines.append(f"| {labels.get(method, method)} | " + " | ".join(row) + " |")
    return lines


def mean_sd(values: list[float], of: int, digits: int = 2, unit: str = "") -> str:
    """``1.23 ± 0.04`` (mean ± sd over seeds; the sd of one value is left out) and ``unit``,
    ``-`` if none, with how many seeds had a value when fewer than ``of`` did."""
    if not values:
        return "-"
    text = f"{np.mean(values):.{digits}f}"
    text += ("" if len(values) == 1 else f" ± {np.std(values, ddof=1):.{digits}f}") + unit
    return text + ("" if len(values) == of else f" ({len(values)} of {of} seeds)")


SEED_TARGET_LEGEND = (
    "b: the sequence tilt trained towards (- for a reward maximiser); b̂: the single shift of "
    "every problem's log-odds of success that best explains the run's given the base's (mean ± "
    "sd over seeds; a fit at the search bound, where no finite shift fits, is left out and "
    "counted); shift sd / floor: how far per-problem shifts scatter beyond sampling noise (1x: "
    "the shape of a tilt), over the same seeds; fell: problems whose success fell significantly "
    "(one-sided Fisher at 0.05) / at all, summed over seeds, of problems x seeds (a tilt never "
    "lowers one); distinct@k: distinct correct solutions per problem predicted by the tilt at b̂ "
    "and the run's, over the seeds with a prediction; gap: the balance gap, equal to b at the "
    "target."
)
SEED_TARGET_HEADER = ["method", "seeds", "b", "b̂", "shift sd / floor", "fell: sig. / all",
                      "distinct@k: b̂ / run", "gap"]  # fmt: skip


def seed_target_table(data: Seeds, length: str, labels: dict[str, str]) -> list[str]:
    """The target instrument over seeds, one row per method with a ``target`` entry at
    ``length`` (:func:`seed_target_cells`)."""
    lines = ["| " + " | ".join(SEED_TARGET_HEADER) + " |", "|---" * len(SEED_TARGET_HEADER) + "|"]
    for method in methods_of(data):
        targets = [
            e["lengths"][length]["target"]
            for e in data[method].values()
            if (e["lengths"].get(length) or {}).get("target")
        ]
        if targets:
            cells = [labels.get(method, method), *seed_target_cells(targets)]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def seed_target_cells(targets: list[dict[str, Any]]) -> list[str]:
    """The tilt trained for; b̂, the shift spread's ratio to its noise floor and the balance gap
    (mean ± sd over the seeds where each is defined; b̂ and the spread only where the fit is
    inside the search bound); the problems that fell (summed); distinct@k at the largest k as
    the tilt at b̂ predicts it and as the run found it (means over the same seeds)."""
    n = len(targets)
    fitted = [t for t in targets if t["fit"]["b_hat"] is not None and not t["fit"].get("at_bound")]
    at_bound = sum(1 for t in targets if t["fit"].get("at_bound"))
    b_hat = mean_sd([t["fit"]["b_hat"] for t in fitted], n - at_bound)
    if at_bound:
        bounds = sorted({f"{t['fit']['b_hat']:+.0f}" for t in targets if t["fit"].get("at_bound")})
        b_hat += f" (and {at_bound} at the bound {'/'.join(bounds)})"
    spreads = [t["shifts"]["std"] / t["shifts"]["noise_floor_std"] for t in fitted
               if t["shifts"].get("noise_floor_std")]  # fmt: skip
    gaps = [t["balance"]["gap"] for t in targets
            if t.get("balance") and t["balance"].get("gap") is not None]  # fmt: skip
    k = str(max(int(k) for k in targets[0]["achieved"]["distinct"]))
    pairs = [pair for t in targets if (pair := distinct_pair(t, k)) is not None]
    distinct = "-"
    if pairs:
        predicted, found = np.mean(pairs, axis=0)
        distinct = f"{predicted:.2f} / {found:.2f}"
        distinct += "" if len(pairs) == n else f" ({len(pairs)} of {n} seeds)"
    b = sorted({t["b"] for t in targets if t["b"] is not None})
    return [
        str(n),
        "/".join(fmt(x, 2) for x in b) or "-",
        b_hat,
        mean_sd(spreads, len(fitted), 1, "x"),
        f"{sum(t['violations']['num_significant'] for t in targets)} / "
        f"{sum(t['violations']['num_fell'] for t in targets)} of "
        f"{sum(t['num_problems'] for t in targets)}",
        f"k={k}: {distinct}",
        mean_sd(gaps, n),
    ]


def distinct_pair(target: dict[str, Any], k: str) -> tuple[float, float] | None:
    """(distinct@k the tilt at b̂ predicts, distinct@k the run found), or None without both."""
    predicted = ((target["predicted"].get("b_hat") or {}).get("distinct") or {}).get(k)
    found = target["achieved"]["distinct"].get(k)
    return None if predicted is None or found is None else (predicted, found)


def seed_spread_table(data: Seeds, lengths: list[str], labels: dict[str, str]) -> list[str]:
    """Per method and length: the smallest and largest per-seed mean difference to the base,
    at k = 1 and at the largest k."""
    k_max = largest_k(data, lengths[0])
    cols = [f"L={n} pass@{k}" for n in lengths for k in (1, k_max)]
    lines = ["| method | seeds | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for method in methods_of(data):
        cells = []
        for length in lengths:
            by_k = {d.k: d for d in differences(data, method, length)}
            for k in (1, max(by_k)):
                cells.append(f"{by_k[k].seed_min:+.3f} .. {by_k[k].seed_max:+.3f}")
        seeds = len(shared_seeds(data, method))
        lines.append(f"| {labels.get(method, method)} | {seeds} | " + " | ".join(cells) + " |")
    return lines


def seed_verdict(data: Seeds, method: str, lengths: list[str], labels: dict[str, str]) -> str:
    """One sentence: in how many (length, k) cells the method is below the base, and where the
    pooled 95 % interval lies entirely below 0."""
    below, significant, cells = [], [], 0
    for length in lengths:
        for d in differences(data, method, length):
            cells += 1
            if d.diff < 0:
                below.append(f"L={length} k={d.k}")
            if d.hi < 0:
                significant.append(f"L={length} k={d.k}")
    seeds = len(shared_seeds(data, method))
    head = f"**{labels.get(method, method)}** ({seeds} seed{'s' if seeds != 1 else ''}): "
    if not below:
        return head + f"at or above the base in all {cells} (length, k) cells."
    text = head + f"below the base in {len(below)} of {cells} cells ({', '.join(below[:8])}"
    text += ", ...)" if len(below) > 8 else ")"
    if significant:
        return text + f"; significantly (95 % interval below 0) at {', '.join(significant)}."
    return text + "; none of these drops is significant (every 95 % interval includes 0)."


def seed_sections(
    data: Seeds, lengths: list[str], labels: dict[str, str], figure: str
) -> list[str]:
    """Verdicts, the figure, the seed-to-seed spread and one section per length."""
    lines = [
        "## Verdicts",
        "",
        *[f"- {seed_verdict(data, m, lengths, labels)}" for m in methods_of(data)],
        "",
        f"![pass@k and difference to the base]({figure})",
        "",
        "## Seed to seed",
        "",
        "Smallest .. largest per-seed mean difference to the base (each seed against its own "
        "base evaluation): how far one run of a method can land from another.",
        "",
        *seed_spread_table(data, lengths, labels),
        "",
    ]
    for length in lengths:
        lines += [f"## L = {length}", "", "pass@k, mean over seeds (difference to the base):", ""]
        lines += seed_passk_table(data, length, labels)
        lines += ["", "Coverage and reveal-order locking (means over seeds):", ""]
        lines += seed_diversity_table(data, length, labels) + [""]
        target = seed_target_table(data, length, labels)
        if len(target) > 2:
            lines += ["How far each method is from a tilt of the base (the target instrument, "
                      "each seed against its own base evaluation; docs/EVAL.md):", ""]  # fmt: skip
            lines += target + ["", SEED_TARGET_LEGEND, ""]
    return lines
