"""``minerva_math``: the 272 MIT OpenCourseWare STEM problems of Minerva (Lewkowycz et al.,
2022), in d1's MATH format.

Which "Minerva Math": RL-for-reasoning papers (and Qwen2.5-Math's evaluation suite) mean these
272 problems, hub id ``math-ai/minervamath`` (``test`` split; fields ``question``, ``answer``),
and so do we. lm-evaluation-harness's ``minerva_math`` task is something else: the full MATH
test set (5,000 problems) with Minerva's 4-shot prompt, which the LLaDA paper reports as MATH.

Minerva has no training split. Training problems default to MATH's (``ankner/math-500``,
``train``, as for ``math500``), the usual choice for these evaluations; set
``task.train_path`` / ``task.train_dataset`` for others.

Prompt and scoring are ``math500``'s (d1's MATH prompt asking for ``\\boxed{}`` inside the
``<answer>`` block; math-verify equivalence, which matters here: answers are numbers with
units and scientific notation such as ``7.5 \\times 10^{-7}``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trafl.rewards.math import MathCheckConfig
from trafl.tasks.base import TASKS
from trafl.tasks.math500 import Math500, Math500Config


@dataclass
class MinervaMathConfig(Math500Config):
    name: str = "minerva_math"
    dataset: str | None = "math-ai/minervamath"
    split: str = "test"
    train_dataset: str | None = "ankner/math-500"
    train_split: str = "train"
    # Answers go down to 1e-7 and below, where math-verify's default rounding (6 decimals)
    # would call 7e-7 and 7.5e-7 equal.
    checker: MathCheckConfig = field(default_factory=lambda: MathCheckConfig(float_rounding=12))


@TASKS.register("minerva_math")
class MinervaMath(Math500):
    """Minerva's OCW problems with d1's MATH prompt (see the module docstring)."""

    Config = MinervaMathConfig
    name = "minerva_math"

    def __init__(self, config: MinervaMathConfig | None = None) -> None:
        super().__init__(config if config is not None else MinervaMathConfig())
