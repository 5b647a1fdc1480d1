"""Wall time, peak memory and the split of one RL step, per registered objective.

    .venv/bin/python benchmarks/step_time.py [--steps 3] [--device cpu|cuda] [--out FILE]
    .venv/bin/python benchmarks/step_time.py --only trafl diffu_grpo --set rollout.sampler.gen_length=32

Each objective runs in a fresh process (so its peak memory is its own) for ``--steps`` training
steps of the default recipe (the shipped Countdown base, 16 prompts x 8 rollouts, gen_length
16, 8 sampling steps, its own estimator and inner updates mu) after one warm-up step.
Reported: seconds per step split into rollout sampling and the update (estimator forwards,
backward and optimiser, times mu), and peak memory: on CUDA the peak allocated by torch during
the measured steps; on CPU the process's peak resident set (``ru_maxrss``) and the resident set
after the model and trainer were built, whose difference is what the steps themselves need.

The split of a step (``phases``, seconds per step, each phase's own time without the phases
inside it): ``sampling`` (the sampler), ``reward`` (scoring the completions), ``reference`` and
``old`` (the no-grad estimator forwards of pi_ref and of the rollout policy), ``policy`` (the
estimator forwards with grad), ``prompt_hidden`` (TraFL's log Z input: a policy forward over
the prompts), ``backward`` (the objective's loss and autograd's backward), ``optimizer``
(clipping and the AdamW step) and ``other`` (the rest: prompts, masks, gathering). The timers
wrap the Trainer's own methods on the instance (:func:`phase_timers`); the trainer runs
unchanged. ``calls`` counts each phase's calls per step.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import platform
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from trafl.commands.train import TrainConfig, Trainer
from trafl.core.config_files import load_config
from trafl.objectives import OBJECTIVES
from trafl.run import rollouts as rollouts_module

PHASES = ("sampling", "reward", "reference", "old", "policy", "prompt_hidden", "backward",
          "optimizer", "other")  # fmt: skip


def rss_mb() -> float:
    """This process's current resident set in MiB (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


class PhaseTimer:
    """Exclusive wall time per phase: a phase's time excludes the phases timed inside it."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.calls = dict.fromkeys(PHASES, 0)
        self.stack: list[tuple[str, float, list[float]]] = []  # open: name, start, [children]

    def current(self) -> str | None:
        """The innermost open phase."""
        return self.stack[-1][0] if self.stack else None

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        sync(self.device)
        self.stack.append((name, time.perf_counter(), [0.0]))
        try:
            yield
        finally:
            sync(self.device)
            _, start, children = self.stack.pop()
            elapsed = time.perf_counter() - start
            self.seconds[name] += elapsed - children[0]
            self.calls[name] += 1
            if self.stack:
                self.stack[-1][2][0] += elapsed

    def wrap(self, name: str | Callable[..., str | None], fn: Callable[..., Any]) -> Callable:
        """``fn`` timed as phase ``name``, or as the phase ``name(*args)`` returns (None: not
        timed)."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            label = name(*args) if callable(name) else name
            if label is None:
                return fn(*args, **kwargs)
            with self.phase(label):
                return fn(*args, **kwargs)

        return timed


@contextlib.contextmanager
def phase_timers(trainer: Trainer, timer: PhaseTimer) -> Iterator[None]:
    """Time the trainer's phases by wrapping its methods on the instance (and the sampler and
    reward functions the rollouts call), restoring them afterwards; nothing else changes."""

    def scoring(model: Any, *_: Any) -> str:
        return "reference" if model is trainer.reference else "old"

    def estimator_phase(*_: Any) -> str | None:  # inside reference / old: theirs
        return None if timer.current() in ("reference", "old") else "policy"

    def prompt_phase(*_: Any) -> str | None:  # called always, a forward only when needed
        return "prompt_hidden" if trainer.objective.needs_prompt_hidden else None

    patches = [
        (trainer, "rollouts", "other"),
        (trainer, "update", "other"),
        (trainer, "estimate", scoring),
        (trainer.estimator, "estimate", estimator_phase),
        (trainer, "prompt_hidden", prompt_phase),
        (trainer, "backward", "backward"),
        (trainer, "apply_gradients", "optimizer"),
        (rollouts_module, "generate", "sampling"),
        (rollouts_module, "score_all", "reward"),
    ]
    saved = [(obj, attr, obj.__dict__.get(attr)) for obj, attr, _ in patches]
    try:
        for obj, attr, name in patches:
            setattr(obj, attr, timer.wrap(name, getattr(obj, attr)))
        yield
    finally:
        for obj, attr, old in reversed(saved):
            if old is None:
                delattr(obj, attr)  # the class's method again
            else:
                setattr(obj, attr, old)


def measure(objective: str, steps: int, device: str, extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = load_config(
            TrainConfig,
            None,
            [
                f"objective.name={objective}",
                f"out_dir={out_dir}",
                f"device={device}",
                "save_completions_every=0",
                "ckpt_every=0",
                *extra,
            ],
        )
        trainer = Trainer(cfg)
        sample_s, update_s = [], []
        built_mb = rss_mb()
        for i in range(steps + 1):
            if i == 1:  # the first step warms caches and allocators
                timer = PhaseTimer(device)
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
            with phase_timers(trainer, timer) if i > 0 else contextlib.nullcontext():
                t0 = time.perf_counter()
                step = trainer.rollouts()
                sync(device)
                t1 = time.perf_counter()
                trainer.update(step)
                sync(device)
                t2 = time.perf_counter()
            if i > 0:
                sample_s.append(t1 - t0)
                update_s.append(t2 - t1)
    n = len(sample_s)
    result = {
        "inner_updates": trainer.mu,
        "estimator": cfg.estimator.name,
        "sample_s": sum(sample_s) / n,
        "update_s": sum(update_s) / n,
        "step_s": (sum(sample_s) + sum(update_s)) / n,
        "rss_after_build_mb": round(built_mb, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "phases": {k: v / n for k, v in timer.seconds.items()},
        "calls": {k: v / n for k, v in timer.calls.items()},
    }
    if device == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _child(queue, *args) -> None:
    queue.put(measure(*args))


def isolated(*args) -> dict[str, float]:
    """``measure`` in a fresh spawned process: peak memory is per objective."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, *args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", nargs="+", choices=OBJECTIVES.names(), help="objectives")
    parser.add_argument("--set", nargs="*", default=[], help="train config overrides for all")
    parser.add_argument("--out", default="benchmarks/step_time.json")
    args = parser.parse_args()
    results = {}
    for name in args.only or OBJECTIVES.names():
        results[name] = r = isolated(name, args.steps, args.device, list(args.set))
        mem = (
            f"peak cuda {r['peak_cuda_mb']:.0f} MiB"
            if "peak_cuda_mb" in r
            else f"peak rss {r['peak_rss_mb']:.0f} MiB (after build {r['rss_after_build_mb']:.0f})"
        )
        print(
            f"{name:12s} {r['estimator']:11s} mu={r['inner_updates']:<3d} "
            f"step {r['step_s']:.2f}s = sample {r['sample_s']:.2f}s + update {r['update_s']:.2f}s, "
            f"{mem}",
            flush=True,
        )
        split = ", ".join(
            f"{k} {v:.2f}s" + (f" ({r['calls'][k]:g} calls)" if k in ("old", "reference") else "")
            for k, v in r["phases"].items()
        )
        print(f"{'':12s} split: {split}", flush=True)
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "steps_measured": args.steps,
        "device": args.device,
        "overrides": args.set,
    }
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
