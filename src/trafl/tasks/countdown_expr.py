"""Countdown arithmetic: canonical expression trees, an eval-free parser, and the enumerator
of every solution of a problem. Why the canonical form and the enumerator exist, and what the
task does with them: see :mod:`trafl.tasks.countdown`."""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import NamedTuple

VALID_SIZES = (3, 4)
MAX_EXPR_CHARS = 200  # longer completions score 0.0 without being parsed
MAX_PAREN_DEPTH = 50  # far above any sane answer; keeps the recursive parser's stack small


# --------------------------------------------------------------------------- canonical trees


class Node:
    """A canonical expression tree. Equality and hashing go by ``key``, which identifies the tree
    (a number's key is its digits, a sum's has a top-level + or -, a product's only * and /)."""

    __slots__ = ("key",)
    key: str

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r})"


class Num(Node):
    """A literal from the problem."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value
        self.key = str(value)


class Sum(Node):
    """``pos[0] + pos[1] + ... - neg[0] - ...``; children are ``Num`` or ``Prod`` (never ``Sum``,
    which flattening absorbs), each tuple sorted by key. ``pos`` is never empty: every sum built
    from positive literals keeps its first operand's positive terms."""

    __slots__ = ("pos", "neg")

    def __init__(self, pos: Sequence[Node], neg: Sequence[Node]) -> None:
        self.pos = tuple(sorted(pos, key=_by_key))
        self.neg = tuple(sorted(neg, key=_by_key))
        # Products bind tighter than + and -, so no child needs parentheses.
        self.key = "+".join(c.key for c in self.pos) + "".join("-" + c.key for c in self.neg)


class Prod(Node):
    """``num[0] * num[1] * ... / den[0] / ...``; children are ``Num`` or ``Sum`` (in
    parentheses), each tuple sorted by key. ``a*b/c/d`` parses left-associatively as
    ``a*b/(c*d)``, so the key reads back to the same tree."""

    __slots__ = ("num", "den")

    def __init__(self, num: Sequence[Node], den: Sequence[Node]) -> None:
        self.num = tuple(sorted(num, key=_by_key))
        self.den = tuple(sorted(den, key=_by_key))
        self.key = "*".join(_factor_str(c.key, c) for c in self.num) + "".join(
            "/" + _factor_str(c.key, c) for c in self.den
        )


def _by_key(node: Node) -> str:
    return node.key


def _factor_str(text: str, node: Node) -> str:
    """A factor as written inside a product: sums need parentheses, numbers do not."""
    return f"({text})" if isinstance(node, Sum) else text


def _terms(node: Node) -> tuple[tuple[Node, ...], tuple[Node, ...]]:
    return (node.pos, node.neg) if isinstance(node, Sum) else ((node,), ())


def _factors(node: Node) -> tuple[tuple[Node, ...], tuple[Node, ...]]:
    return (node.num, node.den) if isinstance(node, Prod) else ((node,), ())


def _add(a: Node, b: Node) -> Sum:
    (ap, an), (bp, bn) = _terms(a), _terms(b)
    return Sum(ap + bp, an + bn)


def _sub(a: Node, b: Node) -> Sum:
    # a - (p - n) = a - p + n: the sign rule that makes 12-(7-3) the same as 12-7+3.
    (ap, an), (bp, bn) = _terms(a), _terms(b)
    return Sum(ap + bn, an + bp)


def _mul(a: Node, b: Node) -> Prod:
    (an, ad), (bn, bd) = _factors(a), _factors(b)
    return Prod(an + bn, ad + bd)


def _div(a: Node, b: Node) -> Prod:
    # a / (n / d) = a * d / n: the reciprocal rule that makes 12/(6/3) the same as 12*3/6.
    (an, ad), (bn, bd) = _factors(a), _factors(b)
    return Prod(an + bd, ad + bn)


# --------------------------------------------------------------------------- parser


class Parsed(NamedTuple):
    """What the parser returns for a well-formed expression."""

    value: Fraction
    node: Node
    literals: list[int]


class _ParseError(Exception):
    pass


_OPERATORS = frozenset("+-*/()")
_DIGITS = frozenset("0123456789")  # ASCII only: str.isdigit() would accept '²' and '٣'
_SPACES = frozenset(" \t")


def _tokenize(text: str) -> list[str | int]:
    tokens: list[str | int] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _SPACES:
            i += 1
        elif ch in _DIGITS:
            j = i
            while j < n and text[j] in _DIGITS:
                j += 1
            literal = text[i:j]
            if len(literal) > 1 and literal[0] == "0":
                # "03" is not a decimal literal of the problem; accepting it would let the
                # same number be written in many ways.
                raise _ParseError("leading zero")
            tokens.append(int(literal))
            i = j
        elif ch in _OPERATORS:
            tokens.append(ch)
            i += 1
        else:
            raise _ParseError(f"unexpected character {ch!r}")
    return tokens


class _Parser:
    """expr := term (('+'|'-') term)* ; term := factor (('*'|'/') factor)* ;
    factor := INT | '(' expr ')'. Left-associative, standard precedence."""

    def __init__(self, tokens: list[str | int]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0
        self.literals: list[int] = []

    def peek(self) -> str | int | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def expr(self) -> tuple[Fraction, Node]:
        value, node = self.term()
        while (op := self.peek()) in ("+", "-"):
            self.i += 1
            rv, rn = self.term()
            if op == "+":
                value, node = value + rv, _add(node, rn)
            else:
                value, node = value - rv, _sub(node, rn)
        return value, node

    def term(self) -> tuple[Fraction, Node]:
        value, node = self.factor()
        while (op := self.peek()) in ("*", "/"):
            self.i += 1
            rv, rn = self.factor()
            if op == "*":
                value, node = value * rv, _mul(node, rn)
            else:
                if rv == 0:
                    raise _ParseError("division by zero")
                value, node = value / rv, _div(node, rn)
        return value, node

    def factor(self) -> tuple[Fraction, Node]:
        tok = self.peek()
        if isinstance(tok, int):
            self.i += 1
            self.literals.append(tok)
            return Fraction(tok), Num(tok)
        if tok == "(":
            self.depth += 1
            if self.depth > MAX_PAREN_DEPTH:
                raise _ParseError("nesting too deep")
            self.i += 1
            result = self.expr()
            if self.peek() != ")":
                raise _ParseError("unbalanced parentheses")
            self.i += 1
            self.depth -= 1
            return result
        raise _ParseError(f"expected a number or '(' but got {tok!r}")


def parse(text: str) -> Parsed | None:
    """Parse an arithmetic expression; None when it is malformed, too long, too deep, or divides
    by zero. Surrounding whitespace is ignored. Never raises on any ``str``."""
    try:
        if not isinstance(text, str) or len(text) > MAX_EXPR_CHARS:
            return None
        tokens = _tokenize(text.strip())
        if not tokens:
            return None
        parser = _Parser(tokens)
        value, node = parser.expr()
        if parser.i != len(tokens):  # e.g. "3 4", "(3+4))", "3+4("
            return None
        return Parsed(value, node, parser.literals)
    except (_ParseError, RecursionError, ValueError, ZeroDivisionError):
        return None


def canonical_key(expr: str) -> str | None:
    """The canonical key of an expression (equal keys = the same solution), None if malformed."""
    parsed = parse(expr)
    return None if parsed is None else parsed.node.key


# --------------------------------------------------------------------------- enumeration


def _combine(nums: tuple[int, ...]) -> dict[Fraction, dict[str, Node]]:
    """Every canonical tree over the sorted multiset ``nums``, grouped by value.

    Subset DP: split the index bitmask into two nonempty disjoint parts in every way, and
    combine the parts' trees with + - * / in both orders. Parts are looked up by their sorted
    sub-multiset in the cache of ``_all_values``, so the tables of small multisets are shared
    by every larger multiset that contains them, and duplicated numbers do not repeat work.
    """
    if len(nums) == 1:
        return {Fraction(nums[0]): {str(nums[0]): Num(nums[0])}}
    full = (1 << len(nums)) - 1
    splits: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
    for mask in range(1, full):
        left = tuple(x for i, x in enumerate(nums) if mask >> i & 1)
        right = tuple(x for i, x in enumerate(nums) if not mask >> i & 1)
        splits.add((left, right))
    out: dict[Fraction, dict[str, Node]] = {}

    def put(value: Fraction, node: Node) -> None:
        out.setdefault(value, {})[node.key] = node

    for left, right in sorted(splits):
        commutative = left <= right  # + and * need only one order of each pair of parts
        for va, trees_a in _all_values(left).items():
            for vb, trees_b in _all_values(right).items():
                for a in trees_a.values():
                    for b in trees_b.values():
                        if commutative:
                            put(va + vb, _add(a, b))
                            put(va * vb, _mul(a, b))
                        put(va - vb, _sub(a, b))
                        if vb != 0:
                            put(va / vb, _div(a, b))
    return out


@functools.lru_cache(maxsize=4096)
def _all_values(nums: tuple[int, ...]) -> dict[Fraction, dict[str, Node]]:
    """Cached ``_combine`` for the *parts* of a problem (at most 3 numbers for Countdown's sizes:
    a few hundred multisets). Whole problems go through ``_solution_table`` instead, so the
    thousands of fractional values of every 4-number multiset are never kept."""
    return _combine(nums)


@functools.lru_cache(maxsize=2048)
def _solution_table(nums: tuple[int, ...]) -> dict[int, dict[str, Node]]:
    """For a sorted multiset: integer target -> {canonical key: tree} for every reachable integer.

    Only integer values are kept (targets are integers); the cache is bounded because a
    4-number table holds thousands of trees (``solution_counts`` keeps the cheap summary).
    The bound (2048) exceeds the number of multisets of the shipped task (660), so pretraining,
    which asks for a demonstration of every problem it draws, never recomputes a table
    (about 150 KB each, so at most a few hundred MB).
    """
    return {int(value): trees for value, trees in _combine(nums).items() if value.denominator == 1}


@functools.cache
def solution_counts(nums: tuple[int, ...]) -> Mapping[int, int]:
    """Integer target -> number of canonical solutions, for the multiset ``nums`` (any order).

    Small and cached forever, so the generator can pick reachable targets cheaply without
    keeping every tree of every multiset it has seen.
    """
    table = _solution_table(tuple(sorted(nums)))
    return {target: len(trees) for target, trees in sorted(table.items())}


def _solution_trees(nums: Sequence[int], target: int) -> dict[str, Node]:
    _check_nums(nums)
    return _solution_table(tuple(sorted(nums))).get(target, {})


def enumerate_solutions(nums: Sequence[int], target: int) -> set[str]:
    """The canonical keys of ALL solutions (each number used exactly once) reaching ``target``."""
    return set(_solution_trees(nums, target))


def _check_nums(nums: Sequence[int]) -> None:
    if not nums or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in nums):
        raise ValueError(f"nums must be a nonempty list of positive integers, got {nums!r}")


# --------------------------------------------------------------------------- rendering


def render(node: Node, rng: random.Random) -> str:
    """Write a canonical tree with its commutative operands in a random order.

    Demonstrations should not teach the model one arbitrary spelling of each solution: the
    string varies (``3+12-7``, ``12-7+3``...) while its canonical key stays the same. A sum
    starts with a positive term and a product with a numerator factor (there is no unary minus
    or reciprocal to write anything else); all such orders are equally likely.
    """
    if isinstance(node, Num):
        return node.key
    if isinstance(node, Sum):
        first, rest = _random_order(node.pos, node.neg, "+", "-", rng)
        return render(first, rng) + "".join(op + render(c, rng) for op, c in rest)
    if isinstance(node, Prod):
        first, rest = _random_order(node.num, node.den, "*", "/", rng)
        return _factor_str(render(first, rng), first) + "".join(
            op + _factor_str(render(c, rng), c) for op, c in rest
        )
    raise TypeError(f"not a canonical node: {node!r}")


def _random_order(
    lead: tuple[Node, ...], other: tuple[Node, ...], op_lead: str, op_other: str, rng: random.Random
) -> tuple[Node, list[tuple[str, Node]]]:
    """A uniformly random order of ``lead + other`` conditioned on a ``lead`` child coming first."""
    leads = list(lead)
    rng.shuffle(leads)
    rest = [(op_lead, c) for c in leads[1:]] + [(op_other, c) for c in other]
    rng.shuffle(rest)
    return leads[0], rest
