"""``math500``: the 500-problem MATH test subset of Lightman et al. (2023), in d1's format.

Data: evaluation on the hub dataset ``HuggingFaceH4/MATH-500`` (``test`` split; fields
``problem``, ``solution``, ``answer``, ``subject``, ``level``, ``unique_id``), as in d1's
evaluation and its successors. Training on ``ankner/math-500`` (``train`` split: the rest of
MATH, 12,000 problems disjoint from the 500), which is what d1's ``get_math_questions``
trains on. A local file in either layout loads with ``task.path`` / ``task.train_path``; the
gold answer is the ``answer`` field, else the last ``\\boxed{}`` of ``solution``.

Prompt: d1's, the user turn ``SYSTEM_PROMPT + "\\n\\nYou are a math expert. You will be given
a question to solve. Solve it step by step. Wrap the final answer in a \\boxed{}. \\n\\n" +
problem`` (d1 trains with it); ``prompt_style=d1_eval`` gives d1's evaluation prompt.

Answer: the completion's ``<answer>`` block (its ``\\boxed{}`` if any), else its last
``\\boxed{}``; no last-number fallback by default (d1 has none for MATH). Equivalence is
math-verify's (d1 used Hendrycks' string normalisation ``is_equiv``, which is stricter about
LaTeX spelling). Components: ``correct``, ``xml``, ``soft_format``, ``strict_format`` and
``boxed`` (a ``\\boxed{}`` inside the answer block: d1's ``boxed_and_answer_tags_format_reward``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from trafl.tasks.base import TASKS, Problem
from trafl.tasks.data import Record
from trafl.tasks.hub import field_of
from trafl.tasks.math_common import (
    D1_SYSTEM_PROMPT,
    MathTask,
    MathTaskConfig,
    gold_from_solution,
)

# d1's evaluation prompt for MATH500 (eval/math500.py, MATH500_SYSTEM_PROMPT), byte for byte,
# down to the stray '" ' after the closing tag.
D1_EVAL_PROMPT = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. "
    "Wrap the final answer in a \\boxed{}.\nRespond in the following format:\n<reasoning>\n"
    'Your reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>" \n'
)
D1_MATH_INSTRUCTION = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. "
    "Wrap the final answer in a \\boxed{}. \n\n"
)


@dataclass
class Math500Config(MathTaskConfig):
    name: str = "math500"
    dataset: str | None = "HuggingFaceH4/MATH-500"
    split: str = "test"
    train_dataset: str | None = "ankner/math-500"
    train_split: str = "train"
    boxed_weight: float = 0.0


def math_problem(record: Record) -> Problem:
    """A MATH-style row (``problem``/``question``, ``answer`` and/or ``solution``) as a problem."""
    solution = record.get("solution")
    answer = record.get("answer")
    if answer is None or not str(answer).strip():
        answer = gold_from_solution(str(field_of(record, ("answer", "solution"))))
    problem: Problem = {
        "question": str(field_of(record, ("problem", "question"))),
        "answer": str(answer).strip(),
        "solution": None if solution is None else str(solution),
    }
    for extra in ("subject", "level", "unique_id", "type"):
        if isinstance(record.get(extra), (str, int)):
            problem[extra] = record[extra]
    return problem


@TASKS.register("math500")
class Math500(MathTask):
    """MATH500 with d1's prompt (see the module docstring)."""

    Config = Math500Config
    name = "math500"
    components: ClassVar[tuple[str, ...]] = ("xml", "soft_format", "strict_format", "boxed")

    def __init__(self, config: Math500Config | None = None) -> None:
        super().__init__(config if config is not None else Math500Config())

    def to_problem(self, record: Record) -> Problem:
        return math_problem(record)

    def prompt(self, problem: Problem) -> str:
        if self.config.prompt_style == "d1_eval":
            return D1_EVAL_PROMPT + "\n\n" + problem["question"]
        return D1_SYSTEM_PROMPT + "\n\n" + D1_MATH_INSTRUCTION + problem["question"]
