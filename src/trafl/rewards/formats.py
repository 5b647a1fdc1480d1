"""Format rewards for d1's XML answer format, one function per component, each in [0, 1].

d1 (Zhao et al., 2025, "d1: Scaling Reasoning in Diffusion LLMs via RL"; dllm-reasoning/d1,
``diffu-grpo/reward_func.py``) trains with the sum of a correctness reward and these shaping
terms, taken from Will Brown's GRPO demo. They are separate components here so that each is
logged, and a task weighs them with config fields (``<component>_weight``). To reproduce d1's
GSM8K reward use weights correct 2.0, xml 0.5, soft_format 0.5, strict_format 0.5, integer 0.5
(d1's scores are ours times those weights; ``xml`` is d1's ``count_xml`` times 2).

Deviations, on purpose:

* ``strict_format`` accepts any trailing whitespace after ``</answer>`` (d1's pattern wants
  exactly one newline, which depends on how a tokenizer decodes the end of the text).
* ``boxed`` is 1 when the ``<answer>`` block holds a ``\\boxed{}``. d1's ``boxed_in_answer``
  meant that too, but tests ``"\\boxed" in r`` in a non-raw string, where ``\\b`` is a
  backspace, so in d1 the boxed half never fires.
"""

from __future__ import annotations

import re

from trafl.rewards.answers import answer_block, last_boxed

_STRICT = re.compile(r"<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\s*", re.DOTALL)
_SOFT = re.compile(r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>", re.DOTALL)


def strict_format(text: str) -> float:
    """1 when the whole text is ``<reasoning>\\n...\\n</reasoning>\\n<answer>\\n...\\n</answer>``."""
    return 1.0 if _STRICT.fullmatch(text) else 0.0


def soft_format(text: str) -> float:
    """1 when the text starts with a ``<reasoning>`` block followed by an ``<answer>`` block."""
    return 1.0 if _SOFT.match(text) else 0.0


def xml_count(text: str) -> float:
    """d1's partial credit for the four tag lines (0.25 each when it occurs exactly once), less
    0.002 per character after the closing answer tag (so it can go slightly below 0)."""
    score = 0.0
    if text.count("<reasoning>\n") == 1:
        score += 0.25
    if text.count("\n</reasoning>\n") == 1:
        score += 0.25
    if text.count("\n<answer>\n") == 1:
        score += 0.25 - 0.002 * len(text.split("\n</answer>\n")[-1])
    if text.count("\n</answer>") == 1:
        score += 0.25 - 0.002 * (len(text.split("\n</answer>")[-1]) - 1)
    return score


def integer_answer(text: str) -> float:
    """1 when the answer (the ``<answer>`` block, or the whole text without one) is an unsigned
    integer in ASCII digits: d1's ``int_reward_func`` for GSM8K."""
    block = answer_block(text)
    answer = (text if block is None else block).strip()
    return 1.0 if answer.isascii() and answer.isdigit() else 0.0


def boxed_answer(text: str) -> float:
    """1 when the ``<answer>`` block holds a complete ``\\boxed{...}`` (MATH-style tasks)."""
    block = answer_block(text)
    return 1.0 if block is not None and last_boxed(block) is not None else 0.0


FORMAT_REWARDS = {
    "xml": xml_count,
    "soft_format": soft_format,
    "strict_format": strict_format,
    "integer": integer_answer,
    "boxed": boxed_answer,
}
