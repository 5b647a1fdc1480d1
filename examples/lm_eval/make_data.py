"""Write countdown_mc.jsonl: a two-way multiple-choice Countdown task for lm-eval.

Each row is one of the first 100 problems of the shipped Countdown test split, a correct
solution (drawn as in pretraining) and a near miss: the same expression with one operator
changed so that it misses the target. Run from the repository root:

    .venv/bin/python examples/lm_eval/make_data.py
"""

import json
import random
from pathlib import Path

from trafl.tasks.countdown import Countdown

OPERATORS = "+-*/"


def near_miss(task: Countdown, problem: dict, solution: str, rng: random.Random) -> str | None:
    """``solution`` with one operator replaced so that it no longer solves ``problem``."""
    spots = [i for i, c in enumerate(solution) if c in OPERATORS]
    rng.shuffle(spots)
    for i in spots:
        for op in rng.sample(OPERATORS, len(OPERATORS)):
            wrong = solution[:i] + op + solution[i + 1 :]
            if op != solution[i] and task.reward(problem, wrong) == 0.0 and "/0" not in wrong:
                return wrong
    return None


def main() -> None:
    task, rng = Countdown(), random.Random(0)
    rows = []
    for problem in task.problems("test")[:100]:
        right = task.demonstration(problem, rng)
        wrong = near_miss(task, problem, right, rng)
        if wrong is None:
            continue
        label = rng.randrange(2)  # where the right answer sits
        choices = [wrong, right] if label else [right, wrong]
        rows.append({"prompt": task.prompt(problem), "choices": choices, "label": label})
    out = Path(__file__).with_name("countdown_mc.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} problems to {out}")


if __name__ == "__main__":
    main()
