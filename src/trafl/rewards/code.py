"""Code rewards: pull the program out of a completion, run it against the task's tests in the
sandbox, and score correctness and format as separate, weighted components.

Why these conventions (so numbers compare with d1's successors for code, DiffuCoder's coupled
GRPO in particular, and with lm-eval / LiveCodeBench scoring):

* **Extraction.** Instruct models answer in a fenced block. Fences are paired left to right;
  blocks marked ``python``/``py`` win over bare ```` ``` ```` ones, and blocks in other
  languages are never run. ``block`` picks the first (lm-eval's MBPP) or the last
  (LiveCodeBench, open-r1/DiffuCoder). A completion cut by the length limit inside an opened
  fence keeps what follows the fence. With no fence at all, the raw text is the code (base
  models continuing a prompt).
* **Format reward** (DiffuCoder's ``code_format``): 1.0 for exactly one closed python block whose
  code parses, 0.5 if it does not parse, 0.0 without such a block. Tasks whose completions are
  bare code (``tiny_code``, HumanEval in completion style) score whether the code parses.
* **Correctness**: ``correct`` is 1.0 iff every test passed (pass@k's notion); ``pass_rate`` is
  the fraction passed (DiffuCoder's code reward). ``partial_credit`` puts ``pass_rate`` instead of
  ``correct`` into the total. The total is ``reward = correct_weight * (correct or pass_rate) +
  format_weight * format``; all components are returned, so trainers log each.

Evaluation counts ``reward >= 1`` as a solved sample, so weights are checked to keep that
threshold equivalent to ``correct`` (a format bonus alone must stay below 1).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from trafl.rewards.sandbox import SandboxConfig

MAX_CODE_CHARS = 100_000  # longer code is not parsed in the trainer (it still runs sandboxed)
PYTHON_LANGS = ("python", "py", "python3")
_OPEN = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n")


@dataclass
class CodeRewardConfig:
    """Weights of the reward components and how code is extracted. The defaults are
    DiffuCoder's (code 2.0, format 0.5)."""

    correct_weight: float = 2.0
    format_weight: float = 0.5
    partial_credit: bool = False  # reward the fraction of tests passed instead of all-or-none
    block: Literal["first", "last"] = "last"  # which fenced block holds the answer
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)

    def __post_init__(self) -> None:
        if self.correct_weight < 1.0 or not 0.0 <= self.format_weight < 1.0:
            raise ValueError(
                "need correct_weight >= 1 and 0 <= format_weight < 1: evaluation counts "
                f"reward >= 1 as solved; got {self.correct_weight}, {self.format_weight}"
            )


def fenced_blocks(text: str) -> tuple[list[tuple[str, str]], tuple[str, str] | None]:
    """The closed ```` ``` ```` blocks of ``text`` as ``(language, code)`` in order (fences are
    paired left to right), and the block left open at the end, if any."""
    blocks: list[tuple[str, str]] = []
    pos = 0
    while (opening := _OPEN.search(text, pos)) is not None:
        end = text.find("```", opening.end())
        lang = opening.group(1).lower()
        if end < 0:
            return blocks, (lang, text[opening.end() :])
        blocks.append((lang, text[opening.end() : end]))
        pos = end + 3
    return blocks, None


def extract_code(text: str, block: str = "last") -> str:
    """The program in a completion (see the module docstring for the rules): named python
    blocks first, else bare ones; blocks in other languages are never code to run."""
    blocks, tail = fenced_blocks(text)
    named = [code for lang, code in blocks if lang in PYTHON_LANGS]
    candidates = named or [code for lang, code in blocks if not lang]
    if candidates:
        return candidates[0] if block == "first" else candidates[-1]
    if tail is not None and (tail[0] in PYTHON_LANGS or not tail[0]):
        return tail[1]  # truncated inside a fence
    return "" if blocks or tail is not None else text


def parses(code: str) -> bool:
    """Whether ``code`` is syntactically valid Python (never raises, never executes it)."""
    if len(code) > MAX_CODE_CHARS:
        return False
    try:
        ast.parse(code)
    except Exception:  # SyntaxError, ValueError (null bytes), RecursionError, MemoryError
        return False
    return True


def format_score(text: str, valid: Callable[[str], bool] = parses) -> float:
    """DiffuCoder's code-format reward: one closed python block (and no other fence) whose code
    is ``valid`` (parses, by default)."""
    blocks, tail = fenced_blocks(text)
    if len(blocks) != 1 or tail is not None or blocks[0][0] not in PYTHON_LANGS:
        return 0.0
    return 1.0 if valid(blocks[0][1]) else 0.5


def normalise(code: str) -> str | None:
    """Program text modulo formatting, comments, docstrings and top-level definitions that a
    later one of the same name replaces (``ast.unparse``), for solution keys; None if it does
    not parse."""
    if not parses(code):
        return None
    try:
        tree = ast.parse(code)
        defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        last = {n.name: i for i, n in enumerate(tree.body) if isinstance(n, defs)}
        tree.body = [
            n for i, n in enumerate(tree.body) if not isinstance(n, defs) or last[n.name] == i
        ]
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and _is_docstring(body[0]):
                node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
        return ast.unparse(tree)
    except Exception:
        return None


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )
