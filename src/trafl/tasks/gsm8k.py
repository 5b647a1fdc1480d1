"""``gsm8k``: grade-school math word problems (Cobbe et al., 2021), in d1's format.

Data: the hub dataset ``openai/gsm8k`` (subset ``main``), ``test`` split (1,319 problems) for
evaluation and ``train`` (7,473) for training, as d1 (``diffu-grpo/data_utils.py``,
``get_gsm8k_questions``) and its successors (wd1, SPG, ESPO) use it. A local copy in the same
layout (``{"question": ..., "answer": "...reasoning...\\n#### 72"}``) loads with
``task.path=FILE`` (and ``task.train_path=FILE``).

Prompt: d1's training prompt, the user turn ``SYSTEM_PROMPT + "\\n\\n" + question``, where
SYSTEM_PROMPT asks for ``<reasoning>...</reasoning><answer>...</answer>`` (the chat template is
the model adapter's business); ``prompt_style=d1_eval`` gives d1's evaluation prompt instead
("You are a math expert. ... Wrap the final answer in a \\boxed{}. ...").

Answer: the gold answer is what follows ``####`` in the dataset's solution. A completion's
answer is its ``<answer>`` block (a ``\\boxed{}`` inside it if any), else its last ``\\boxed{}``,
else ``####``, else (``last_number_fallback``, on by default here) its last number; equal when
math-verify says so, so ``72``, ``72.00``, ``$72`` and ``\\boxed{72}`` all count. (d1's training
reward compares strings exactly and its evaluation parses floats; both accept a subset of
what we accept.) Reward components: ``correct`` and d1's ``xml``, ``soft_format``,
``strict_format`` and ``integer`` (see :mod:`trafl.rewards.formats` for d1's weights).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from trafl.rewards.answers import hash_answer
from trafl.tasks.base import TASKS, Problem
from trafl.tasks.data import Record
from trafl.tasks.hub import field_of
from trafl.tasks.math_common import D1_SYSTEM_PROMPT, MathTask, MathTaskConfig

# d1's evaluation prompt for GSM8K (eval/gsm8k.py, GSM_SYSTEM_PROMPT), byte for byte.
D1_EVAL_PROMPT = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. "
    "Wrap the final answer in a \\boxed{}. \nRespond in the following format:\n<reasoning>\n"
    "Your reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>"
)
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations: "48/2 = <<48/2=24>>24"


@dataclass
class GSM8KConfig(MathTaskConfig):
    name: str = "gsm8k"
    dataset: str | None = "openai/gsm8k"
    subset: str | None = "main"
    split: str = "test"
    train_split: str = "train"
    last_number_fallback: bool = True
    integer_weight: float = 0.0


@TASKS.register("gsm8k")
class GSM8K(MathTask):
    """GSM8K with d1's prompt (see the module docstring)."""

    Config = GSM8KConfig
    name = "gsm8k"
    components: ClassVar[tuple[str, ...]] = ("xml", "soft_format", "strict_format", "integer")

    def __init__(self, config: GSM8KConfig | None = None) -> None:
        super().__init__(config if config is not None else GSM8KConfig())

    def to_problem(self, record: Record) -> Problem:
        solution = str(field_of(record, ("answer",)))
        answer = hash_answer(solution)
        if answer is None:
            raise ValueError("the 'answer' field has no '#### <final answer>' line")
        return {
            "question": str(field_of(record, ("question",))),
            "answer": answer,
            "solution": solution,
        }

    def prompt(self, problem: Problem) -> str:
        head = D1_EVAL_PROMPT if self.config.prompt_style == "d1_eval" else D1_SYSTEM_PROMPT
        return head + "\n\n" + problem["question"]

    def reasoning_text(self, solution: str) -> str:
        """The solution's steps without the ``####`` line and the calculator annotations."""
        return _CALCULATOR.sub("", solution.rsplit("####", 1)[0]).strip()

    def answer_text(self, problem: Problem) -> str:
        return str(problem["answer"])
