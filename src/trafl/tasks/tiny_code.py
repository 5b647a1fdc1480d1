"""``tiny_code``: write a Python expression ``f(x)`` from input/output examples; the CPU-sized
code task, built so that many programs solve each problem.

A problem is ``{"examples": [[0, 1], [1, 3], ...], "tests": [[0, 1], [1, 3], ..., [15, 31]]}``;
the prompt is ``"0>1 1>3 2>5 3>7 5>11 8>17:"`` (compact, for the character tokenizer), and a
completion such as ``x*2+1`` or ``x+x+1`` is correct iff ``def f(x): return (<completion>)``
returns exactly the test outputs (ints) on every hidden input ``x`` in ``0..15``.

Why the task is built the way it is:

* **Rewards execute the program in the sandbox**, as code tasks at scale do: one sandbox process
  per completion runs all its hidden tests (``call`` mode) and the trainer compares the results.
  Any Python expression counts, in the grammar or not.
* **Problems are behaviours, solutions are programs.** The family (:mod:`tiny_code_family`) holds
  every expression of at most ``max_nodes`` nodes over ``x``, ``1..max_const`` and ``ops``
  (default ``+ - *``; ``// % min max`` too on request); programs with equal outputs on the
  hidden inputs form a problem. Only
  behaviours with at least ``min_solutions`` distinct canonical programs become problems.
* **The examples identify the problem.** The shown inputs are fixed (``example_inputs``) and a
  behaviour is kept only if no other behaviour of the family shows the same examples, so a
  solver that stays in the family can always be right; hidden tests then check the other inputs.
* **Splits.** Problems are ordered deterministically; ``num_test`` of them, drawn with
  ``split_seed``, are the test split and the rest are training problems (disjoint by behaviour).
* **Solutions and keys.** Demonstrations draw a canonical program uniformly from the problem's
  family members and write it in a random spelling. ``solution_key`` is the canonical form
  (commutative chains flattened and sorted; see the family module) of a correct completion, or
  its normalised Python text if it is outside the grammar; ``all_solutions`` is the family's
  canonical programs for the problem (a correct completion outside the family is a solution not
  in that set).
"""

from __future__ import annotations

import ast
import json
import random
from dataclasses import dataclass, field

from trafl.core.errors import UserError
from trafl.rewards.code import CodeRewardConfig, normalise
from trafl.rewards.sandbox import Job, SandboxConfig, SandboxResult
from trafl.tasks.base import TASKS, Problem, TaskConfig
from trafl.tasks.code import CodeTask
from trafl.tasks.tiny_code_family import check_ops, family, key, parse, render


# Task-specific defaults as a subclass: the section's type says what they are, and an override
# of one key (task.reward.sandbox.workers=4) keeps the others (trafl.core.config.layer).
@dataclass
class TinyCodeSandbox(SandboxConfig):
    """Expressions are tiny, so limits are tight. Starting a sandboxed interpreter is mostly
    waiting (namespaces, exec), so 4 workers beat 2 even on 2 cores: 128 completions in 3.2 s
    instead of 4.5 s (benchmarks/sandbox_throughput.py)."""

    timeout_s: float = 5.0
    cpu_s: int = 5
    memory_mb: int = 512
    workers: int = 4


@dataclass
class TinyCodeReward(CodeRewardConfig):
    """Correctness alone (like countdown); the format component is logged, not rewarded."""

    correct_weight: float = 1.0
    format_weight: float = 0.0
    sandbox: TinyCodeSandbox = field(default_factory=TinyCodeSandbox)


@dataclass
class TinyCodeConfig(TaskConfig):
    name: str = "tiny_code"
    # The defaults are the distribution of the shipped base model (models/tiny-code-base).
    max_const: int = 5
    max_nodes: int = 7  # up to three operators
    # + - * by default (our choice: the shipped 1.3M-parameter base learns nothing from the
    # full set in 3000 steps, see the README); // % min max are available.
    ops: list[str] = field(default_factory=lambda: ["+", "-", "*"])
    example_inputs: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 5, 8])
    min_input: int = 0  # hidden tests: every x in [min_input, max_input]
    max_input: int = 15
    min_solutions: int = 3
    num_test: int = 100
    split_seed: int = 1234
    reward: TinyCodeReward = field(default_factory=TinyCodeReward)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ops(self.ops)
        if not 1 <= self.max_const <= 9 or self.max_nodes not in (1, 3, 5, 7):
            raise ValueError("need 1 <= max_const <= 9 and max_nodes in 1, 3, 5, 7")
        inputs = range(self.min_input, self.max_input + 1)
        if not self.example_inputs or any(x not in inputs for x in self.example_inputs):
            raise ValueError("example_inputs must be a nonempty subset of [min_input, max_input]")
        if self.min_solutions < 1 or self.num_test < 0:
            raise ValueError("need min_solutions >= 1 and num_test >= 0")


@TASKS.register("tiny_code")
class TinyCode(CodeTask):
    """The tiny code task (see the module docstring)."""

    Config = TinyCodeConfig
    name = "tiny_code"
    splits = ("test", "train")

    def __init__(self, config: TinyCodeConfig | None = None) -> None:
        self.config = config if config is not None else TinyCodeConfig()
        cfg = self.config
        self.inputs = tuple(range(cfg.min_input, cfg.max_input + 1))
        self.groups = family(cfg.max_const, cfg.max_nodes, check_ops(cfg.ops), self.inputs)
        shown = [self.inputs.index(x) for x in cfg.example_inputs]
        counts: dict[tuple[int, ...], int] = {}
        for behaviour in self.groups:
            sig = tuple(behaviour[i] for i in shown)
            counts[sig] = counts.get(sig, 0) + 1
        eligible = sorted(
            b
            for b, keys in self.groups.items()
            if len(keys) >= cfg.min_solutions
            and len(set(b)) > 1
            and counts[tuple(b[i] for i in shown)] == 1
        )
        if len(eligible) <= cfg.num_test:
            raise UserError(
                f"only {len(eligible)} problems for num_test={cfg.num_test}; lower num_test or "
                "min_solutions, or widen the family (max_const, max_nodes, ops)"
            )
        drawn = random.Random(cfg.split_seed).sample(range(len(eligible)), cfg.num_test)
        self._test = [eligible[i] for i in drawn]  # in drawn order: any prefix is a fair sample
        self._train = [b for i, b in enumerate(eligible) if i not in set(drawn)]
        self.sandbox  # noqa: B018 - probe the sandbox now: a bad setting fails at startup

    # ----------------------------------------------------------------- data

    def _problem(self, behaviour: tuple[int, ...]) -> Problem:
        tests = [[x, y] for x, y in zip(self.inputs, behaviour, strict=True)]
        examples = [[x, behaviour[self.inputs.index(x)]] for x in self.config.example_inputs]
        return {"examples": examples, "tests": tests}

    def problems(self, split: str) -> list[Problem]:
        if split not in self.splits:
            raise UserError(f"unknown split {split!r}; valid: {', '.join(self.splits)}")
        return [self._problem(b) for b in (self._test if split == "test" else self._train)]

    def sample_train(self, num: int, rng: random.Random) -> list[Problem]:
        return [self._problem(rng.choice(self._train)) for _ in range(num)]

    def _keys(self, problem: Problem) -> tuple[str, ...]:
        return self.groups.get(tuple(y for _, y in problem["tests"]), ())

    # ----------------------------------------------------------------- text

    def prompt(self, problem: Problem) -> str:
        return " ".join(f"{x}>{y}" for x, y in problem["examples"]) + ":"

    def demonstration(self, problem: Problem, rng: random.Random) -> str:
        """A family member drawn uniformly among the problem's canonical programs, in a random
        spelling (uniform over programs, not spellings, as in countdown)."""
        keys = self._keys(problem)
        if not keys:
            raise ValueError(f"problem {problem!r} is not a behaviour of this task's family")
        return render(parse(rng.choice(keys)), rng)

    # ----------------------------------------------------------------- scoring

    def build_job(self, problem: Problem, completion: str) -> Job | None:
        program = f"def f(x):\n    return ({completion.strip()})\n"
        return Job(program, mode="call", entry="f", inputs=[[x] for x, _ in problem["tests"]])

    def passed(self, problem: Problem, result: SandboxResult) -> list[bool]:
        flags = []
        for (_, expected), (status, value) in zip(problem["tests"], result.results, strict=True):
            got = json.loads(value) if status == "ok" else None
            flags.append(type(got) is int and got == expected)  # True is not 1 here
        return flags

    def problem_id(self, problem: Problem) -> str:
        return json.dumps(problem["tests"])

    def format_of(self, problem: Problem, completion: str) -> float:
        """1.0 if the completion is one Python expression (in the grammar or not)."""
        text = completion.strip()
        if not text or len(text) > 200:
            return 0.0
        try:
            ast.parse(text, mode="eval")
        except Exception:
            return 0.0
        return 1.0

    def canonical(self, problem: Problem, completion: str) -> str | None:
        tree = parse(completion)
        if tree is not None:
            return key(tree)
        text = normalise(completion.strip())
        return None if text is None else f"py:{text}"

    def all_solutions(self, problem: Problem) -> set[str] | None:
        return set(self._keys(problem))
