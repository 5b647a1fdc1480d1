"""Aggregate the seeds of ``scripts/reproduce.sh`` into docs/REPRODUCTION.md (+ a plot).

    python scripts/reproduction_report.py runs/repro --out docs/REPRODUCTION.md
    python scripts/reproduction_report.py results/reproduction/repro300.tgz   # a packs.py pack

Reads ``ROOT/seed*/base/eval.json`` and ``ROOT/seed*/METHOD/eval/eval.json``; a method is
reported with however many seeds have finished (the table says how many). Every number in the
report is computed from those files: the tables and verdicts by ``trafl.evaluation.report``, the
figure by ``trafl.evaluation.plots``; this script knows the folder layout and writes the prose.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml
from packs import unpacked

from trafl.commands.compare import load_eval
from trafl.core.errors import UserError
from trafl.evaluation.plots import plot_seed_differences
from trafl.evaluation.report import Seeds
from trafl.evaluation.seed_report import head_to_head_table, seed_sections
from trafl.objectives import OBJECTIVES

DEFAULT_STEPS = {"STEPS": 300, "REUSE_STEPS": 100}  # scripts/reproduce.sh's defaults
METHODS = ["trafl", "trafl_path", "diffu_grpo", "wd1", "spg", "espo"]
LABELS = {"base": "base", "trafl": "TraFL", "trafl_path": "TraFL (exact path)",
          "diffu_grpo": "diffu-GRPO (d1)", "wd1": "wd1", "spg": "SPG", "espo": "ESPO"}  # fmt: skip


def load(root: Path) -> Seeds:
    """{method: {seed: eval.json}} for every finished evaluation under ``root``, the base first
    and the methods in the order of METHODS."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for seed_dir in seed_dirs(root):
        seed = int(seed_dir.name[4:])
        for method in ["base", *METHODS]:
            f = seed_dir / method / ("eval.json" if method == "base" else "eval/eval.json")
            if f.is_file():
                out.setdefault(method, {})[seed] = load_eval(str(f))
    return {m: out[m] for m in ["base", *METHODS] if m in out}


def seed_dirs(root: Path) -> list[Path]:
    """The ``seedN`` folders under ``root`` in numeric order (not a parallel run's seedN.log)."""
    seeds = [p for p in root.glob("seed*") if p.is_dir() and p.name[4:].isdigit()]
    return sorted(seeds, key=lambda p: int(p.name[4:]))


def budget(root: Path) -> str:
    """Each method's RL steps (and reuses per batch) as its runs' config.yaml record them."""
    parts = []
    for method in METHODS:
        seen = set()
        for cfg in [d / method / "config.yaml" for d in seed_dirs(root)]:
            if not cfg.is_file():
                continue
            text = yaml.safe_load(cfg.read_text())
            mu = (
                text.get("inner_updates")
                or OBJECTIVES.get(text["objective"]["name"]).default_inner_updates
            )
            seen.add((text["steps"], mu))
        for steps, mu in sorted(seen):
            reuse = f" (mu = {mu})" if mu != 1 else ""
            parts.append(f"{LABELS[method]} {steps} steps{reuse}")
    return ", ".join(parts) or "the steps of each run's config.yaml"


def command(root: Path) -> str:
    """The reproduce.sh line that trains at the runs' budget (its STEPS / REUSE_STEPS when they
    are not the defaults), read from TraFL's and d1's config.yaml."""
    env = []
    for method, name in (("trafl", "STEPS"), ("diffu_grpo", "REUSE_STEPS")):
        configs = [d / method / "config.yaml" for d in seed_dirs(root)]
        steps = {yaml.safe_load(c.read_text())["steps"] for c in configs if c.is_file()}
        if steps and steps != {DEFAULT_STEPS[name]}:
            env.append(f"{name}={'/'.join(map(str, sorted(steps)))}")
    return " ".join([*env, "bash scripts/reproduce.sh"])


def head_to_head(data: Seeds, lengths: list[str]) -> list[str]:
    """The paper's comparison: each TraFL form against each baseline, paired directly."""
    pairs = [(t, b) for t in METHODS[:2] for b in METHODS[2:]]
    table = head_to_head_table(data, pairs, lengths, LABELS)
    return [
        "## TraFL against the baselines",
        "",
        "Each TraFL form minus each baseline, paired per seed and problem (the same bootstrap as "
        "the differences to the base; ▲ / **▼**: the 95 % interval entirely above / below 0). "
        f"{len(table) - 2} pairs x {2 * len(lengths)} cells, each at 95 %: expect a few marks by "
        "chance among the cells that are close.",
        "",
        *table,
        "",
    ]


def report(root: Path, name: Path, out: Path) -> None:
    """docs/REPRODUCTION.md from the runs under ``root`` (named ``name`` in its first line)."""
    data = load(root)
    if "base" not in data:
        raise SystemExit(f"no base evaluation under {root}/seed*/base: run scripts/reproduce.sh")
    first = next(iter(data["base"].values()))
    lengths = list(first["lengths"])
    png = out.with_name("reproduction_pass_at_k.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_seed_differences(data, lengths, LABELS, png)
    lines = [
        "# Reproduction: does TraFL stay above the base at every k and length? (Countdown)",
        "",
        "Generated by `python scripts/reproduction_report.py "
        f"{name} --out {out}` from the runs of `{command(root)}` (each seed is one "
        "`trafl demo` with all six methods). Setting: the shipped Countdown base "
        "(`models/countdown-base`); every method post-trained from it with 16 prompts x 8 "
        f"rollouts per step ({budget(root)}; a constant lr of 1e-4 for every method, no "
        "warm-up; each objective's own defaults otherwise, see the README table); evaluated "
        f"on the first {first['num_problems']} test problems x "
        f"{first['num_samples']} samples at temperature 1, L = {', '.join(lengths)} "
        "(steps = L/2). A seed sets training and evaluation sampling; the base is evaluated "
        "again under every seed.",
        "",
        "Differences to the base are pooled over seeds per problem and bootstrapped over "
        "problems (`trafl.evaluation.seeds`); ▼ marks a 95 % interval entirely below 0, ▲ one "
        "entirely above. What TraFL's open knobs (lr, beta, reward normalisation, K, log Z) "
        "change after 30 steps: [ABLATION.md](ABLATION.md) (`python scripts/ablation.py`).",
        "",
        *seed_sections(data, lengths, LABELS, png.name),
        *head_to_head(data, lengths),
    ]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out} and {png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="seed*/ runs: a folder (runs/repro) or its pack")
    parser.add_argument("--out", type=Path, default=Path("docs/REPRODUCTION.md"))
    args = parser.parse_args()
    with unpacked(args.root) as root:
        report(root, args.root, args.out)


if __name__ == "__main__":
    try:
        main()
    except UserError as err:  # a cut-short eval.json: one line, not a traceback
        raise SystemExit(f"error: {err}") from None
