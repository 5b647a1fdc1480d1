"""``mbpp``: Mostly Basic Python Problems (Austin et al., 2021): a one-line task description and
three ``assert`` tests; the generated function must pass them in the sandbox.

Data: the hub dataset ``google-research-datasets/mbpp`` (subset ``full``: 374 train / 500 test
problems; or ``sanitized``), or a local JSON/JSONL/parquet in either layout with
``task.path=...`` (``train_path`` for training problems). Both field layouts are read: ``text``
(full) or ``prompt`` (sanitized) for the description, ``test_setup_code`` or ``test_imports``
for what runs before the tests.

Prompt styles (lm-eval's, which d1's successors use for code):

* ``instruct``: "You are an expert Python programmer, and here is your task:\\n{text}\\nYour code
  should pass these tests:\\n{tests}"; the answer is the fenced block (see
  :func:`trafl.rewards.code.extract_code`).
* ``begin_done``: the base-model format, the tests followed by ``[BEGIN]``; the completion runs
  until ``[DONE]``.

Each assert is a separate test, so ``pass_rate`` counts them; ``correct`` needs all three
(``challenge_test_list`` is added with ``challenge_tests=true``). ``solution_key`` is the
normalised program of a correct completion.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

from trafl.core.errors import UserError
from trafl.rewards.code import CodeRewardConfig, extract_code, normalise, parses
from trafl.rewards.sandbox import Job
from trafl.tasks.base import TASKS, Problem, TaskConfig
from trafl.tasks.code import CodeTask
from trafl.tasks.data import DataError, convert_records, load_records

INSTRUCTION = "You are an expert Python programmer, and here is your task:"


@dataclass
class MBPPReward(CodeRewardConfig):
    """lm-eval's MBPP takes the first fenced block (a subclass, not a default_factory value, so
    that overriding another key of ``task.reward`` keeps it)."""

    block: Literal["first", "last"] = "first"


@dataclass
class MBPPConfig(TaskConfig):
    name: str = "mbpp"
    path: str | None = None  # local test problems (wins over dataset)
    train_path: str | None = None  # local training problems
    dataset: str | None = "google-research-datasets/mbpp"
    subset: str | None = "full"
    split: str = "test"
    train_split: str = "train"
    prompt_style: Literal["instruct", "begin_done"] = "instruct"
    challenge_tests: bool = False
    reward: MBPPReward = field(default_factory=MBPPReward)


def to_problem(row: dict[str, Any], challenge: bool) -> Problem:
    """One record of either MBPP layout as a problem dict."""
    text = row.get("text") or row.get("prompt")
    tests = list(row.get("test_list") or [])
    if not text or not tests:
        raise DataError(f"mbpp: a record lacks 'text'/'prompt' or 'test_list': {sorted(row)}")
    setup = row.get("test_setup_code") or "\n".join(row.get("test_imports") or [])
    extra = list(row.get("challenge_test_list") or []) if challenge else []
    return {
        "task_id": str(row.get("task_id", "")),
        "text": str(text).strip(),
        "tests": [str(t) for t in tests + extra],
        "setup": str(setup or ""),
        "code": str(row.get("code") or ""),
    }


@TASKS.register("mbpp")
class MBPP(CodeTask):
    """MBPP (see the module docstring). Satisfies ``Task`` and ``ScoringTask``."""

    Config = MBPPConfig
    name = "mbpp"

    def __init__(self, config: MBPPConfig | None = None) -> None:
        self.config = config if config is not None else MBPPConfig()
        self._splits: dict[str, list[Problem]] = {}
        self.sandbox  # noqa: B018 - probe the sandbox now: a bad setting fails at startup
        for split, path in (("test", self.config.path), ("train", self.config.train_path)):
            if path:  # a bad local file fails now, before a model loads
                self._load(split)

    def _load(self, split: str) -> list[Problem]:
        if split not in ("test", "train"):
            raise UserError(f"unknown split {split!r}; valid: 'test', 'train'")
        if split not in self._splits:
            cfg = self.config
            path = cfg.path if split == "test" else cfg.train_path
            if path is None and cfg.path and split == "train":
                raise DataError("mbpp: task.path gives test problems; set task.train_path=FILE")
            hub_split = cfg.split if split == "test" else cfg.train_split
            rows = load_records(path, cfg.dataset, hub_split, cfg.subset, "mbpp")
            where = f"mbpp: {split} data {path or cfg.dataset}"
            self._splits[split] = convert_records(
                rows, lambda r: to_problem(r, cfg.challenge_tests), where
            )
        return self._splits[split]

    def problems(self, split: str) -> list[Problem]:
        return [dict(p) for p in self._load(split)]

    def sample_train(self, num: int, rng: random.Random) -> list[Problem]:
        train = self._load("train")
        return [dict(rng.choice(train)) for _ in range(num)]

    def prompt(self, problem: Problem) -> str:
        tests = "\n".join(problem["tests"][:3])
        if self.config.prompt_style == "begin_done":
            return (
                f"{INSTRUCTION} {problem['text']} Your code should pass these tests:\n\n"
                f"{tests}\n[BEGIN]\n"
            )
        return f"{INSTRUCTION}\n{problem['text']}\nYour code should pass these tests:\n{tests}"

    def demonstration(self, problem: Problem, rng: random.Random) -> str:
        code = problem["code"].replace("\r\n", "\n").strip()
        if not code:
            raise UserError(f"mbpp problem {problem['task_id']} has no reference code")
        if self.config.prompt_style == "begin_done":
            return f"{code}\n[DONE]"
        return f"```python\n{code}\n```"

    def code_of(self, completion: str) -> str:
        if self.config.prompt_style == "begin_done":
            return completion.split("[DONE]", 1)[0]
        return extract_code(completion, self.config.reward.block)

    def build_job(self, problem: Problem, completion: str) -> Job | None:
        program = f"{problem['setup']}\n{self.code_of(completion)}"
        return Job(program, tests=list(problem["tests"]))

    def problem_id(self, problem: Problem) -> str:
        return problem["task_id"]

    def format_of(self, problem: Problem, completion: str) -> float:
        if self.config.prompt_style == "begin_done":
            return float("[DONE]" in completion and parses(self.code_of(completion)))
        return super().format_of(problem, completion)

    def canonical(self, problem: Problem, completion: str) -> str | None:
        return normalise(self.code_of(completion))
