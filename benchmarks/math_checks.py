"""Throughput of math answer checking through the worker pool (math-verify in processes).

    .venv/bin/python benchmarks/math_checks.py --num 2000 --workers 1 2

Every pair is distinct and spelled differently on the two sides (so neither the cache nor the
identical-string shortcut answers it): numbers against fractions, LaTeX fractions against
decimals, tuples and sets, as a GSM8K / MATH batch would need. Worker start-up (imports and
warm-up) is timed separately from the checks. ``workers: 0`` is the same checks called inline in
this process (no pool), to separate the pool's overhead from math-verify's own cost.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from trafl.rewards.answers import normalize_answer
from trafl.rewards.math import MathCheckConfig, MathChecker, check_equivalent


def make_pairs(num: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for i in range(num):
        a, b = rng.randint(1, 999), rng.randint(2, 99)
        kind = i % 4
        if kind == 0:  # GSM8K-style integer, written with a trailing .0 or a dollar sign
            pairs.append((str(a * b), rng.choice([f"{a * b}.0", f"\\${a * b}"])))
        elif kind == 1:  # fraction against decimal
            pairs.append((f"\\frac{{{a}}}{{{b}}}", f"{a / b:.6f}"))
        elif kind == 2:  # tuple with LaTeX spacing
            pairs.append((f"\\left( {a}, \\frac{{{b}}}{{2}} \\right)", f"({a}, {b}/2)"))
        else:  # a set in another order
            pairs.append((f"\\{{{a}, {b}\\}}", f"\\{{{b}, {a}\\}}"))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    pairs = make_pairs(args.num)
    rows = []
    for workers in args.workers:
        if workers == 0:
            check_equivalent("1", "1.0", 5, 6)  # imports and warm-up
            start = time.perf_counter()
            tidy = [(normalize_answer(g), normalize_answer(p)) for g, p in pairs]
            verdicts = [check_equivalent(g, p, 5, 6) for g, p in tidy]
            seconds = time.perf_counter() - start
            rows.append({"workers": 0, "checks": len(pairs), "matched": sum(verdicts)})
            rows[-1] |= {
                "seconds": round(seconds, 2),
                "checks_per_s": round(len(pairs) / seconds, 1),
            }
            print(json.dumps(rows[-1]))
            continue
        checker = MathChecker(MathCheckConfig(num_workers=workers))
        start = time.perf_counter()
        checker.equivalent_many([("1", "1.0")] * workers)  # start and warm every worker
        startup = time.perf_counter() - start
        start = time.perf_counter()
        verdicts = checker.equivalent_many(pairs)
        seconds = time.perf_counter() - start
        checker.close()
        rows.append(
            {
                "workers": workers,
                "checks": len(pairs),
                "matched": sum(verdicts),
                "seconds": round(seconds, 2),
                "checks_per_s": round(len(pairs) / seconds, 1),
                "startup_s": round(startup, 2),
            }
        )
        print(json.dumps(rows[-1]))


if __name__ == "__main__":
    main()
