"""The program family of ``tiny_code``: expressions in ``x`` over small constants, their canonical
form, an eval-free parser into that form, and the enumeration of every family member grouped by
behaviour. Why the task is built on it: see :mod:`trafl.tasks.tiny_code`.

Grammar: ``x``, the constants ``1..max_const``, the binary operators ``+ - * // %`` and the calls
``min(a, b)`` / ``max(a, b)``. A tree is a leaf (``"x"`` or an int) or ``(op, children)``.

Canonical form: ``+`` and ``-`` build one signed sum of positive and negative terms (as in
countdown), chains of ``* min max`` are flattened, and operands are sorted, so ``x*2+1``,
``1+2*x``, ``(1+x*2)`` are one program and so are ``x-3-5`` and ``x-(5+3)``; ``//`` and ``%``
keep their operand order. Nothing algebraic beyond that: ``x+x`` and ``2*x`` are different
programs with the same behaviour, which is what "many programs solve the same problem" means
here. The canonical key is the canonical tree rendered as Python.
"""

from __future__ import annotations

import ast
import functools
import random
from collections.abc import Sequence
from typing import Any

Tree = Any  # "x" | int | ("+", pos, neg) | (op, children)
CHAINS = ("*", "min", "max")  # commutative and associative: flattened, operands sorted
OPERATORS = ("+", "-", "*", "//", "%", "min", "max")
_PRECEDENCE = {"+": 1, "*": 2, "//": 2, "%": 2}  # calls and leaves bind tightest (3)
_AST_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Mod: "%"}
MAX_PARSE_CHARS = 80
MAX_PARSE_DEPTH = 12


def combine(op: str, a: Tree, b: Tree) -> Tree:
    """``op(a, b)`` in canonical form: ``+``/``-`` make a signed sum ``("+", pos, neg)`` (as in
    countdown, so ``x-3-5``, ``x-5-3`` and ``x-(3+5)`` are one program), ``* min max`` chains
    are flattened, all with operands sorted; ``//`` and ``%`` stay binary."""
    if op in ("+", "-"):
        pa, na = _terms(a)
        pb, nb = _terms(b)
        pos, neg = (pa + pb, na + nb) if op == "+" else (pa + nb, na + pb)
        return ("+", tuple(sorted(pos, key=key)), tuple(sorted(neg, key=key)))
    if op not in CHAINS:
        return (op, (a, b))
    parts: list[Tree] = []
    for child in (a, b):
        parts.extend(child[1] if isinstance(child, tuple) and child[0] == op else (child,))
    return (op, tuple(sorted(parts, key=key)))


def _terms(tree: Tree) -> tuple[tuple[Tree, ...], tuple[Tree, ...]]:
    if isinstance(tree, tuple) and tree[0] == "+":
        return tree[1], tree[2]
    return (tree,), ()


@functools.lru_cache(maxsize=1 << 20)
def key(tree: Tree) -> str:
    """The canonical key: the canonical tree rendered as a Python expression."""
    return render(tree)


def render(tree: Tree, rng: random.Random | None = None) -> str:
    """Python text of ``tree``; with ``rng``, a random spelling of the same canonical program
    (terms and chain operands in random order, min/max chains nested at random)."""
    if not isinstance(tree, tuple):
        return str(tree)
    op = tree[0]
    if op == "+":
        return _render_sum(tree[1], tree[2], rng)
    kids = list(tree[1])
    if rng is not None and op in CHAINS:
        rng.shuffle(kids)
    if op in ("min", "max"):
        return _render_call(op, kids, rng)
    parts = []
    for i, child in enumerate(kids):
        text = render(child, rng)
        if _prec(child) < 2 or (i > 0 and _prec(child) == 2):
            text = f"({text})"  # left-associative: equal precedence needs parentheses on the right
        parts.append(text)
    return op.join(parts)


def _render_sum(pos: tuple[Tree, ...], neg: tuple[Tree, ...], rng: random.Random | None) -> str:
    signed = [("+", t) for t in pos] + [("-", t) for t in neg]
    if rng is not None:  # any order that starts with a positive term (no unary minus)
        first = rng.randrange(len(pos))
        rest = signed[:first] + signed[first + 1 :]
        rng.shuffle(rest)
        signed = [signed[first], *rest]
    text = render(signed[0][1], rng)
    return text + "".join(sign + render(t, rng) for sign, t in signed[1:])


def _render_call(op: str, kids: list[Tree], rng: random.Random | None) -> str:
    if len(kids) == 1:
        return render(kids[0], rng)
    split = rng.randint(1, len(kids) - 1) if rng is not None else len(kids) - 1
    left, right = kids[:split], kids[split:]
    return f"{op}({_render_call(op, left, rng)},{_render_call(op, right, rng)})"


def _prec(tree: Tree) -> int:
    return _PRECEDENCE.get(tree[0], 3) if isinstance(tree, tuple) else 3


def parse(text: str) -> Tree | None:
    """The canonical tree of a completion in the grammar (any int constant allowed), else None.
    Uses ``ast.parse`` only (nothing is executed); never raises."""
    if len(text) > MAX_PARSE_CHARS:
        return None
    try:
        node = ast.parse(text.strip(), mode="eval").body
        return _convert(node, 0)
    except Exception:  # SyntaxError, RecursionError, ...: not in the grammar
        return None


def _convert(node: ast.AST, depth: int) -> Tree:
    if depth > MAX_PARSE_DEPTH:
        raise ValueError("too deep")
    if isinstance(node, ast.Name) and node.id == "x":
        return "x"
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _AST_OPS:
        a, b = _convert(node.left, depth + 1), _convert(node.right, depth + 1)
        return combine(_AST_OPS[type(node.op)], a, b)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("min", "max")
        and len(node.args) >= 2
        and not node.keywords
    ):
        args = [_convert(a, depth + 1) for a in node.args]
        tree = args[0]
        for arg in args[1:]:
            tree = combine(node.func.id, tree, arg)
        return tree
    raise ValueError("not in the grammar")


def evaluate(tree: Tree, x: int) -> int:
    """The value at ``x`` (Python semantics; raises ZeroDivisionError like Python does)."""
    if tree == "x":
        return x
    if not isinstance(tree, tuple):
        return tree
    if tree[0] == "+":
        return sum(evaluate(t, x) for t in tree[1]) - sum(evaluate(t, x) for t in tree[2])
    op, children = tree
    values = [evaluate(c, x) for c in children]
    if op == "min":
        return min(values)
    if op == "max":
        return max(values)
    out = values[0]
    for v in values[1:]:
        out = _apply(op, out, v)
    return out


def _apply(op: str, a: int, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "//":
        return a // b
    return a % b


def _apply_all(op: str, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    try:
        if op == "min":
            return tuple(map(min, a, b))
        if op == "max":
            return tuple(map(max, a, b))
        return tuple(_apply(op, u, v) for u, v in zip(a, b, strict=True))
    except ZeroDivisionError:
        return None


@functools.cache
def family(
    max_const: int, max_nodes: int, ops: tuple[str, ...], inputs: tuple[int, ...]
) -> dict[tuple[int, ...], tuple[str, ...]]:
    """Every canonical program of at most ``max_nodes`` nodes (no subtree without ``x`` other than
    a constant leaf, and no division by zero on ``inputs``), grouped by its outputs on
    ``inputs``: behaviour -> sorted canonical keys. Built bottom-up by size, deduplicated by key."""
    leaves: dict[Tree, tuple[int, ...]] = {"x": inputs}
    leaves.update({c: (c,) * len(inputs) for c in range(1, max_const + 1)})
    by_size: dict[int, dict[Tree, tuple[int, ...]]] = {1: leaves}
    seen: set[Tree] = set(leaves)
    for size in range(3, max_nodes + 1, 2):  # every operator is binary: sizes are odd
        level: dict[Tree, tuple[int, ...]] = {}
        for left in range(1, size - 1, 2):
            for a, va in by_size[left].items():
                for b, vb in by_size[size - 1 - left].items():
                    if not (_has_x(a) or _has_x(b)):
                        continue
                    for op in ops:
                        tree = combine(op, a, b)
                        if tree in seen:
                            continue
                        value = _apply_all(op, va, vb)
                        if value is not None:
                            seen.add(tree)
                            level[tree] = value
        by_size[size] = level
    groups: dict[tuple[int, ...], list[str]] = {}
    for level in by_size.values():
        for tree, value in level.items():
            if _has_x(tree):
                groups.setdefault(value, []).append(key(tree))
    return {value: tuple(sorted(keys)) for value, keys in groups.items()}


def _has_x(tree: Tree) -> bool:
    if not isinstance(tree, tuple):
        return tree == "x"
    return any(_has_x(child) for part in tree[1:] for child in part)


def check_ops(ops: Sequence[str]) -> tuple[str, ...]:
    bad = [op for op in ops if op not in OPERATORS]
    if bad or not ops:
        raise ValueError(f"invalid ops {bad or '[]'}; valid: {', '.join(OPERATORS)}")
    return tuple(ops)
