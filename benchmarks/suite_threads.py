"""How many CPU threads the test suite's processes should use: one test, timed at each thread
count, on an idle machine and with other processes keeping every core busy.

    python benchmarks/suite_threads.py                     # the quick demo test, 1 and 2 threads
    python benchmarks/suite_threads.py --hogs 0 2 --threads 1 2 --repeats 2

Each run is ``python -m pytest TEST`` in a new process with ``OMP_NUM_THREADS`` set (the
suite's conftest.py uses it for its own process and every process a test starts). ``--hogs N``
starts N busy Python loops first (niced to the same priority as the test, so the cores are
shared as with a second job on the machine), kills them after. The fastest of ``--repeats``
runs is kept. Writes ``benchmarks/suite_threads.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/test_compare_demo.py::test_quick_demo_runs_end_to_end_and_reuses_finished_stages"


def timed_run(test: str, threads: int, hogs: int) -> float:
    """Wall seconds of one pytest process on ``test`` beside ``hogs`` busy loops."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    try:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        seconds = time.perf_counter() - start
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    if done.returncode != 0:
        sys.exit(f"{test} failed at {threads} thread(s):\n{done.stdout[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test", default=TEST)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--hogs", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "suite_threads.json")
    args = parser.parse_args()
    rows = []
    for hogs in args.hogs:
        for threads in args.threads:
            best = min(timed_run(args.test, threads, hogs) for _ in range(args.repeats))
            rows.append({"hogs": hogs, "threads": threads, "seconds": round(best, 1)})
            print(f"busy loops {hogs}  threads {threads}  {best:7.1f} s", flush=True)
    result = {
        "test": args.test,
        "repeats": args.repeats,
        "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
