"""Reward functions for the dataset-task example, written exactly as for TRL's GRPOTrainer:
``fn(completions, **kwargs) -> list[float]``, one value per completion, the dataset's columns
(here ``nums`` and ``target``) passed by name as lists with one entry per completion.

Nothing here imports trafl: the same functions work in ``GRPOTrainer(reward_funcs=[...])``.
Model text is parsed with ``ast`` and evaluated by hand over fractions (never ``eval``)."""

from __future__ import annotations

import ast
from collections import Counter
from fractions import Fraction

_OPS = {ast.Add: Fraction.__add__, ast.Sub: Fraction.__sub__,
        ast.Mult: Fraction.__mul__, ast.Div: Fraction.__truediv__}  # fmt: skip


def _evaluate(node: ast.AST, literals: list[int]) -> Fraction:
    """The exact value of an arithmetic expression over integer literals (collected)."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        literals.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _evaluate(node.left, literals), _evaluate(node.right, literals)
        return _OPS[type(node.op)](left, right)
    raise ValueError("not + - * / over integers")


def _parse(text: str) -> tuple[Fraction, list[int]] | None:
    """(value, literals) of a completion, or None when it is not such an expression."""
    if len(text) > 64:
        return None
    try:
        literals: list[int] = []
        return _evaluate(ast.parse(text.strip(), mode="eval").body, literals), literals
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None


def correct(completions, nums, target, **kwargs):
    """1.0 when the completion uses each of ``nums`` once and equals ``target``, else 0.0."""
    rewards = []
    for text, numbers, goal in zip(completions, nums, target, strict=True):
        parsed = _parse(text)
        ok = parsed is not None and parsed[0] == goal and Counter(parsed[1]) == Counter(numbers)
        rewards.append(1.0 if ok else 0.0)
    return rewards


def uses_numbers(completions, nums, **kwargs):
    """1.0 when the completion is an expression over exactly ``nums`` (whatever its value)."""
    rewards = []
    for text, numbers in zip(completions, nums, strict=True):
        parsed = _parse(text)
        rewards.append(1.0 if parsed and Counter(parsed[1]) == Counter(numbers) else 0.0)
    return rewards
