"""What the hub-backed math tasks (gsm8k, math500, minerva_math) share: data sources, d1's
prompt, answer checking in worker processes, and weighted reward components.

A problem is ``{"question": str, "answer": str, "solution": str | None, ...}``: the question
text, the gold final answer (LaTeX or a number) and the dataset's worked solution where it has
one. A task subclass says which hub dataset and record fields to use and how its prompt reads.

Scoring (:meth:`MathTask.score`) returns, per completion, ``correct`` (1 when the extracted
answer is equivalent to the gold one under math-verify) and the d1 format components of
:mod:`trafl.rewards.formats` named in the task's ``components``; ``reward`` is their weighted sum
with the config's ``<component>_weight`` fields. The defaults weigh correctness alone, so that
``reward >= 1`` means correct (what ``trafl eval`` counts); the format components are still
computed and logged. d1's weights are in :mod:`trafl.rewards.formats`.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from trafl.core.config import check_choice
from trafl.rewards.answers import extract_answer, last_boxed, normalize_answer
from trafl.rewards.formats import FORMAT_REWARDS
from trafl.rewards.math import MathCheckConfig, MathChecker, shared_checker
from trafl.tasks.base import Problem
from trafl.tasks.hub import HubDataConfig, HubTask

log = logging.getLogger(__name__)

# d1's SYSTEM_PROMPT (diffu-grpo/data_utils.py), byte for byte, leading newline included: d1
# puts it in the user turn, before the question.
D1_SYSTEM_PROMPT = """
Respond in the following format:
<reasoning>
...
</reasoning>
<answer>
...
</answer>
"""

# d1 prompts differently when it trains (diffu-grpo/data_utils.py: SYSTEM_PROMPT above) and
# when it evaluates (eval/*.py: a task-specific system prompt asking for \boxed{} inside the
# answer block, and the assistant turn pre-filled with "<reasoning>", which is the model
# adapter's business). Tasks take ``prompt_style`` to pick one.
PROMPT_STYLES = ("d1_train", "d1_eval")


@dataclass
class MathTaskConfig(HubDataConfig):
    """Data, answer checking and reward weights of a math task (see the module docstring)."""

    prompt_style: str = "d1_train"  # or "d1_eval": see PROMPT_STYLES
    last_number_fallback: bool = False  # no <answer>, \boxed or ####: take the last number
    correct_weight: float = 1.0
    xml_weight: float = 0.0
    soft_format_weight: float = 0.0
    strict_format_weight: float = 0.0
    checker: MathCheckConfig = field(default_factory=MathCheckConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("prompt_style", self.prompt_style, PROMPT_STYLES)


def gold_from_solution(solution: str) -> str:
    """The gold answer of a MATH-style solution: its last ``\\boxed{}``."""
    boxed = last_boxed(solution)
    if not boxed:
        raise ValueError("the solution has no \\boxed{} answer")
    return boxed


class MathTask(HubTask):
    """A math task: extraction, math-verify equivalence and weighted reward components."""

    components: ClassVar[tuple[str, ...]] = ("xml", "soft_format", "strict_format")
    config: MathTaskConfig

    def __init__(self, config: MathTaskConfig) -> None:
        super().__init__()
        self.config = config
        self._checker: MathChecker | None = None
        self._load_local_files()

    @property
    def checker(self) -> MathChecker:
        """Started on first use, so building a task (e.g. to print prompts) starts no process."""
        if self._checker is None:
            self._checker = shared_checker(self.config.checker)
        return self._checker

    def answer(self, completion: str) -> str | None:
        """The final answer the completion states, or None."""
        return extract_answer(completion, self.config.last_number_fallback)

    def score(self, problems: list[Problem], completions: list[str]) -> list[dict[str, float]]:
        """``reward`` plus ``correct`` and each format component, per completion. Never raises
        on model output: what cannot be read or checked scores 0."""
        preds = [self._safe(self.answer, c, None) for c in completions]
        golds = [str(p.get("answer", "")) for p in problems]
        correct = self.checker.equivalent_many(list(zip(golds, preds, strict=True)))
        weights = {"correct": self.config.correct_weight} | {
            name: getattr(self.config, f"{name}_weight") for name in self.components
        }
        out = []
        for text, ok in zip(completions, correct, strict=True):
            parts = {"correct": float(ok)}
            for name in self.components:
                parts[name] = self._safe(FORMAT_REWARDS[name], text, 0.0)
            reward = sum(weights[k] * v for k, v in parts.items())
            out.append({"reward": reward, **parts})
        return out

    @staticmethod
    def _safe(fn: Any, text: str, default: Any) -> Any:
        try:
            return fn(text)
        except Exception as err:  # noqa: BLE001 - model text must never raise into a trainer
            log.warning("%s raised on %r: %r", getattr(fn, "__name__", fn), text[:80], err)
            return default

    def reward(self, problem: Problem, completion: str) -> float:
        return self.score([problem], [completion])[0]["reward"]

    def solution_key(self, problem: Problem, completion: str) -> str | None:
        """The tidied gold answer for a correct completion (every correct completion states the
        same answer, so math tasks have one solution each), else None."""
        pred = self._safe(self.answer, completion, None)
        if pred is None or not self.checker.equivalent(str(problem["answer"]), pred):
            return None
        return normalize_answer(str(problem["answer"]))

    def all_solutions(self, problem: Problem) -> set[str] | None:
        return None

    def demonstration(self, problem: Problem, rng: random.Random) -> str:
        """The dataset's worked solution in d1's format: the solution as the reasoning, the
        final answer in the ``<answer>`` block."""
        solution = problem.get("solution")
        if not solution:
            raise ValueError(
                f"{self.name}: this problem has no worked solution in the data, so there is no "
                f"demonstration (the dataset gives a final answer only)"
            )
        return (
            f"<reasoning>\n{self.reasoning_text(solution)}\n</reasoning>\n"
            f"<answer>\n{self.answer_text(problem)}\n</answer>"
        )

    def reasoning_text(self, solution: str) -> str:
        return solution.strip()

    def answer_text(self, problem: Problem) -> str:
        return f"\\boxed{{{problem['answer']}}}"
