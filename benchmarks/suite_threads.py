"""How many CPU threads the test suite's processes should use: one test (or the whole suite),
timed at each thread count, on an idle machine and beside busy processes.

    python benchmarks/suite_threads.py                     # the quick demo test, 1 and 2 threads
    python benchmarks/suite_threads.py --hogs 0 2 --threads 1 2 --repeats 3
    python benchmarks/suite_threads.py --test tests --hogs 0   # the whole suite, idle

Each run is ``python -m pytest TEST`` in a new process with ``OMP_NUM_THREADS`` set (the
suite's conftest.py uses it for its own process and every process a test starts). ``--hogs N``
first starts N busy Python loops, at the benchmark's own priority (nothing is reniced): with N
at least the number of cores, every core is shared with another job. The loops end with the
benchmark, also when it is killed. The settings take turns within each of ``--repeats``
rounds; each row records the tests' own time (pytest's, without the process's start-up and
collection) and the process's wall time, their median and max over the rounds. Writes
``benchmarks/suite_threads.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/test_compare_demo.py::test_quick_demo_runs_end_to_end_and_reuses_finished_stages"
# a busy loop that stops when the benchmark that started it is gone (a kill skips `finally`)
LOOP = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    pass\n"


def timed_run(test: str, threads: int, hogs: int) -> tuple[float, float]:
    """(tests' own seconds, wall seconds) of one pytest process on ``test`` beside ``hogs``
    busy loops."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    env.pop("PYTEST_ADDOPTS", None)  # an outer `-m slow` or `-k` would deselect ``test``
    loops: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test,
               f"--junitxml={report}"]  # fmt: skip
        try:
            loops = [subprocess.Popen([sys.executable, "-c", LOOP]) for _ in range(hogs)]
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - start
        finally:
            for loop in loops:
                loop.kill()
                loop.wait()
        if done.returncode != 0:
            sys.exit(f"{test} failed at {threads} thread(s):\n{done.stdout[-2000:]}")
        cases = list(ET.parse(report).getroot().iter("testcase"))
        if not cases:
            sys.exit(f"{test}: the run's report holds no test case at {threads} thread(s)")
        # junit writes milliseconds: a test under half a millisecond reads 0.000
        return sum(float(case.get("time", 0)) for case in cases), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test", default=TEST)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--hogs", type=int, nargs="+", default=[0, os.cpu_count() or 1])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "suite_threads.json")
    args = parser.parse_args()
    settings = [(hogs, threads) for hogs in args.hogs for threads in args.threads]
    times: dict[tuple[int, int], list[tuple[float, float]]] = {s: [] for s in settings}
    for _ in range(args.repeats):  # the settings take turns: a drift hits them alike
        for hogs, threads in settings:
            times[hogs, threads].append(timed_run(args.test, threads, hogs))
            tests_s, wall_s = times[hogs, threads][-1]
            print(f"busy loops {hogs}  threads {threads}  tests {tests_s:7.1f} s  "
                  f"process {wall_s:7.1f} s", flush=True)  # fmt: skip
    rows = []
    for (hogs, threads), runs in times.items():
        tests, walls = [t for t, _ in runs], [w for _, w in runs]
        rows.append({
            "hogs": hogs, "threads": threads,
            "tests_s": {"median": round(statistics.median(tests), 3), "max": round(max(tests), 3)},
            "process_s": {"median": round(statistics.median(walls), 1), "max": round(max(walls), 1)},
        })  # fmt: skip
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
