"""Markdown from ``eval.json`` results: strings only (the commands print or write them).

Two shapes of input, both of plain ``eval.json`` dicts (schema in docs/EVAL.md):

- ``results = {name: eval.json}``: one evaluation per method, compared with the method named
  ``base`` (``trafl compare``, the demo's ``report.md``). A cell (length, k) is *below the base*
  when the method's mean pass@k is below the base's; the table marks it with ↓.
- ``seeds = {method: {seed: eval.json}}``, the base under ``"base"``: several seeds of each
  method, in :mod:`trafl.evaluation.seed_report` (docs/REPRODUCTION.md).

Every interval here comes from one bootstrap, ``pooled_difference`` (one seed is the paired
bootstrap of the comparison), so the demo of a seed and the reproduction agree on significance.
"""

from __future__ import annotations

from typing import Any

from trafl.evaluation.seeds import pooled_difference

Results = dict[str, dict[str, Any]]  # {name: eval.json}
Seeds = dict[str, dict[int, dict[str, Any]]]  # {method: {seed: eval.json}}, base under "base"
BASE = "base"  # the key of the base in ``Seeds``


def fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def cells_text(cells: list[tuple[str, str]]) -> str:
    return ", ".join(f"L={length} k={k}" for length, k in cells)


# one evaluation per method ------------------------------------------------------------------


def below_base(results: Results, base: str) -> dict[str, list[tuple[str, str]]]:
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


def significant_drops(results: Results, base: str) -> dict[str, list[tuple[str, str]] | None]:
    """Cells where the paired 95 % bootstrap interval of (method - base) lies entirely below 0;
    None for a method with no length to pair (no per-problem ``correct_counts`` on the same
    problems in both files)."""
    out: dict[str, list[tuple[str, str]] | None] = {}
    ref = results[base]
    for name, res in results.items():
        if name == base:
            continue
        cells: list[tuple[str, str]] | None = None
        for length, r in res["lengths"].items():
            b = ref["lengths"].get(length)
            if b is None or "correct_counts" not in r or "correct_counts" not in b:
                continue
            if len(r["correct_counts"]) != len(b["correct_counts"]):
                continue
            ks = [int(k) for k in r["pass_at_k"] if k in b["pass_at_k"]]
            diffs = pooled_difference(
                [r["correct_counts"]],
                [b["correct_counts"]],
                res["num_samples"],
                ref["num_samples"],
                ks,
            )
            cells = (cells or []) + [(length, str(d.k)) for d in diffs if d.hi < 0]
        out[name] = cells
    return out


def verdicts(results: Results, base: str) -> dict[str, str]:
    """One sentence per method: does it stay above the base at every k and length, and is any
    drop larger than the noise of the problem set?"""
    sentences = {}
    significant = significant_drops(results, base)
    for name, cells in below_base(results, base).items():
        if not cells:
            sentences[name] = f"**{name}** is at or above {base} at every k and every length."
            continue
        sig = significant[name]
        if sig is None:
            noise = "no paired interval (no per-problem correct_counts in both eval.json files)"
        elif sig:
            noise = (
                f"{len(sig)} of them with a 95 % paired-bootstrap interval of the difference "
                f"below 0 ({cells_text(sig)})"
            )
        else:
            noise = "none of them beyond the 95 % paired-bootstrap interval of the difference"
        sentences[name] = (
            f"**{name}** falls below {base} at {len(cells)} point(s): {cells_text(cells)}; {noise}."
        )
    return sentences


def comparison_rows(results: Results, base: str) -> tuple[list[str], list[list[str]]]:
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
            rows.append(
                [
                    name,
                    length,
                    fmt(r.get("greedy_accuracy")),
                    *cells,
                    fmt(r["coverage"]["mean_coverage"]),
                    fmt(r["locking"]["mean_pairwise_rank_distance"]),
                ]
            )
    return header, rows


def markdown_table(results: Results, base: str) -> str:
    header, rows = comparison_rows(results, base)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def comparison_sections(results: Results, base: str, sentences: dict[str, str]) -> list[str]:
    """The verdicts (``sentences``, from :func:`verdicts`) and the table, as Markdown lines;
    the target table too when an eval.json carries the target instrument."""
    lines = [
        "## Does each method stay above the base at every k and length?",
        "",
        *[f"- {sentence}" for sentence in sentences.values()],
        "",
        "## pass@k (↓ = below the base), greedy accuracy, coverage, reveal-order diversity",
        "",
        markdown_table(results, base),
    ]
    header, rows = target_rows(results)
    if rows:
        lines += ["", "## Does each method reach its tilt target?", "", TARGET_LEGEND, ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


# the target instrument (lengths.<L>.target, trafl.evaluation.target) ------------------------

TARGET_HEADER = [
    "method",
    "L",
    "b",
    "b̂ (se)",
    "MAE",
    "corr.",
    "shift sd / floor",
    "fell: sig. / all",
    "distinct@k: b / b̂ / run",
    "gap (b)",
]
TARGET_LEGEND = (
    "b: the tilt trained towards; b̂: the single log-odds shift that best explains the run's "
    "successes given the base's; MAE and corr.: predicted (at b, else b̂) vs achieved success "
    "per problem; shift sd / floor: spread of per-problem log-odds shifts vs its sampling-noise "
    "floor; fell: problems whose success fell (a tilt never lowers one), significant at 0.05 "
    "(one-sided Fisher); distinct@k: distinct correct solutions at the largest k, predicted by "
    "the tilt at b and at b̂, and the run's; gap: mean log-ratio log pi/pi_ref on successes "
    "minus failures within prompts, equal to b at the target."
)


def target_cells(t: dict[str, Any]) -> list[str]:
    """One row of :data:`TARGET_HEADER` (after method and L) from a ``target`` entry."""
    fit, pred, shifts, viol = t["fit"], t["predicted"], t["shifts"], t["violations"]
    main = pred.get("b") or pred.get("b_hat") or {}
    b_hat = "-" if fit["b_hat"] is None else f"{fit['b_hat']:.2f}"
    if fit["b_hat"] is not None and fit["se"] is not None:
        b_hat += f" ({fit['se']:.2f})" + (" at bound" if fit["at_bound"] else "")
    spread = f"{fmt(shifts['std'], 2)} / {fmt(shifts['noise_floor_std'], 2)}"
    distinct = t["achieved"]["distinct"]
    k = max(distinct, key=int)

    def at_k(p: dict[str, Any] | None) -> str:  # a prediction's distinct@k
        return "-" if not p or p["distinct"] is None else f"{p['distinct'][k]:.2f}"

    gap = "-"
    if t.get("balance") and t["balance"]["gap"] is not None:
        gap = f"{t['balance']['gap']:.2f}"
        gap += f" ± {t['balance']['se']:.2f}" if t["balance"]["se"] is not None else ""
    return [
        fmt(t["b"], 2),
        b_hat,
        fmt(main.get("mae")) + ("" if "b" in pred or not main else " (b̂)"),
        fmt(main.get("correlation"), 2),
        spread,
        f"{viol['num_significant']} / {viol['num_fell']}",
        f"k={k}: {at_k(pred.get('b'))} / {at_k(pred.get('b_hat'))} / {distinct[k]:.2f}",
        f"{gap} ({fmt(t['b'], 2)})",
    ]


def target_rows(results: Results) -> tuple[list[str], list[list[str]]]:
    """Header and one row per method and length whose eval.json carries ``target``."""
    rows = []
    for name, res in results.items():
        for length, r in res["lengths"].items():
            if r.get("target"):
                rows.append([name, length, *target_cells(r["target"])])
    return TARGET_HEADER, rows


def target_verdict(name: str, t: dict[str, Any]) -> str:
    """One sentence: how far a run got towards its tilt, and whether it moved like a tilt."""
    fit, shifts, fell = t["fit"], t["shifts"], t["violations"]
    b, b_hat = t.get("b"), fit.get("b_hat")
    if b_hat is None:
        return f"**{name}**: no problem with a base rate strictly between 0 and 1; no fit."
    size = (
        f"trained for b = {b:.3g}, it moved as far as a tilt of b̂ = {b_hat:.2f} ± {fit['se']:.2f} "
        f"({100 * b_hat / b:.0f} % of b)"
        if b
        else f"no tilt target; the tilt that fits it best is b̂ = {b_hat:.2f} ± {fit['se']:.2f}"
    )
    ratio = shifts["std"] / shifts["noise_floor_std"] if shifts.get("noise_floor_std") else None
    shape = (
        "per-problem shifts scatter within sampling noise (the shape of a tilt)"
        if ratio is not None and shifts["std"] <= shifts["noise_floor_q95"]
        else f"per-problem shifts scatter {ratio:.1f}x the sampling noise (not one tilt)"
        if ratio is not None
        else "no shift spread (too few problems)"
    )
    return (
        f"**{name}**: {size}; {shape}; {fell['num_significant']} of {t['num_problems']} "
        f"problems lost success significantly (a tilt never lowers one)."
    )


def target_verdicts(results: Results) -> dict[str, str]:
    """:func:`target_verdict` per method whose eval.json carries the target instrument (its
    first length)."""
    out = {}
    for name, res in results.items():
        targets = [r["target"] for r in res["lengths"].values() if r.get("target")]
        if targets:
            out[name] = target_verdict(name, targets[0])
    return out
