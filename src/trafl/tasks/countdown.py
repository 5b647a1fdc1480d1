"""``countdown``: reach a target from 3 or 4 numbers with + - * / and parentheses.

A problem is ``{"nums": [3, 7, 12], "target": 25}``; the prompt is ``"3 7 12 -> 25:"`` and a
correct completion is an expression such as ``12+7*3-...`` that uses every number exactly once
(as decimal literals, no unary minus, no other numbers) and equals the target under exact
rational arithmetic. Intermediate fractions are fine; division by zero is not.

Why this task is built the way it is:

* **Canonical solutions.** Diversity metrics (how many *different* solutions a policy finds)
  need "different" to mean something. ``3+4`` and ``4+3`` are the same solution; so are
  ``12-(7-3)`` and ``12-7+3``, and ``12/(6/3)`` and ``12*3/6``. Every expression is mapped to a
  canonical tree -- a number, a ``Sum`` of positive and negative terms, or a ``Prod`` of
  numerator and denominator factors, flattened through + - * / and with children sorted --
  and the tree's string (its *key*) is the solution's identity.
* **The whole solution set is enumerable.** A subset DP over sub-multisets builds every
  canonical tree reachable from the numbers, so rewards, diversity and coverage can be
  checked against ground truth rather than a sample.
* **The reward never executes model text.** A tiny recursive-descent parser (no ``eval``, no
  ``ast``) accepts only digits, + - * / ( ) and spaces, caps length and nesting, and returns
  0.0 for anything else; it never raises.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path

from trafl.core.errors import UserError
from trafl.tasks.base import TASKS, Problem, TaskConfig
from trafl.tasks.countdown_expr import (  # noqa: F401  (re-exported: the task's public API)
    MAX_EXPR_CHARS,
    VALID_SIZES,
    Node,
    Num,
    Parsed,
    Prod,
    Sum,
    _check_nums,
    _solution_trees,
    canonical_key,
    enumerate_solutions,
    parse,
    render,
    solution_counts,
)

_MAX_DRAW_ATTEMPTS = 100_000  # guards the generator against configs with (almost) no problems


# --------------------------------------------------------------------------- the task


@dataclass
class CountdownConfig(TaskConfig):
    """How problems are drawn. ``min_solutions`` filters out targets with too few distinct
    solutions (useful when measuring solution diversity)."""

    name: str = "countdown"
    # The defaults are the distribution the shipped base model (models/countdown-base) was
    # trained on: single-digit numbers (one token each), 3 or 4 of them, targets up to 50 with
    # at least two distinct solutions each (so coverage of the solution set is measurable).
    num_numbers: list[int] = field(default_factory=lambda: [3, 4])
    min_number: int = 1
    max_number: int = 9
    min_target: int = 1
    max_target: int = 50
    num_test: int = 500
    split_seed: int = 1234
    min_solutions: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        self.validate()

    def validate(self) -> None:
        """Raise ValueError on settings the generator cannot honour (called again by the task,
        in case a field was changed after construction)."""
        sizes = list(self.num_numbers)
        if not sizes or any(n not in VALID_SIZES for n in sizes):
            raise ValueError(
                f"num_numbers must be a nonempty list of problem sizes from "
                f"{', '.join(map(str, VALID_SIZES))}; got {self.num_numbers!r}"
            )
        if not 1 <= self.min_number <= self.max_number:
            raise ValueError(
                f"need 1 <= min_number <= max_number, got {self.min_number}, {self.max_number}"
            )
        if self.min_target > self.max_target:
            raise ValueError(
                f"need min_target <= max_target, got {self.min_target}, {self.max_target}"
            )
        if self.num_test < 0:
            raise ValueError(f"num_test must be >= 0, got {self.num_test}")
        if self.min_solutions < 1:
            raise ValueError(f"min_solutions must be >= 1, got {self.min_solutions}")


def _problem_id(problem: Problem) -> tuple[tuple[int, ...], int]:
    """Problems are the same when they have the same multiset and target (order is cosmetic)."""
    return tuple(sorted(problem["nums"])), int(problem["target"])


_SPLITS: dict[tuple, tuple[list[Problem], frozenset[tuple[tuple[int, ...], int]]]] = {}

# The default config's split as drawn (``python scripts/countdown_split.py`` writes it; a test
# checks that drawing gives exactly this file), so a new process does not spend its first 2-3 s
# enumerating 500 problems' solution sets. Any other config is drawn.
SHIPPED_SPLIT = Path(__file__).with_name("countdown_test_split.json")


def _key(pairs) -> tuple:
    """(name, value) pairs as a hashable key: lists become tuples."""
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in pairs)


def split_key(config: CountdownConfig) -> tuple:
    """The fields that decide the test split (not ``name`` nor the pool settings)."""
    ignored = {f.name for f in fields(TaskConfig)} | {"name"}
    return _key((f.name, getattr(config, f.name)) for f in fields(config) if f.name not in ignored)


def _shipped_split(key: tuple) -> list[Problem] | None:
    data = json.loads(SHIPPED_SPLIT.read_text())
    return data["problems"] if _key(data["config"]) == key else None


def _draw_test_split(
    key: tuple, task: Countdown
) -> tuple[list[Problem], frozenset[tuple[tuple[int, ...], int]]]:
    """The test split of the config ``key`` (``split_key``), read from the shipped file when it
    is the default config's, else drawn by ``task``; once per process."""
    if key not in _SPLITS:
        problems = _shipped_split(key)
        if problems is None:
            _SPLITS[key] = task._draw_test_split()
        else:
            _SPLITS[key] = problems, frozenset(map(_problem_id, problems))
    return _SPLITS[key]


@TASKS.register("countdown")
class Countdown:
    """The Countdown task (see the module docstring). Satisfies ``trafl.tasks.base.Task``."""

    Config = CountdownConfig
    name = "countdown"
    splits = ("test", "train")

    def __init__(self, config: CountdownConfig | None = None) -> None:
        self.config = config if config is not None else CountdownConfig()
        self.config.validate()
        self._test: list[Problem] | None = None
        self._test_ids: frozenset[tuple[tuple[int, ...], int]] | None = None

    # ----------------------------------------------------------------- data

    def _draw(self, rng: random.Random) -> Problem:
        """One problem: size, then numbers i.i.d., then a uniformly random eligible target."""
        cfg = self.config
        for _ in range(_MAX_DRAW_ATTEMPTS):
            size = rng.choice(cfg.num_numbers)
            nums = [rng.randint(cfg.min_number, cfg.max_number) for _ in range(size)]
            counts = solution_counts(tuple(sorted(nums)))
            targets = [
                t
                for t, c in counts.items()
                if cfg.min_target <= t <= cfg.max_target and c >= cfg.min_solutions
            ]
            if targets:
                return {"nums": nums, "target": rng.choice(targets)}
        raise UserError(
            f"no problem with a target in [{cfg.min_target}, {cfg.max_target}] and at least "
            f"{cfg.min_solutions} solutions found in {_MAX_DRAW_ATTEMPTS} draws; widen the config"
        )

    def _test_split(self) -> list[Problem]:
        """The split, drawn once per distinct config in this process (drawing 500 problems
        enumerates their solution sets: about 2 s; the default config's is read from
        ``SHIPPED_SPLIT``) and shared read-only between instances."""
        if self._test is None:
            self._test, self._test_ids = _draw_test_split(split_key(self.config), self)
        return self._test

    def _draw_test_split(self) -> tuple[list[Problem], frozenset[tuple[tuple[int, ...], int]]]:
        rng = random.Random(self.config.split_seed)
        seen: set[tuple[tuple[int, ...], int]] = set()
        test: list[Problem] = []
        misses = 0
        while len(test) < self.config.num_test:
            problem = self._draw(rng)
            pid = _problem_id(problem)
            if pid in seen:
                misses += 1
                if misses > _MAX_DRAW_ATTEMPTS:
                    raise UserError(
                        f"only {len(test)} distinct problems found for num_test="
                        f"{self.config.num_test}; widen the config or lower num_test"
                    )
                continue
            seen.add(pid)
            test.append(problem)
        return test, frozenset(seen)

    def problems(self, split: str) -> list[Problem]:
        """The fixed test split (the first ``num_test`` distinct draws from ``split_seed``).

        Returns fresh copies, so a caller mutating a problem cannot corrupt the cached split.
        """
        if split == "test":
            return [{"nums": list(p["nums"]), "target": p["target"]} for p in self._test_split()]
        if split == "train":
            raise UserError(
                "countdown's train split is an infinite generator; use sample_train(num, rng)"
            )
        raise UserError(f"unknown split {split!r}; valid: {', '.join(self.splits)}")

    def sample_train(self, num: int, rng: random.Random) -> list[Problem]:
        """Draw ``num`` training problems with ``rng``, rejecting any that is in the test split."""
        self._test_split()
        assert self._test_ids is not None
        out: list[Problem] = []
        rejected = 0
        while len(out) < num:
            problem = self._draw(rng)
            if _problem_id(problem) in self._test_ids:
                rejected += 1
                if rejected > _MAX_DRAW_ATTEMPTS:
                    raise UserError("the test split covers (almost) every problem; widen config")
                continue
            out.append(problem)
        return out

    # ----------------------------------------------------------------- text

    def prompt(self, problem: Problem) -> str:
        return " ".join(str(n) for n in problem["nums"]) + " -> " + str(problem["target"]) + ":"

    def demonstration(self, problem: Problem, rng: random.Random) -> str:
        """A solution drawn uniformly from the canonical solution set, in a random spelling.

        Uniform over canonical solutions (not over spellings) so that pretraining does not
        favour solutions that merely have more ways to be written.
        """
        trees = _solution_trees(problem["nums"], problem["target"])
        if not trees:
            raise ValueError(f"problem {problem!r} has no solution")
        key = rng.choice(sorted(trees))
        return render(trees[key], rng)

    # ----------------------------------------------------------------- scoring

    def _check(self, problem: Problem, completion: str) -> Parsed | None:
        parsed = parse(completion)
        if parsed is None:
            return None
        if Counter(parsed.literals) != Counter(problem["nums"]):
            return None
        if parsed.value != problem["target"]:
            return None
        return parsed

    def reward(self, problem: Problem, completion: str) -> float:
        """1.0 iff the completion parses, uses exactly the problem's numbers, and hits the target.

        Never raises: a malformed problem or completion scores 0.0 rather than killing a run.
        """
        try:
            return 0.0 if self._check(problem, completion) is None else 1.0
        except Exception:
            return 0.0

    def solution_key(self, problem: Problem, completion: str) -> str | None:
        try:
            parsed = self._check(problem, completion)
        except Exception:
            return None
        return None if parsed is None else parsed.node.key

    def all_solutions(self, problem: Problem) -> set[str] | None:
        return enumerate_solutions(problem["nums"], problem["target"])


__all__ = [
    "Countdown",
    "CountdownConfig",
    "Node",
    "Num",
    "Parsed",
    "Prod",
    "Sum",
    "canonical_key",
    "enumerate_solutions",
    "parse",
    "render",
    "solution_counts",
]
