"""The target study of issue 12 (docs/TARGET.md): does TraFL reach pi* where pi* is reachable?

On a fixed pool of Countdown problems (``task.pool``: trained on and evaluated on the same
problems), from the shipped base: TraFL at sequence tilts b in {1, 2, 4, 8, 32}
(``reward_norm=center_loo``, so b = beta exactly), TraFL with mu > 1 (the clipped importance
weight), the exact-path variant, and the reward maximisers d1 (diffu-GRPO), SPG and ESPO, each
with several seeds; then TraFL at a larger learning rate (``--lr-betas``, ``--lr``, with a
warm-up), the exploration knobs (``--explore-betas``, ``--knobs``: rows from pi_ref, a tempered
behaviour, replay of past correct completions) and held-out runs (``--heldout
METHOD:BETA[:KNOB]``, on Countdown's generator or ``--train-pool N`` fixed training problems,
evaluated on the test split). Every checkpoint is evaluated with ``trafl eval``'s target section against
the base's evaluation, so the runs can be compared at EQUAL PROGRESS (pass@64 against pass@1
over checkpoints, a frontier) and against the target each TraFL run was trained for.

    python scripts/target_study.py --out runs/target            # everything, resumable
    python scripts/target_study.py --out runs/target --smoke    # minutes: the pipeline only
    python scripts/target_report.py runs/target                 # docs/TARGET.md's figures

Runs are independent processes (``--workers`` at a time, one CPU thread each, on the GPU when
there is one); finished runs and evaluations are skipped, interrupted runs resume, and
``--deadline`` stops training runs gracefully (SIGTERM: a checkpoint, then exit) so their
checkpoints are still evaluated. ``--extend FOLDER`` continues the finished constant-lr runs of
another study folder to more steps (e.g. 1000-step runs to 2000, their evaluations kept).
``--variant NAME KEY=VALUE ...`` adds TraFL runs with one change (``trafl-NAME-bB-sS``, at each
``--variant-betas``; ``{seed}`` in a value is the run's seed), which the report holds against
the plain run at the same step; with ``--extend`` a variant is the plain run continued under
the change (``allow_changes``).
``--remasking random --denoising-steps L`` decodes rollouts and evaluations by any-order
sampling (one token per call at a random position) instead of LLaDA's low-confidence
remasking; a folder is refused if its base was evaluated with another decoding.
``--pack FILE`` writes every eval.json, metrics.jsonl and
config.yaml (no weights) into one tar.gz. ``--only PATTERN ...`` runs the jobs whose names match
one of the shell patterns (e.g. ``'trafl-cool-*'``), to choose what a session's cores do first.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from pathlib import Path

import yaml
from packs import pack, unpack

from trafl.commands.eval_target import decoding_differences
from trafl.core.layout import latest_checkpoint, scheduled_checkpoints
from trafl.run.optim import OptimConfig

ROOT = Path(__file__).resolve().parents[1]
BASE = "models/countdown-base"


@dataclass
class Job:
    name: str  # folder name, e.g. trafl-b4-s0
    config: str  # configs/train_X.yaml
    overrides: list[str]
    steps: int
    ckpt_every: int
    tilt: float | None  # the sequence tilt b the run was trained for; None: a reward maximiser
    priority: int
    heldout: bool = False  # trained on the task's train generator, evaluated on its test split
    temperature: float | None = None  # rollouts at this temperature (tempered behaviour policy)
    changes: tuple[str, ...] = ()  # settings a variant changes: ``--extend`` continues the
    # plain run of its b and seed under them


def tilted(args: argparse.Namespace, beta: float, *extra: str) -> list[str]:
    """A TraFL run's overrides: tilt b = beta in sequence units (``center_loo``), then ``extra``."""
    return [f"objective.beta={beta}", "objective.reward_norm=center_loo", *extra]


def core_jobs(args: argparse.Namespace, seed: int) -> list[Job]:
    """One seed of the comparison on the pool: TraFL at each b, the baselines, the exact-path
    variant and TraFL reusing each batch mu times (clipped weights)."""
    t_every, b_every = args.trafl_steps // args.points, args.baseline_steps // args.points
    out = [
        Job(
            f"trafl-b{beta:g}-s{seed}",
            "configs/train_trafl.yaml",
            tilted(args, beta),
            args.trafl_steps,
            t_every,
            float(beta),
            priority=seed * 100 + rank,
        )
        for rank, beta in enumerate(args.betas)
    ]
    out += [
        Job(
            f"{method}-s{seed}",
            f"configs/train_{method}.yaml",
            [],
            args.baseline_steps,
            b_every,
            None,
            priority=seed * 100 + 10 + rank,
        )
        for rank, method in enumerate(args.baselines)
    ]
    out += [  # the exact trajectory log-prob instead of the surrogate
        Job(
            f"trafl_path-b{beta:g}-s{seed}",
            "configs/train_trafl_path.yaml",
            tilted(args, beta),
            args.trafl_steps,
            t_every,
            float(beta),
            priority=seed * 100 + 21,
        )
        for beta in args.path_betas
    ]
    out += [
        Job(
            f"trafl-mu{args.mu}-b{beta:g}-s{seed}",
            "configs/train_trafl.yaml",
            tilted(args, beta, f"inner_updates={args.mu}"),
            args.baseline_steps,
            b_every,
            float(beta),
            priority=seed * 100 + 20,
        )
        for beta in args.mu_betas
    ]
    return out


def one_change(args: argparse.Namespace, tag: str, beta: float, seed: int, overrides: list[str],
               priority: int, temperature: float | None = None) -> Job:  # fmt: skip
    """A TraFL run at b = beta with one change (``trafl-TAG-bB-sS``), as the plain run otherwise."""
    return Job(
        f"trafl-{tag}-b{beta:g}-s{seed}",
        "configs/train_trafl.yaml",
        tilted(args, beta, *overrides),
        args.trafl_steps,
        args.trafl_steps // args.points,
        float(beta),
        priority=priority,
        temperature=temperature,
    )


def lr_jobs(args: argparse.Namespace, seed: int) -> list[Job]:
    """The budget: TraFL at a larger lr (with a linear warm-up), the same steps."""
    lr = [f"optim.lr={args.lr}", f"optim.warmup_steps={args.warmup}"]
    return [one_change(args, f"lr{args.lr:g}", b, seed, lr, 400 + seed * 10) for b in args.lr_betas]


def knob_jobs(args: argparse.Namespace, seed: int) -> list[Job]:
    """Exploration knobs (off-policy rows), after the core runs."""
    out = []
    for beta in args.explore_betas:
        for knob in args.knobs:
            name, over = knob_setting(knob, args)
            temperature = None if over else args.behaviour_temperature
            overrides = [over] if over else []
            out.append(one_change(args, name, beta, seed, overrides, 300 + seed * 10, temperature))
    return out


def variant_jobs(args: argparse.Namespace, seed: int) -> list[Job]:
    """Variants of the objective or estimator (``--variant NAME KEY=VALUE ...``) at each
    ``--variant-betas``, as the plain TraFL runs otherwise: one change each, for a diagnosis.
    With ``--extend`` a variant continues the plain run of its b and seed, changed from there.
    ``{seed}`` in a value is the run's seed (e.g. ``rollout.draws=runs/d/draws-s{seed}.jsonl``)."""
    return [
        replace(
            one_change(
                args,
                name,
                beta,
                seed,
                [o.replace("{seed}", str(seed)) for o in overrides],
                350 + seed * 10,
            ),
            changes=tuple(o.split("=", 1)[0] for o in overrides),
        )
        for name, *overrides in args.variant
        for beta in args.variant_betas
    ]


VARIANT_NAME = re.compile(r"[a-z][a-z0-9_.]*")  # no '-': folder names split on -b and -s


def check_variants(variants: list[list[str]]) -> None:
    """One line for a variant the study could not name or run."""
    for name, *overrides in variants:
        if not VARIANT_NAME.fullmatch(name) or name in KNOBS:
            sys.exit(f"--variant {name}: a name is a-z, 0-9, _ and . (and not {', '.join(KNOBS)})")
        if not overrides or any("=" not in o for o in overrides):
            sys.exit(
                f"--variant {name}: overrides are KEY=VALUE, e.g. objective.unbiased_square=true"
            )


def heldout_job(args: argparse.Namespace, seed: int, rank: int, spec: tuple) -> Job:
    """Generalisation: METHOD:BETA[:KNOB] trained off the pool, evaluated on the test split."""
    method, beta, *knob = spec
    tilt = None if method != "trafl" else float(beta)
    name, setting = knob_setting(knob[0], args) if knob else ("", None)
    over = tilted(args, beta, *([setting] if setting else [])) if tilt else []
    steps = args.trafl_steps if tilt else args.baseline_steps
    pool = f"-tp{args.train_pool}" if args.train_pool else ""
    label = f"{method}{f'-{name}' if name else ''}{f'-b{tilt:g}' if tilt else ''}"
    return Job(
        f"heldout-{label}{pool}-s{seed}",
        f"configs/train_{method}.yaml",
        over,
        steps,
        steps // args.points,
        tilt,
        priority=50 + 100 * seed + rank,
        heldout=True,
        temperature=args.behaviour_temperature if knob and not setting else None,
    )


def jobs(args: argparse.Namespace) -> list[Job]:
    """Every run of the study, most important first (seed 0 of the core comparison)."""
    out = [job for seed in range(args.seeds) for job in core_jobs(args, seed)]
    out += [job for seed in range(args.seeds) for job in lr_jobs(args, seed)]
    out += [job for seed in range(args.seeds) for job in knob_jobs(args, seed)]
    out += [job for seed in range(args.seeds) for job in variant_jobs(args, seed)]
    out += [
        heldout_job(args, seed, rank, spec)
        for seed in range(args.heldout_seeds)
        for rank, spec in enumerate(args.heldout)
    ]
    return sorted(out, key=lambda j: j.priority)


KNOBS = ("ref", "temp", "replay")  # the exploration knobs (behaviour policies) of section 4


def knob_setting(knob: str, args: argparse.Namespace) -> tuple[str, str | None]:
    """(name in the run's folder, the override; None: rollouts at the behaviour temperature)."""
    return {
        "ref": (f"ref{args.reference_share:g}", f"rollout.reference_share={args.reference_share}"),
        "temp": (f"temp{args.behaviour_temperature:g}", None),
        "replay": (f"replay{args.replay_share:g}", f"rollout.replay_share={args.replay_share}"),
    }[knob]


def common(args: argparse.Namespace, heldout: bool = False) -> list[str]:
    return [f"task.pool={0 if heldout else args.pool}", f"device={args.device}"]


def training_pool(args: argparse.Namespace, heldout: bool) -> list[str]:
    """Held-out runs train on the generator, or on ``--train-pool`` fixed training problems."""
    return [f"task.train_pool={args.train_pool}"] if heldout and args.train_pool else []


def sampler(args: argparse.Namespace) -> list[str]:
    """One decoding for rollouts and evaluation: the distribution the tilt is defined on.
    ``--remasking random --denoising-steps L`` samples one token per call at a uniformly random
    position: the any-order distribution the mask-mean surrogate estimates; LLaDA's
    low-confidence remasking (the default) is a different function of the same weights."""
    return [
        f"sampler.gen_length={args.length}",
        f"sampler.steps={args.denoising_steps or args.length // 2}",
        f"sampler.temperature={args.temperature}",
        f"sampler.remasking={args.remasking}",
    ]


def check_folder(args: argparse.Namespace) -> None:
    """Refuse, in one line and before any training, a study folder whose base was evaluated
    with another decoding (the instrument's own check, :func:`check_same_decoding`, would
    refuse it only at the first evaluation) or another sample count or pool."""
    mine = {k.removeprefix("sampler."): yaml.safe_load(v) for k, v in
            (s.split("=", 1) for s in sampler(args))}  # fmt: skip
    for name in ("base", "base-heldout"):
        saved = args.out / name / "eval_config.yaml"
        if not saved.is_file():
            continue
        have = yaml.safe_load(saved.read_text())
        differ = decoding_differences(have["sampler"], mine)
        if name == "base":
            for key, value in (("num_samples", args.samples), ("num_problems", args.pool)):
                if have[key] != value:
                    differ.append(f"{key}={have[key]} (here {value})")
        if differ:
            sys.exit(f"{saved.parent} was evaluated with {'; '.join(differ)}; use another --out")


def run(cmd: list[str], log: Path, deadline: float | None = None) -> int:
    """Run a trafl command, its output in ``log``; SIGTERM at the deadline (it checkpoints)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "trafl", *cmd], stdout=f, stderr=f, cwd=ROOT, env=env
        )
        while proc.poll() is None:
            if deadline is not None and time.time() > deadline:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                break
            time.sleep(1.0)
        return proc.wait()


def evaluate(
    model: str, out: Path, args: argparse.Namespace, tilt: float | None, heldout: bool = False
) -> bool:
    """``trafl eval`` on the pool (or the held-out test problems) with the target instrument;
    skipped when already done."""
    if (out / "eval.json").is_file():
        return True
    if args.stop_at is not None and time.time() > args.stop_at:
        return False
    base = args.out / ("base-heldout" if heldout else "base")
    cmd = [
        "eval",
        f"model={model}",
        *common(args, heldout),
        f"num_problems={args.heldout_problems if heldout else args.pool}",
        f"num_samples={args.heldout_samples if heldout else args.samples}",
        f"gen_lengths=[{args.length}]",
        *sampler(args),
        "greedy=false",
        "heatmap_problems=0",
        f"out_dir={out}",
    ]
    if not args.no_target and model != BASE:
        cmd += [f"target.base={base / 'eval.json'}", f"target.reference={BASE}"]
        if tilt is not None:
            cmd.append(f"target.tilt={tilt}")
    return run(cmd, out / "log.txt", args.stop_at) == 0


def train_command(job: Job, args: argparse.Namespace, resume: bool) -> list[str]:
    """The ``trafl train`` arguments of one run (its config file, then the overrides)."""
    return [
        "train",
        job.config,
        *common(args, job.heldout),
        *training_pool(args, job.heldout),
        *job.overrides,
        *[f"rollout.{s}" for s in sampler(args)],
        *([f"rollout.sampler.temperature={job.temperature}"] if job.temperature else []),
        f"rollout.prompts_per_step={args.prompts}",
        f"steps={job.steps}",
        f"seed={int(job.name.rsplit('-s', 1)[1])}",
        f"ckpt_every={job.ckpt_every}",
        "keep_checkpoints=0",
        "eval_every=0",
        "save_completions_every=0",
        f"out_dir={args.out / job.name}",
        f"resume={str(resume).lower()}",
        *([f"allow_changes=[{','.join(['steps', *job.changes])}]"] if args.extend else []),
    ]


def train(job: Job, args: argparse.Namespace, deadline: float | None) -> Path:
    folder = args.out / job.name
    if (folder / "model").is_dir():
        return folder
    resume = (folder / "metrics.jsonl").is_file()
    run(train_command(job, args, resume), folder / "log.txt", deadline)
    return folder


def scheduled(folder: Path, job: Job) -> list[Path]:
    """The run's checkpoint models at its schedule, in order of step (``scheduled_checkpoints``:
    a checkpoint written when a stop signal ended the run is a resume point, not evaluated)."""
    return [c / "model" for _, c in scheduled_checkpoints(folder, job.ckpt_every, job.steps)]


def extend(src: Path, dest: Path) -> bool:
    """Copy the finished run ``src`` (checkpoints, evaluations, metrics) to ``dest`` without its
    final model, so that resuming it at more steps continues it (``--extend``). Only a run at
    a constant lr: with warm-up or decay the schedule depends on the run's length, and the
    continuation would not be the longer run. False when there is nothing to copy."""
    if dest.exists() or not trained_to_its_end(src):
        return False
    optim = OptimConfig(**yaml.safe_load((src / "config.yaml").read_text())["optim"])
    if not optim.length_independent:
        sys.exit(
            f"--extend: {src} was trained with a schedule that depends on its length "
            f"(warmup_steps={optim.warmup_steps}, min_lr_ratio={optim.min_lr_ratio}); "
            "only a constant-lr run (0 and 1) can be continued into a longer one"
        )
    shutil.copytree(src, dest, ignore=lambda d, _: {"model", ".lock"} if Path(d) == src else ())
    return True


def trained_to_its_end(run: Path) -> bool:
    """Its final model is there, or its checkpoint at its last step (the same weights: a run
    moved between machines by ``packs.py --resumable`` travels without its final model)."""
    if (run / "model").is_dir():
        return True
    config = run / "config.yaml"
    steps = (yaml.safe_load(config.read_text()) or {}).get("steps") if config.is_file() else None
    return steps is not None and (run / f"checkpoint-{steps}" / "model").is_dir()


def continue_runs(src: Path, out: Path, todo: list[Job]) -> list[Job]:
    """``--extend src``: its base evaluations (the copied evaluations' targets were fitted to
    them) and each of its finished runs that is among the jobs, copied into ``out``. Returns
    the jobs that continue a run; one whose source is not finished yet waits (it is not trained
    from scratch under the continuation's name), e.g. while the source is still being made."""
    for name in ("base", "base-heldout"):
        if (src / name).is_dir() and not (out / name).exists():
            shutil.copytree(src / name, out / name)
    ready = []
    for job in todo:
        source = src / plain_name(job)
        if extend(source, out / job.name):
            print(f"{job.name}: continued from {source}", flush=True)
        folder = out / job.name
        if not folder.is_dir():
            print(f"{job.name}: waits for {source}, which is not finished", flush=True)
        elif continuable(folder, job):
            ready.append(job)
        else:  # a resume would start it from step 0 under the continuation's name
            print(
                f"{job.name}: {folder} has no checkpoint to continue from (a pack's files "
                f"without weights?); delete it to continue {source} again",
                flush=True,
            )
    return ready


def continuable(folder: Path, job: Job) -> bool:
    """A continuation's folder can be resumed or is finished: a checkpoint, the final model, or
    the evaluation at its last step (finished on another machine and unpacked: skipped)."""
    finished = (folder / f"eval-{job.steps}" / "eval.json").is_file()
    return finished or (folder / "model").is_dir() or latest_checkpoint(folder) is not None


def plain_name(job: Job) -> str:
    """The run a job continues under ``--extend``: itself, or a variant's plain run."""
    if not job.changes:
        return job.name
    seed = job.name.rsplit("-s", 1)[1]
    return f"trafl-b{job.tilt:g}-s{seed}"


def one_job(job: Job, args: argparse.Namespace, deadline: float | None) -> str:
    if deadline is not None and time.time() > deadline:
        return f"{job.name}: not started (deadline)"
    start = time.time()
    folder = args.out / job.name
    if (folder / f"eval-{job.steps}" / "eval.json").is_file():
        return f"{job.name}: done before"  # e.g. unpacked from --start-from
    if folder.is_dir() and not any(folder.glob("checkpoint-*")):  # results without weights
        shutil.rmtree(folder)  # (an unfinished run unpacked from --start-from): start afresh
    folder = train(job, args, deadline)
    checkpoints = scheduled(folder, job)
    if job.heldout and args.heldout_evals == "last":
        checkpoints = checkpoints[-1:]
    done = [
        evaluate(str(m), folder / f"eval-{m.parent.name[11:]}", args, job.tilt, job.heldout)
        for m in checkpoints
    ]
    return f"{job.name}: {sum(done)}/{len(done)} evaluations, {time.time() - start:.0f} s"


def decoding_arguments(p: argparse.ArgumentParser) -> None:
    """The decoding options (:func:`sampler`), for this study and the scripts built on it."""
    p.add_argument("--remasking", choices=("low_confidence", "random"), default="low_confidence")
    p.add_argument("--denoising-steps", type=int, default=0, help="denoiser calls; 0: length / 2")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/target"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--pool", type=int, default=48)
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--length", type=int, default=16)
    p.add_argument("--temperature", type=float, default=1.0)
    decoding_arguments(p)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--betas", type=float, nargs="+", default=[1, 2, 4, 8, 32])
    p.add_argument("--baselines", nargs="*", default=["diffu_grpo", "spg", "espo"])
    p.add_argument("--mu", type=int, default=4)
    p.add_argument("--mu-betas", type=float, nargs="*", default=[4])
    p.add_argument("--path-betas", type=float, nargs="*", default=[4])
    p.add_argument("--explore-betas", type=float, nargs="*", default=[4, 8])
    p.add_argument("--lr-betas", type=float, nargs="*", default=[2, 4], help="TraFL at --lr")
    p.add_argument("--lr", type=float, default=3e-4, help="the larger lr (1e-3 collapsed)")
    p.add_argument("--warmup", type=int, default=30, help="its linear warm-up (optimiser steps)")
    p.add_argument("--knobs", nargs="*", choices=KNOBS, default=list(KNOBS))
    p.add_argument("--reference-share", type=float, default=0.25)
    p.add_argument("--behaviour-temperature", type=float, default=1.3)
    p.add_argument("--replay-share", type=float, default=0.25, help="past correct completions")
    p.add_argument(
        "--variant",
        nargs="+",
        action="append",
        default=[],
        metavar="NAME KEY=VALUE",
        help="a TraFL run with these overrides, named trafl-NAME-bB ({seed} in a value: the "
        "run's seed; repeatable)",
    )
    p.add_argument("--variant-betas", type=float, nargs="*", default=[4])
    p.add_argument("--start-from", type=Path, default=None, help="a --pack archive to resume")
    p.add_argument(
        "--extend",
        type=Path,
        default=None,
        help="a study folder: its finished runs (and base evaluations) are copied and continued "
        "to --trafl-steps / --baseline-steps (constant-lr runs only)",
    )
    p.add_argument("--trafl-steps", type=int, default=300)
    p.add_argument("--baseline-steps", type=int, default=100)
    p.add_argument(
        "--heldout",
        type=lambda s: tuple(s.split(":")),
        nargs="*",
        default=[("trafl", "4"), ("trafl", "32"), ("diffu_grpo", "0")],
        help="METHOD:BETA[:KNOB] runs trained off the pool, evaluated on held-out test problems",
    )
    p.add_argument("--heldout-seeds", type=int, default=1)
    p.add_argument("--train-pool", type=int, default=0, help="held-out runs: N training problems")
    p.add_argument("--heldout-evals", choices=("all", "last"), default="all")
    p.add_argument("--heldout-problems", type=int, default=320)
    p.add_argument("--heldout-samples", type=int, default=64)
    p.add_argument("--points", type=int, default=5, help="checkpoints per run (the frontier)")
    p.add_argument("--deadline", type=float, default=None, help="seconds from now")
    p.add_argument("--stop", type=float, default=None, help="seconds from now: no evaluation after")
    p.add_argument("--pack", type=Path, default=None)
    p.add_argument("--only", nargs="+", default=None, help="run names (shell patterns) to run")
    p.add_argument("--no-target", action="store_true")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the pipeline")
    args = p.parse_args(argv)
    check_variants(args.variant)
    if args.smoke:
        smoke_sizes(args)
    names = [job.name for job in jobs(args)]
    for pattern in args.only or []:
        if not any(fnmatch(name, pattern) for name in names):
            p.error(f"--only {pattern} matches no run of this study (its runs: {names[0]}, ...)")
    scheduled_steps = {job.steps for job in jobs(args)}  # a flag no run uses is not checked
    for flag, steps in (
        ("--trafl-steps", args.trafl_steps),
        ("--baseline-steps", args.baseline_steps),
    ):
        if steps in scheduled_steps and steps % args.points:  # else the end is unevaluated
            p.error(f"--points {args.points} must divide {flag} {steps}")
    return args


def smoke_sizes(args: argparse.Namespace) -> None:
    """``--smoke``: tiny sizes and one run of each kind, to check the pipeline in minutes."""
    args.pool, args.samples, args.prompts, args.seeds = 4, 8, 2, 1
    args.trafl_steps = args.baseline_steps = 4
    args.points, args.betas, args.baselines, args.mu_betas = 2, [4], ["diffu_grpo"], []
    args.path_betas, args.explore_betas, args.lr_betas = [], [4], []
    args.heldout, args.heldout_problems, args.heldout_samples = [("trafl", "4")], 6, 4


def chosen(args: argparse.Namespace) -> list[Job]:
    """The study's jobs, in order; with ``--only`` those whose names match one of its patterns."""
    return [j for j in jobs(args) if not args.only or any(fnmatch(j.name, o) for o in args.only)]


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.start_from:  # finished runs' evaluations: their jobs are skipped
        unpack(args.start_from, args.out)
    todo = chosen(args)
    if args.extend:
        todo = continue_runs(args.extend, args.out, todo)
    check_folder(args)
    deadline = time.time() + args.deadline if args.deadline else None
    args.stop_at = time.time() + args.stop if args.stop else None
    start = time.time()
    print(f"{len(todo)} runs, {args.workers} at a time; base evaluation first", flush=True)
    for heldout in (False, True) if args.heldout else (False,):
        folder = args.out / ("base-heldout" if heldout else "base")
        if not evaluate(BASE, folder, args, None, heldout):
            if args.pack:
                pack(args.out, args.pack)
            sys.exit(f"the base evaluation failed; see {folder / 'log.txt'}")
    lock = threading.Lock()

    def work(job: Job) -> None:
        line = one_job(job, args, deadline)
        with lock:
            print(f"[{time.time() - start:6.0f} s] {line}", flush=True)

    try:
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(work, todo))
    finally:
        if args.pack:
            pack(args.out, args.pack)
            print(f"packed {args.pack}", flush=True)


if __name__ == "__main__":
    main()
