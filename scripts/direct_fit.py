"""The direct fit (docs/TARGET.md section 12): can this model be at the target TraFL trains for,
pi_ref(y|x) exp(b r) / Z(x), at all, when it is trained there the way the base was trained?

    python scripts/direct_fit.py --out runs/direct --base results/target/long2000-remade.tgz \
        --seeds 3 --betas 4 0 --draws 1024 --steps 2000 --points 5 --workers 2

For each seed S, in ``--out``:

1. ``draws-sS.jsonl``: ``--draws`` completions of the base model per pool problem (``trafl
   sample``, the study's sampler: pi_ref as the study's runs and evaluations decode it; seed
   1000 + S, so that they are not the base evaluation's samples), and in each fit's folder
   ``ceiling.json``: the b_hat of the file's own tilted success shares against the base's
   counts at its tilt (what a perfect fit of the file would score);
2. ``direct-bB-sS`` for each of ``--betas``: the base continued on them with LLaDA's SFT loss (``trafl pretrain
   init_from=BASE data=... data_tilt=B``), each row a pool prompt drawn uniformly, then one of
   its completions with probability ~ exp(B r): the file's estimate of the target (at B = 0,
   of pi_ref itself: the drift of fitting the model's own decoded samples); TraFL's
   optimiser settings (configs/train_trafl.yaml) and rows per step (16 x 8), ``--steps``;
3. ``trafl eval`` of ``--points`` checkpoints with the study's instrument against
   ``base/`` (the study's evaluation of the base: ``--base``'s, that of the runs the fit is
   held against, or made here as target_study.py makes it), so that ``python
   scripts/target_report.py runs/direct`` reads them as a study's runs.

``--remasking random --denoising-steps 16`` draws and evaluates by any-order sampling, as
target_study.py's section 9 runs do (``--base`` then a pack evaluated that way, e.g.
results/target/random.tgz; a base evaluated with another decoding is refused in one line):
section 13's fit,

    python scripts/direct_fit.py --out runs/direct-random --base results/target/random.tgz \
        --remasking random --denoising-steps 16 --seeds 3 --betas 4 0 --draws 1024 \
        --steps 1000 --points 2 --workers 2

section 14's, the same three times longer,

    python scripts/direct_fit.py --out runs/direct-long --base results/target/random.tgz \
        --remasking random --denoising-steps 16 --seeds 3 --betas 4 0 --draws 1024 \
        --steps 3000 --points 3 --workers 2

section 16's, section 14's fits continued to step 5000 (``--extend``: copied here without their
final models; each resumes from its newest checkpoint, step 2000, and trains on),

    python scripts/direct_fit.py --out runs/direct-longer --extend runs/direct-long \
        --base results/target/random.tgz --remasking random --denoising-steps 16 --seeds 3 \
        --betas 4 0 --draws 1024 --steps 5000 --points 5 --workers 2

``--only 2`` runs seed 2 alone this time (say, on draws copied into ``--out`` from another
folder), leaving the others.
Every stage is skipped when done and resumed when stopped (the same command continues; a
point left unevaluated whose weights are still here is evaluated by it, nothing retrained);
``--deadline SECONDS`` stops training with SIGTERM (it checkpoints) and starts nothing after.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import target_study as study  # noqa: E402
from packs import unpacked  # noqa: E402

from trafl.commands.train_config import TrainConfig  # noqa: E402
from trafl.core.config_files import load_config  # noqa: E402
from trafl.core.files import write_text_atomic  # noqa: E402
from trafl.core.layout import scheduled_checkpoints  # noqa: E402
from trafl.evaluation.target import fit_shift  # noqa: E402
from trafl.run.optim import OptimConfig  # noqa: E402
from trafl.tasks.scored_samples import tilted_probabilities  # noqa: E402

ROOT = study.ROOT


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/direct"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument(
        "--only",
        type=int,
        nargs="+",
        default=None,
        help="these of the --seeds seeds this time (e.g. the one whose draws are already here); "
        "the others are left as they are",
    )
    p.add_argument(
        "--betas",
        type=float,
        nargs="+",
        default=[4.0, 0.0],
        help="the sequence tilts b fitted, each on the same draws (0: the fit's own drift)",
    )
    p.add_argument("--draws", type=int, default=1024, help="base completions per pool problem")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--points", type=int, default=5, help="evaluated checkpoints per run")
    p.add_argument("--deadline", type=float, default=None, help="seconds from now")
    p.add_argument("--workers", type=int, default=1, help="draws or fits at a time")
    p.add_argument(
        "--base",
        type=Path,
        default=None,
        help="a study folder or pack whose base evaluation to use (the runs held against the "
        "fit were measured from it); default: evaluate the base here",
    )
    p.add_argument(
        "--extend",
        type=Path,
        default=None,
        help="a finished direct_fit folder whose fits to continue to --steps: its base "
        "evaluation, draws and fits copied into --out without their final models",
    )
    study.decoding_arguments(p)  # of the draws and evaluations, as the study's runs
    p.add_argument("--device", default="auto")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the pipeline")
    args = p.parse_args(argv)
    if args.smoke:
        args.seeds, args.draws, args.steps, args.points = 1, 8, 4, 2
    if args.steps % args.points:
        p.error(f"--points {args.points} must divide --steps {args.steps}")
    if args.only is not None and not set(args.only) <= set(range(args.seeds)):
        p.error(f"--only {args.only}: each must be one of the seeds 0 to {args.seeds - 1}")
    smoke = ["--smoke"] if args.smoke else []
    decoding = ["--remasking", args.remasking, "--denoising-steps", str(args.denoising_steps)]
    args.study = study.parse(["--out", str(args.out), "--device", args.device, *decoding, *smoke])
    args.study.stop_at = time.time() + args.deadline if args.deadline else None
    return args


def draw(args: argparse.Namespace, seed: int) -> Path | None:
    """The base's completions on the pool, written beside and renamed when complete (None:
    stopped or failed, nothing that looks done left)."""
    path = args.out / f"draws-s{seed}.jsonl"
    if path.is_file():
        return path
    if args.study.stop_at is not None and time.time() > args.study.stop_at:
        return None  # past the deadline: not started
    partial = path.with_name(path.name + ".partial")
    cmd = [
        "sample",
        f"model={study.BASE}",
        f"task.pool={args.study.pool}",
        "split=test",
        f"num_problems={args.study.pool}",
        f"num_samples={args.draws}",
        *study.sampler(args.study),
        f"seed={1000 + seed}",
        "show=0",
        f"output={partial}",
        f"device={args.device}",
    ]
    if study.run(cmd, args.out / f"draws-s{seed}.log", args.study.stop_at) != 0:
        return None
    os.replace(partial, path)
    return path


def trafl_recipe() -> TrainConfig:
    """The TraFL runs' settings as they resolve them (configs/train_trafl.yaml over trafl
    train's defaults, which are not trafl pretrain's: there, no warm-up and a constant lr)."""
    return load_config(TrainConfig, ROOT / "configs" / "train_trafl.yaml", [])


def optimiser(recipe: TrainConfig) -> list[str]:
    """Their optimiser, as overrides of trafl pretrain's (all that pretrain has)."""
    keep = {f.name for f in fields(OptimConfig)} - {"clip_objective_separately"}  # log Z's
    return [f"optim.{k}={json.dumps(v)}" for k, v in asdict(recipe.optim).items() if k in keep]


def fit_command(
    args: argparse.Namespace, beta: float, seed: int, data: Path, resume: bool
) -> list[str]:
    recipe = trafl_recipe()
    rows = args.study.prompts * recipe.rollout.group_size  # the study's TraFL rows per step
    return [
        "pretrain",
        f"init_from={study.BASE}",
        f"data={data}",
        f"data_tilt={beta}",
        f"task.pool={args.study.pool}",
        f"completion_lengths=[{args.study.length}]",
        *optimiser(recipe),
        f"steps={args.steps}",
        f"batch_size={rows}",
        f"seed={seed}",
        f"ckpt_every={args.steps // args.points}",
        "keep_checkpoints=0",
        "eval_every=0",
        "log_every=10",
        f"out_dir={args.out / run_name(beta, seed)}",
        f"device={args.device}",
        f"resume={str(resume).lower()}",
        # a fit copied by --extend names its draws at their old place: the same file (prepare
        # holds the draws to the sha1 the fit started on), so the path may change
        *(["allow_changes=[data]"] if args.extend and resume else []),
    ]


def run_name(beta: float, seed: int) -> str:
    return f"direct-b{beta:g}-s{seed}"


def points(folder: Path, every: int, steps: int) -> list[tuple[int, Path]]:
    """(step, model) at the schedule: the checkpoints, then the final model (pretrain writes
    the last step as ``model``, not as a checkpoint)."""
    found = [(s, c / "model") for s, c in scheduled_checkpoints(folder, every, steps) if s < steps]
    return found + ([(steps, folder / "model")] if (folder / "model").is_dir() else [])


def evaluated(args: argparse.Namespace, beta: float, seed: int) -> bool:
    """Whether every point of the fit that can be evaluated is: its last one, and each whose
    weights are here (a fit unpacked from a pack has none; one evaluated only at some points,
    its checkpoints kept, still has the others to do)."""
    return not to_evaluate(args, args.out / run_name(beta, seed))


def to_evaluate(args: argparse.Namespace, folder: Path) -> list[tuple[int, Path | None]]:
    """(step, weights) of the fit's points not evaluated yet; weights None: the last point's,
    not trained yet."""
    found = points(folder, args.steps // args.points, args.steps)
    found += [] if found and found[-1][0] == args.steps else [(args.steps, None)]
    return [(s, m) for s, m in found if not (folder / f"eval-{s}" / "eval.json").is_file()]


def prepare(args: argparse.Namespace, seed: int) -> tuple[Path | None, str]:
    """The seed's draws and each fit's ``ceiling.json``: (the draws, or None with the line
    that says why the seed's fits cannot run now)."""
    data = draw(args, seed)
    if data is None:
        return None, f"draws-s{seed}: stopped or failed; see {args.out / f'draws-s{seed}.log'}"
    ceilings = ceiling(data, args.out / "base" / "eval.json", args.betas)
    folders = [args.out / run_name(beta, seed) for beta in args.betas]
    if drawn_on(folders) - {ceilings["draws_sha1"]}:  # every fit of a seed on the same draws
        return None, (
            f"draws-s{seed}: not the draws its fits started on (drawn again on another kind of "
            f"machine?); delete {data} and draw again where they were, or delete its fits"
        )
    for beta, folder in zip(args.betas, folders, strict=True):
        folder.mkdir(parents=True, exist_ok=True)  # beside its evaluations (packs.py keeps it)
        mine = {**ceilings[f"b{beta:g}"], "draws_sha1": ceilings["draws_sha1"]}
        write_text_atomic(folder / "ceiling.json", json.dumps(mine, indent=1))
    return data, f"draws-s{seed}: ready"


def schedule(args: argparse.Namespace) -> list[str]:
    """The draws of every seed with a fit still to do, ``--workers`` at a time, then the fits
    seed by seed, each seed's tilts side by side (with two workers a seed's fits finish
    together, so a session that ends leaves whole seeds). A seed whose fits are all evaluated
    needs no draws: on a replaced machine it is not drawn again."""
    lines, seeds = [], []
    for seed in range(args.seeds) if args.only is None else sorted(set(args.only)):
        done = all(evaluated(args, beta, seed) for beta in args.betas)
        if done:
            lines.append(f"seed {seed}: every fit evaluated before")
        else:
            seeds.append(seed)
    with ThreadPoolExecutor(args.workers) as pool:
        fits = []
        ready = pool.map(lambda s: prepare(args, s), seeds)
        for seed, (data, line) in zip(seeds, ready, strict=True):
            lines.append(line)
            fits += [(beta, seed, data) for beta in args.betas] if data else []
        lines += pool.map(lambda fit: one_fit(args, *fit), fits)
    return lines


def drawn_on(folders: list[Path]) -> set[str]:
    """The draws (sha1) the seed's fits started on, as their ``ceiling.json`` names them."""
    saved = [json.loads((f / "ceiling.json").read_text()) for f in folders
             if (f / "ceiling.json").is_file()]  # fmt: skip
    return {c["draws_sha1"] for c in saved if "draws_sha1" in c}


def one_fit(args: argparse.Namespace, beta: float, seed: int, data: Path) -> str:
    """One tilt's fit and its evaluations; the line that says how far it got."""
    start, folder = time.time(), args.out / run_name(beta, seed)
    todo = to_evaluate(args, folder)
    if not todo:
        return f"{folder.name}: done before"
    if todo[-1][1] is None:  # its last point not trained
        if args.study.stop_at is not None and time.time() > args.study.stop_at:
            return f"{folder.name}: not started (deadline)"
        resume = (folder / "metrics.jsonl").is_file()
        cmd = fit_command(args, beta, seed, data, resume)
        code = study.run(cmd, folder / "log.txt", args.study.stop_at)
        if not (folder / "model").is_dir():
            return f"{folder.name}: stopped (exit {code}); the same command continues it"
        todo = to_evaluate(args, folder)
    done = [study.evaluate(str(model), folder / f"eval-{step}", args.study, beta)
            for step, model in todo]  # fmt: skip
    return f"{folder.name}: {sum(done)}/{len(done)} evaluations, {time.time() - start:.0f} s"


def continue_fits(args: argparse.Namespace) -> None:
    """``--extend SRC``: its base evaluation, each seed's draws and each of its fits copied into
    ``--out`` (target_study's ``extend``: a constant-lr fit, without its final model). Pretrain
    saves its last step as a model without the optimiser's state, so a copied fit resumes from
    its newest checkpoint and trains the steps after it again, then on to ``--steps``: the same
    numbers on the same kind of machine (its retrained checkpoint holds the source's final
    weights bit for bit: ``study_checks.py weights``), the same law on another."""
    src, out = args.extend, args.out
    if not (src / "base" / "eval.json").is_file():
        sys.exit(f"--extend: {src} has no base evaluation; give a folder direct_fit.py filled")
    if not (out / "base").exists():
        shutil.copytree(src / "base", out / "base")
    for seed in range(args.seeds) if args.only is None else sorted(set(args.only)):
        draws = src / f"draws-s{seed}.jsonl"
        if draws.is_file() and not (out / draws.name).exists():
            shutil.copy2(draws, out / draws.name)
        for beta in args.betas:
            name = run_name(beta, seed)
            if study.extend(src / name, out / name):
                print(f"{name}: continued from {src / name}", flush=True)


def ceiling(data: Path, base_eval: Path, betas: list[float]) -> dict[str, Any]:
    """What a perfect fit of the file would score: per tilt, the b_hat of the file's own tilted
    success shares (n_s e^b / (n_s e^b + n_f) per problem) against the base evaluation's
    counts, as the instrument fits a run's (the file's estimate of the target, not the target)."""
    wins: dict[str, list[float]] = {}
    for row in map(json.loads, data.read_text().splitlines()):
        wins.setdefault(row["prompt"], []).append(float(row["reward"]))
    base = json.loads(base_eval.read_text())
    (length,) = base["lengths"].values()
    c_base = np.array(length["correct_counts"], dtype=float)
    if len(c_base) != len(wins):
        raise SystemExit(f"{data} has {len(wins)} problems, the base evaluation {len(c_base)}")
    n = base["num_samples"]
    out: dict[str, Any] = {"draws_per_problem": sorted({len(w) for w in wins.values()})}
    out["draws_sha1"] = hashlib.sha1(data.read_bytes()).hexdigest()
    for beta in betas:
        shares = np.array([sum(q for q, r in zip(tilted_probabilities(w, beta), w, strict=True)
                               if r >= 1) for w in wins.values()])  # fmt: skip
        out[f"b{beta:g}"] = fit_shift(c_base / n, n * shares, n)
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.extend:
        continue_fits(args)
    if args.base and not (args.out / "base").exists():
        with unpacked(args.base) as folder:
            shutil.copytree(folder / "base", args.out / "base")
    study.check_folder(args.study)
    if not study.evaluate(study.BASE, args.out / "base", args.study, None):
        sys.exit(f"the base evaluation failed; see {args.out / 'base' / 'log.txt'}")
    for line in schedule(args):
        print(line, flush=True)


if __name__ == "__main__":
    main()
