"""``livecodebench``: contest problems (LeetCode, AtCoder, Codeforces) published after a date,
scored on their public and private tests in the sandbox (Jain et al., 2024).

Data: the hub dataset ``livecodebench/code_generation_lite`` (``version`` = its release tag,
e.g. ``release_v5``), or a local JSON/JSONL/parquet with the same fields (``task.path=...``):
question_id, question_content, starter_code, difficulty, contest_date, public_test_cases,
private_test_cases, metadata. ``difficulties`` selects the easy / medium / hard splits and
``start_date`` / ``end_date`` a contest window (what LiveCodeBench reports by).

Private tests come either as JSON text or, as on the hub, as base64 of zlib of a *pickled* JSON
string. Unpickling data is code execution in general, so it is done with an unpickler that
refuses every global: a pickled string still loads, anything else is an error.

Tests are of two kinds, as in LiveCodeBench's own runner: ``stdin`` (the program reads stdin and
its stdout is compared line by line after stripping, numbers also as decimals) and ``functional``
(``Solution().<func_name>`` from the starter code is called with the JSON arguments, one per
input line, and its result compared with the JSON output). Comparison happens in the trainer,
outside the sandbox. The prompt is LiveCodeBench's generic template (its system message is left
to the model's chat template). There are no reference solutions (no pretraining demonstrations)
and the solution set is not enumerable; ``solution_key`` is the normalised program.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import random
import zlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from trafl.core.errors import UserError
from trafl.rewards.code import CodeRewardConfig, extract_code
from trafl.rewards.sandbox import Job, SandboxConfig, SandboxResult
from trafl.tasks.base import TASKS, Problem, TaskConfig
from trafl.tasks.code import CodeTask
from trafl.tasks.data import DataError, convert_records, load_records

DIFFICULTIES = ("easy", "medium", "hard")
WITH_STARTER = (
    "You will use the following starter code to write the solution to the problem and enclose "
    "your code within delimiters."
)
WITHOUT_STARTER = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not "
    "directly test on the sample inputs). Enclose your code within delimiters as follows. Ensure "
    "that when the python program runs, it reads the inputs, runs the algorithm and writes "
    "output to STDOUT."
)

# What LiveCodeBench's runner makes available before the program (LeetCode's environment has
# these names predefined; solutions rely on List, defaultdict, heappush... without importing).
PRELUDE = (
    "from typing import *\nfrom collections import *\nfrom itertools import *\n"
    "from functools import *\nfrom heapq import *\nfrom bisect import *\nfrom math import *\n"
    "import sys, re, math, string, itertools, functools, collections, heapq, bisect\n"
    "from builtins import *\nsys.setrecursionlimit(50000)\n"
)


# Task-specific defaults as a subclass: the section's type says what they are, and an override
# of one key (task.reward.sandbox.workers=8) keeps the others (trafl.core.config.layer).
@dataclass
class LiveCodeBenchSandbox(SandboxConfig):
    """Contest tests are many and can be large: more time and room than HumanEval needs."""

    timeout_s: float = 60.0
    cpu_s: int = 60
    max_file_mb: int = 64


@dataclass
class LiveCodeBenchReward(CodeRewardConfig):
    sandbox: LiveCodeBenchSandbox = field(default_factory=LiveCodeBenchSandbox)


@dataclass
class LiveCodeBenchConfig(TaskConfig):
    name: str = "livecodebench"
    path: str | None = None  # local file (wins over dataset)
    dataset: str | None = "livecodebench/code_generation_lite"
    version: str | None = "release_v5"  # the hub release tag (the dataset's subset)
    split: str = "test"
    difficulties: list[str] = field(default_factory=lambda: list(DIFFICULTIES))
    start_date: str | None = None  # ISO date, inclusive (contest_date >= start_date)
    end_date: str | None = None  # ISO date, inclusive
    max_tests: int | None = None  # keep only the first N tests of each problem
    reward: LiveCodeBenchReward = field(default_factory=LiveCodeBenchReward)

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [d for d in self.difficulties if d not in DIFFICULTIES]
        if bad or not self.difficulties:
            raise ValueError(f"invalid difficulties {bad or '[]'}; valid: {list(DIFFICULTIES)}")


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from test data")


def decode_tests(raw: Any) -> list[dict[str, Any]]:
    """Test cases from JSON text, a list, or base64(zlib(pickle(JSON text)))."""
    if isinstance(raw, list):
        return raw
    if not raw:
        return []
    try:
        return json.loads(raw)
    except ValueError:
        pass
    data = zlib.decompress(base64.b64decode(raw))
    return json.loads(_NoGlobals(io.BytesIO(data)).load())


def to_problem(row: dict[str, Any]) -> Problem:
    meta = row.get("metadata") or {}
    meta = json.loads(meta) if isinstance(meta, str) else meta
    try:
        tests = decode_tests(row.get("public_test_cases"))
        tests += decode_tests(row.get("private_test_cases"))
    except (zlib.error, pickle.UnpicklingError) as err:  # base64's errors are ValueErrors
        raise ValueError(f"its test cases cannot be decoded: {err}") from err
    if not row.get("question_content") or not tests:
        raise DataError(f"livecodebench: record {row.get('question_id')!r} lacks content or tests")
    return {
        "question_id": str(row.get("question_id", "")),
        "question_content": str(row["question_content"]),
        "starter_code": str(row.get("starter_code") or ""),
        "difficulty": str(row.get("difficulty", "")).lower(),
        "contest_date": str(row.get("contest_date", ""))[:10],
        "func_name": str(meta.get("func_name") or ""),
        "tests": [
            {"input": t["input"], "output": t["output"], "testtype": t["testtype"]} for t in tests
        ],
    }


def same_stdout(got: str, expected: str) -> bool:
    """LiveCodeBench's stdio check: equal stripped lines, or equal as decimal numbers."""
    a, b = got.strip().splitlines(), expected.strip().splitlines()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x.strip() == y.strip():
            continue
        try:
            if [Decimal(t) for t in x.split()] != [Decimal(t) for t in y.split()]:
                return False
        except (InvalidOperation, ValueError):
            return False
    return True


@TASKS.register("livecodebench")
class LiveCodeBench(CodeTask):
    """LiveCodeBench code generation (see the module docstring)."""

    Config = LiveCodeBenchConfig
    name = "livecodebench"

    def __init__(self, config: LiveCodeBenchConfig | None = None) -> None:
        self.config = config if config is not None else LiveCodeBenchConfig()
        self._problems: list[Problem] | None = None
        self.sandbox  # noqa: B018 - probe the sandbox now: a bad setting fails at startup
        if self.config.path:  # a bad local file fails now, before a model loads
            self._load()

    def _load(self) -> list[Problem]:
        if self._problems is None:
            cfg = self.config
            rows = load_records(cfg.path, cfg.dataset, cfg.split, cfg.version, "livecodebench")
            problems = convert_records(
                rows, to_problem, f"livecodebench: {cfg.path or cfg.dataset}"
            )
            self._problems = [
                p
                for p in problems
                if p["difficulty"] in cfg.difficulties
                and (cfg.start_date is None or p["contest_date"] >= cfg.start_date)
                and (cfg.end_date is None or p["contest_date"] <= cfg.end_date)
            ]
            if cfg.max_tests is not None:
                for p in self._problems:
                    p["tests"] = p["tests"][: cfg.max_tests]
        return self._problems

    def problems(self, split: str) -> list[Problem]:
        if split != "test":
            raise UserError(f"livecodebench has only a test split; got {split!r} (valid: 'test')")
        return [dict(p) for p in self._load()]

    def sample_train(self, num: int, rng: random.Random) -> list[Problem]:
        raise UserError("livecodebench is a test set; train on your own data (task.path)")

    def prompt(self, problem: Problem) -> str:
        text = f"### Question:\n{problem['question_content']}\n\n"
        if problem["starter_code"]:
            text += f"### Format: {WITH_STARTER}\n```python\n{problem['starter_code']}\n```\n\n"
        else:
            text += f"### Format: {WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
        return text + "### Answer: (use the provided format with backticks)\n\n"

    def demonstration(self, problem: Problem, rng: random.Random) -> str:
        raise UserError("livecodebench has no reference solutions to pretrain on")

    def build_job(self, problem: Problem, completion: str) -> Job | None:
        code = extract_code(completion, self.config.reward.block)
        tests = problem["tests"]
        if tests[0]["testtype"] == "functional":
            name = problem["func_name"]
            entry = f"Solution.{name}" if "class Solution" in problem["starter_code"] else name
            inputs = [
                [json.loads(line) for line in t["input"].split("\n") if line.strip()] for t in tests
            ]
            return Job(PRELUDE + code, mode="call", inputs=inputs, entry=entry)
        return Job(PRELUDE + code, mode="stdio", inputs=[t["input"] for t in tests])

    def passed(self, problem: Problem, result: SandboxResult) -> list[bool]:
        flags = []
        for test, (status, value) in zip(problem["tests"], result.results, strict=True):
            if status != "ok":
                flags.append(False)
            elif test["testtype"] == "functional":
                flags.append(json.loads(value) == json.loads(test["output"]))
            else:
                flags.append(same_stdout(value, test["output"]))
        return flags

    def problem_id(self, problem: Problem) -> str:
        return problem["question_id"]
