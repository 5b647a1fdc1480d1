"""Train TraFL for a few steps on a JSONL dataset with TRL-style reward functions.

    python examples/dataset_task/train.py            # writes runs/dataset-task/data.jsonl, trains
    python examples/dataset_task/train.py --steps 20 --out runs/my-run

It writes a small Countdown-like dataset (prompt, nums, target; only characters that the
shipped base's character tokenizer knows), prints the ``trafl train`` command line and runs it:
the shipped tiny base ``models/countdown-base``, ``task=dataset`` on the file, and the two
reward functions of ``rewards.py`` weighted 1.0 and 0.2."""

from __future__ import annotations

import argparse
import json
import random
import shlex
from fractions import Fraction
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def expression_value(nums: list[int], rng: random.Random) -> Fraction | None:
    """The value of a random expression that uses every number once (None: division by 0)."""
    values = [Fraction(n) for n in nums]
    while len(values) > 1:
        a, b = values.pop(rng.randrange(len(values))), values.pop(rng.randrange(len(values)))
        op = rng.choice("+-*/")
        if op == "/" and b == 0:
            return None
        values.append({"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else a}[op])
    return values[0]


def make_rows(num: int, seed: int = 0) -> list[dict]:
    """``num`` rows ``{"prompt": "3 5 7 -> 22:", "nums": [3, 5, 7], "target": 22}``, each
    target an integer in 1..50 reachable from its numbers."""
    rng, rows = random.Random(seed), []
    while len(rows) < num:
        nums = [rng.randint(1, 9) for _ in range(rng.choice([3, 4]))]
        value = expression_value(nums, rng)
        if value is None or value.denominator != 1 or not 1 <= value <= 50:
            continue
        target = int(value)
        prompt = " ".join(map(str, nums)) + f" -> {target}:"
        rows.append({"prompt": prompt, "nums": nums, "target": target})
    return rows


def command(data: Path, out: Path, steps: int) -> list[str]:
    rewards = HERE / "rewards.py"
    return [
        "train",
        f"model={ROOT / 'models' / 'countdown-base'}",
        "task=dataset",
        f"task.path={data}",
        f"task.rewards=[{rewards}:correct,{rewards}:uses_numbers]",
        "task.reward_weights=[1.0,0.2]",
        "objective=trafl",
        "rollout.prompts_per_step=4",
        "rollout.group_size=4",
        f"steps={steps}",
        "eval_every=0",
        "device=cpu",
        f"out_dir={out}",
        "overwrite=true",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "dataset-task")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in make_rows(args.rows)))
    cmd = command(data, args.out / "run", args.steps)
    print("trafl " + " ".join(shlex.quote(a) for a in cmd), flush=True)
    from trafl.commands.cli import main as trafl

    trafl(cmd)


if __name__ == "__main__":
    main()
