"""The trusted language of a split test: what the trainer evaluates itself, on decoded values.

A split test (:mod:`trafl.rewards.assert_split`) is a tuple of verdict trees over leaves ``@0``,
``@1``, ... whose values the sandbox computed and sent as plain data. :func:`judge` rebuilds
those values (exact builtins, :mod:`trafl.rewards.plain`) and evaluates the trees here: constants
and displays, ``not``/``and``/``or``, arithmetic and comparisons, the calls in
:data:`SAFE_CALLS` and the methods of plain values in :data:`SAFE_METHODS`, each guarded so that
no answer makes the trainer build a value past :data:`MAX_SIZE` (a program may have written its
report itself). The splitter builds only trees of these nodes, from the same tables.
"""

from __future__ import annotations

import ast
import math
import reprlib
from typing import Any

from trafl.rewards import plain
from trafl.rewards.plain import decode

__all__ = [
    "BINOPS",
    "LEAF",
    "MAX_SIZE",
    "MAX_VALUE_BYTES",
    "SAFE_CALLS",
    "SAFE_CONSTANTS",
    "SAFE_METHODS",
    "dotted",
    "judge",
]

LEAF = "@"  # leaf placeholders are Name nodes "@0", "@1", ... (not valid identifiers)
MAX_VALUE_BYTES = 1 << 16  # longest encoded value kept of a program (SandboxConfig's default)

SAFE_CALLS: dict[str, Any] = {
    **{
        f.__name__: f
        for f in (abs, round, len, sorted, set, frozenset, list, tuple, dict, str, int, float)
    },
    **{f.__name__: f for f in (bool, complex, min, max, sum, all, any, isinstance, type)},
    **{
        f"math.{name}": getattr(math, name)
        for name in ("isclose", "fabs", "sqrt", "floor", "ceil", "isnan", "isinf")
    },
}
SAFE_CONSTANTS = {f"math.{name}": getattr(math, name) for name in ("pi", "e", "inf", "nan", "tau")}
# methods of the decoded (exact, builtin) values that the trainer evaluates itself, so that a
# program's object never answers ``f(x).startswith(E)``: every public method of a plain type and
# its comparisons, less str.format (a width builds any size); those that pad to a width are
# checked (_method), and none other grows a value past a few times its size
_PADDING = {"center", "ljust", "rjust", "zfill", "expandtabs", "to_bytes"}
_METHODS: dict[type, frozenset[str]] = {
    t: frozenset(
        a
        for a in dir(t)
        if (not a.startswith("_") or a in plain.COMPARISONS) and callable(getattr(t, a))
    )
    - {"format", "format_map"}
    for t in plain.PLAIN_TYPES
}
SAFE_METHODS = frozenset().union(*_METHODS.values())
MAX_SIZE = 1 << 20  # largest sequence or exponent the trainer builds from a test


def dotted(node: ast.expr) -> str | None:
    """``name`` or ``module.name`` of a node, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def judge(
    checks: tuple[ast.expr, ...], exprs: tuple[str, ...], result: Any, cap: int
) -> tuple[bool, str]:
    """Pass flag and detail of a split test from the sandbox's ``("values", answers)`` (never
    raises): every check true on the decoded answers, each no longer than ``cap`` characters."""
    try:
        tag, answers = result
        if tag != "values" or len(answers) != len(exprs):
            return False, "malformed values"
        values = [_answer(a, cap) for a in answers]
        for check in checks:
            if not _truth(_Evaluator(values).eval(check)):
                return False, _explain(check, exprs, values)
    except _Raised as err:
        return False, str(err)[:300]
    except Exception as err:  # noqa: BLE001 - any failure of a test's verdict is a failed test
        return False, f"{type(err).__name__}: {err}"[:300]
    return True, ""


def _explain(check: ast.expr, exprs: tuple[str, ...], values: list[Any]) -> str:
    """``AssertionError: f(2) == 4 (f(2) = 3)``, from the leaves actually used."""
    used = sorted(
        {int(n.id[1:]) for n in ast.walk(check) if isinstance(n, ast.Name) and n.id[:1] == LEAF}
    )
    text = ast.unparse(check)
    for i in reversed(used):
        text = text.replace(f"{LEAF}{i}", exprs[i])
    got = ", ".join(f"{exprs[i]} = {reprlib.repr(values[i])}" for i in used)
    return f"AssertionError: {text} ({got})"[:300] if got else f"AssertionError: {text}"[:300]


class _Raised(Exception):
    """A leaf raised in the sandbox; it counts only if the verdict needs that leaf's value."""


def _answer(answer: Any, cap: int) -> Any:
    status, payload = answer
    if status != "ok":
        return _Raised(str(payload))
    if len(payload) > cap:
        return _Raised("value too large")
    return decode(plain.loads(payload))


BINOPS = {ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow}
_COMPARE = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Is: lambda a, b: a is b,
    ast.IsNot: lambda a, b: a is not b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def _truth(value: Any) -> bool:
    return bool(value)  # values are rebuilt builtins: their truth is Python's own


class _Evaluator:
    """Evaluates a verdict tree (only the node types :func:`_split` builds) on decoded values."""

    def __init__(self, values: list[Any]) -> None:
        self.values = values

    def eval(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name) and node.id.startswith(LEAF):
            value = self.values[int(node.id[1:])]
            if isinstance(value, _Raised):
                raise value
            return value
        name = dotted(node)
        if name in SAFE_CALLS or name in SAFE_CONSTANTS:
            return SAFE_CALLS.get(name, SAFE_CONSTANTS.get(name or ""))
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            kind = {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)]
            return kind(self.eval(e) for e in node.elts)
        if isinstance(node, ast.Dict):
            return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
        if isinstance(node, ast.UnaryOp):
            return _unary(node.op, self.eval(node.operand))
        if isinstance(node, ast.BinOp):
            return _binary(node.op, self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.BoolOp):
            return self._boolop(node)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Call):
            args = [self.eval(a) for a in node.args]
            kwargs = {k.arg: self.eval(k.value) for k in node.keywords if k.arg}
            name = dotted(node.func)
            if name in SAFE_CALLS:
                return SAFE_CALLS[name](*args, **kwargs)
            if isinstance(node.func, ast.Attribute):  # a plain value's method (_answer_method)
                return _method(self.eval(node.func.value), node.func.attr, args, kwargs)
            raise ValueError(f"not a trusted call: {ast.unparse(node.func)}")
        raise ValueError(f"not a verdict node: {type(node).__name__}")

    def _boolop(self, node: ast.BoolOp) -> Any:
        value = None
        for part in node.values:
            value = self.eval(part)
            if _truth(value) == isinstance(node.op, ast.Or):
                return value
        return value

    def _compare(self, node: ast.Compare) -> bool:
        left = self.eval(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.eval(comparator)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True


def _unary(op: ast.unaryop, value: Any) -> Any:
    if isinstance(op, ast.Not):
        return not _truth(value)
    if isinstance(op, ast.USub):
        return -value
    if isinstance(op, ast.UAdd):
        return +value
    return ~value


def _method(value: Any, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """A plain value's method, called here: only on exact builtins (decoded values, constants),
    only the listed ones, and never one that would build a value past MAX_SIZE."""
    if name not in _METHODS.get(type(value), ()):
        raise ValueError(f"{type(value).__name__}.{name} is not evaluated by the trainer")
    if name in _PADDING:
        sizes = [a for a in (*args, *kwargs.values()) if isinstance(a, int)]
        scale = len(value) if name == "expandtabs" else 1
        if any(abs(n) * max(scale, 1) > MAX_SIZE for n in sizes):
            raise ValueError(f"{name} too large for the trainer")
    if name == "translate" and args and isinstance(args[0], dict):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        if len(value) * longest > MAX_SIZE:
            raise ValueError("translation too large for the trainer")
    if name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, (str, bytes)) and isinstance(new, (str, bytes)):
            count = (len(value) + 1) if not old else value.count(old)
            if len(value) + count * max(0, len(new) - len(old)) > MAX_SIZE:
                raise ValueError("replacement too large for the trainer")
    if name == "join" and args and hasattr(args[0], "__len__"):  # a str joins its characters
        size = len(value) * len(args[0]) + sum(len(p) for p in args[0] if hasattr(p, "__len__"))
        if size > MAX_SIZE:
            raise ValueError("join too large for the trainer")
    return getattr(value, name)(*args, **kwargs)


def _binary(op: ast.operator, a: Any, b: Any) -> Any:
    """Arithmetic on decoded values, refusing results a program could make huge."""
    if isinstance(op, ast.Pow) and type(a) is int and type(b) is int:
        if b > 0 and abs(a) > 1 and a.bit_length() * b > 8 * MAX_SIZE:
            raise ValueError("power too large for the trainer")
    if isinstance(op, ast.Mod) and isinstance(a, (str, bytes)):
        raise ValueError("string formatting is not evaluated by the trainer")
    if isinstance(op, ast.Mult) and any(isinstance(x, (str, bytes, list, tuple)) for x in (a, b)):
        seq, times = (a, b) if isinstance(a, (str, bytes, list, tuple)) else (b, a)
        if isinstance(times, int) and len(seq) * times > MAX_SIZE:
            raise ValueError("repetition too large for the trainer")
    return {
        ast.Add: lambda: a + b,
        ast.Sub: lambda: a - b,
        ast.Mult: lambda: a * b,
        ast.Div: lambda: a / b,
        ast.FloorDiv: lambda: a // b,
        ast.Mod: lambda: a % b,
        ast.Pow: lambda: a**b,
    }[type(op)]()
