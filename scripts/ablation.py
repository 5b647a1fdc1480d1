"""TraFL's open knobs, one at a time, against the 30-step reproduction's base (docs/ABLATION.md).

    python scripts/ablation.py                      # the default variants, then the report
    python scripts/ablation.py --only lr1e-5 iid    # others (finished stages are reused)
    python scripts/ablation.py --report-only        # rewrite docs/ABLATION.md from runs/

Each variant is the 30-step reproduction's TraFL run (docs/reproduction30/: the shipped
Countdown base, 30 steps of 16 prompts x 8 rollouts, seed 0, constant lr 1e-4) with ONE setting
changed, evaluated on the same 64 test problems x 64 samples at L = 16 and 32. Differences are
paired per problem with the seed-0 base evaluation of that reproduction (``runs/repro/seed0``,
made by the REPRO_COMMAND below) and bootstrapped over problems. One seed: a variant's row is a
hint of what a knob does, not a result; the reproduction's seeds are.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trafl.commands.demo import DemoConfig, train_config
from trafl.commands.eval import EvalConfig, evaluate
from trafl.commands.train import train
from trafl.evaluation.report import fmt
from trafl.evaluation.seed_report import differences
from trafl.models import ModelConfig
from trafl.run.runtime import console


@dataclass(frozen=True)
class Variant:
    name: str
    method: str
    overrides: tuple[str, ...]
    what: str


# fmt: off
VARIANTS = [
    Variant("default", "trafl", (), "the 30-step reproduction's TraFL (beta 32 per sequence, lr 1e-4)"),
    Variant("lr3e-5", "trafl", ("optim.lr=3e-5",), "policy lr 3e-5"),
    Variant("lr1e-5", "trafl", ("optim.lr=1e-5",), "policy lr 1e-5"),
    Variant("beta8", "trafl", ("objective.beta=8",), "beta 8 (weaker tilt)"),
    Variant("beta128", "trafl", ("objective.beta=128",), "beta 128 (stronger tilt)"),
    Variant("loo", "trafl", ("objective.reward_norm=center_loo",),
            "leave-one-out centring (exact fixed point pi*)"),
    Variant("center_std", "trafl", ("objective.reward_norm=center_std",),
            "centre and divide by the group std"),
    Variant("vargrad", "trafl", ("objective.log_z=vargrad",),
            "log Z = batch estimate (VarGrad) instead of the prompt MLP"),
    Variant("scalar_logz", "trafl", ("objective.log_z=scalar",), "one learned scalar log Z"),
    Variant("K8", "trafl", ("estimator.num_masks=8",), "K = 8 masks (four complementary pairs)"),
    Variant("iid", "trafl", ("estimator.coupling=iid",), "K = 4 independent masks"),
    Variant("path_lr3e-5", "trafl_path", ("optim.lr=3e-5",), "TraFL (exact path), lr 3e-5"),
    Variant("d1_lr3e-5", "diffu_grpo", ("optim.lr=3e-5",),
            "diffu-GRPO at lr 3e-5 (is the baseline's lr the issue?)"),
]
# fmt: on
BY_NAME = {v.name: v for v in VARIANTS}
# what `python scripts/ablation.py` runs and docs/ABLATION.md shows (about 40 min on 2 cores);
# the other variants run with --only NAME ...
DEFAULT = ["default", "lr3e-5", "beta128", "beta8", "loo", "vargrad", "K8", "iid",
           "path_lr3e-5", "d1_lr3e-5"]  # fmt: skip
REPRO = Path("runs/repro/seed0")
REPRO_COMMAND = (  # its seed 0, at 30 steps (scripts/reproduce.sh's defaults are the study's)
    "SEEDS=0 STEPS=30 REUSE_STEPS=30 OUT=runs/repro REPORT=runs/repro/REPRODUCTION.md "
    "bash scripts/reproduce.sh"
)
LENGTHS = [16, 32]


def run_variant(v: Variant, demo: DemoConfig, root: Path) -> Path:
    """Train (unless done) and evaluate one variant; the default reuses the reproduction's."""
    if v.name == "default":
        return REPRO / "trafl" / "eval" / "eval.json"
    run_dir = root / v.name
    if not (run_dir / "model" / "config.json").is_file():
        console.rule(f"ablation {v.name}: {v.what}")
        train(train_config(demo, v.method, run_dir, v.overrides))
    out = run_dir / "eval"
    if not (out / "eval.json").is_file():
        evaluate(
            EvalConfig(
                model=ModelConfig.coerce(str(run_dir / "model")),
                num_problems=demo.eval_problems,
                num_samples=demo.eval_samples,
                gen_lengths=LENGTHS,
                seed=demo.seed,
                out_dir=str(out),
                device=demo.device,
                bootstrap=500,
            )
        )
    return out / "eval.json"


def row(v: Variant, data: dict[str, Any], length: str) -> str:
    ks = list(data["base"][0]["lengths"][length]["pass_at_k"])
    cells = []
    for d in differences(data, v.name, length):
        mean = data[v.name][0]["lengths"][length]["pass_at_k"][str(d.k)]["mean"]
        mark = " **▼**" if d.hi < 0 else (" ▲" if d.lo > 0 else "")
        cells.append(f"{fmt(mean)} ({d.diff:+.3f}{mark})")
    assert len(cells) == len(ks)
    lock = data[v.name][0]["lengths"][length]["locking"]["order_share_of_mode"]
    return f"| {v.name} | {v.what} | " + " | ".join(cells) + f" | {fmt(lock)} |"


def summary(names: list[str], data: dict[str, Any]) -> list[str]:
    """One row per variant: how many (length, k) cells are below / above the base."""
    lines = [
        "| variant | cells below the base | significantly below | significantly above | "
        + " | ".join(f"L={n} pass@1 / pass@64" for n in LENGTHS)
        + " |",
        "|---|---|---|---|" + "---|" * len(LENGTHS),
    ]
    for name in [n for n in names if n in data]:
        below = sig_below = sig_above = cells = 0
        ends = []
        for length in [str(n) for n in LENGTHS]:
            diffs = differences(data, name, length)
            cells += len(diffs)
            below += sum(d.diff < 0 for d in diffs)
            sig_below += sum(d.hi < 0 for d in diffs)
            sig_above += sum(d.lo > 0 for d in diffs)
            ends.append(f"{diffs[0].diff:+.3f} / {diffs[-1].diff:+.3f}")
        lines.append(
            f"| {name} | {below} of {cells} | {sig_below} | {sig_above} | "
            + " | ".join(ends)
            + " |"
        )
    return lines


def report(names: list[str], root: Path, out: Path) -> None:
    base = json.loads((REPRO / "base" / "eval.json").read_text())
    data: dict[str, Any] = {"base": {0: base}}
    for name in names:
        f = REPRO / "trafl/eval/eval.json" if name == "default" else root / name / "eval/eval.json"
        if f.is_file():
            data[name] = {0: json.loads(f.read_text())}
    lines = [
        "# Ablation: TraFL's open knobs, one at a time (Countdown, one seed)",
        "",
        f"Generated by `python scripts/ablation.py` (after `{REPRO_COMMAND}`). "
        "Each row is the 30-step reproduction's TraFL run (30 steps of 16 prompts x 8 rollouts "
        "from the shipped base, seed 0, constant lr 1e-4, beta 32 per sequence, centred rewards, "
        "prompt-MLP log Z, K = 4 complementary masks) with the one change in its row, evaluated "
        "on the first 64 test problems x 64 samples at temperature 1. In brackets: the "
        "difference to the base evaluated with the same seed on the same problems, paired per "
        "problem; ▼ marks a 95 % bootstrap interval (over problems) entirely below 0, ▲ one "
        "entirely above. **One training seed**: the 30-step reproduction "
        "(docs/reproduction30/REPRODUCTION.md) shows how much a method moves between seeds; read "
        "these rows as hints.",
        "",
    ]
    lines += ["## Summary", "", *summary(names, data), ""]
    for length in [str(n) for n in LENGTHS]:
        ks = list(base["lengths"][length]["pass_at_k"])
        header = " | ".join(f"pass@{k}" for k in ks)
        base_cells = " | ".join(fmt(base["lengths"][length]["pass_at_k"][k]["mean"]) for k in ks)
        base_lock = fmt(base["lengths"][length]["locking"]["order_share_of_mode"])
        lines += [
            f"## L = {length}",
            "",
            f"| variant | change | {header} | share on modal order |",
            "|---|---|" + "---|" * len(ks) + "---|",
            f"| base | the shipped Countdown base | {base_cells} | {base_lock} |",
        ]
        lines += [row(BY_NAME[n], data, length) for n in names if n in data]
        lines.append("")
    missing = [n for n in names if n not in data]
    if missing:
        lines += [f"Not run yet: {', '.join(missing)}.", ""]
    out.write_text("\n".join(lines) + "\n")
    console.print(f"[bold]ablation report: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(BY_NAME), help="variants to run")
    parser.add_argument("--root", default="runs/ablation")
    parser.add_argument("--out", default="docs/ABLATION.md")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if not (REPRO / "base" / "eval.json").is_file():
        sys.exit(f"missing {REPRO}/base/eval.json: run `{REPRO_COMMAND}` first")
    names = args.only or DEFAULT
    demo = DemoConfig(  # the 30-step reproduction's setting (docs/reproduction30/)
        methods=[],
        pool=0,
        steps=30,
        reuse_steps=30,
        rollout_temperature=0.9,
        seed=0,
        eval_problems=64,
        eval_samples=64,
        device=args.device,
    )
    if not args.report_only:
        for name in names:
            run_variant(BY_NAME[name], demo, Path(args.root))
    report(names, Path(args.root), Path(args.out))


if __name__ == "__main__":
    main()
