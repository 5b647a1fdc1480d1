"""How many solutions Countdown problems have, for a task config (README's figures).

.venv/bin/python scripts/countdown_stats.py [key=value ...]     # e.g. 'num_numbers=[3]'
"""

from __future__ import annotations

import itertools
import statistics
import sys

from trafl.core.config_files import load_config
from trafl.tasks.countdown import Countdown, CountdownConfig
from trafl.tasks.countdown_expr import solution_counts


def main() -> None:
    cfg = load_config(CountdownConfig, None, sys.argv[1:])
    task = Countdown(cfg)
    counts = [len(task.all_solutions(p)) for p in task.problems("test")]
    print(
        f"test split: {len(counts)} problems; solutions per problem: min {min(counts)}, "
        f"median {statistics.median(counts)}, mean {statistics.mean(counts):.2f}, max {max(counts)}"
    )
    for size in cfg.num_numbers:
        numbers = range(cfg.min_number, cfg.max_number + 1)
        total = sum(
            sum(
                1
                for t, c in solution_counts(ms).items()
                if cfg.min_target <= t <= cfg.max_target and c >= cfg.min_solutions
            )
            for ms in itertools.combinations_with_replacement(numbers, size)
        )
        print(f"distinct {size}-number problems in the whole space: {total}")


if __name__ == "__main__":
    main()
