"""Assert-style tests split in two, so that the verdict is computed outside the sandbox.

A test such as ``assert f(3) == [1, 2]`` is parsed (``ast``) into the *candidate-dependent*
expressions (``f(3)``), which the sandbox evaluates and sends back as plain data with exact types
(``sandbox_harness._plain``), and a *verdict tree* (``@0 == [1, 2]``) that the trainer evaluates
here on the decoded values. The sandbox never sees the expected side, so a program that owns its
process (replaces the harness's runner, rewrites the request through ``gc``, forges the report)
can change only its own answers; and an object with an always-true ``__eq__``, an ``int``
subclass or a lying ``__bool__`` is not plain data, so its test fails.

**What is split.** A test module whose statements are ``assert``s (MBPP, tiny_code), optionally
after imports; or HumanEval's form: setup statements (``METADATA = ...``, imports, helpers), a
``def check(candidate)`` whose body is ``assert``s only (docstrings and ``pass`` allowed), and a
final ``check(NAME)``. In an assert's condition the trainer evaluates: constants and displays
(list, tuple, set, dict), ``not``/``and``/``or``, unary and binary arithmetic (sizes guarded),
every comparison (``is``/``is not`` only against ``None``, ``True``, ``False``), calls of
``abs round len sorted set frozenset list tuple dict str int float bool complex min max sum all
any isinstance type`` and ``math.isclose fabs sqrt floor ceil isnan isinf``, ``math.pi e inf
nan tau``, and the methods of plain values (``str.startswith``, ``list.index``,
``dict.items``, comparisons ...: all but ``str.format``) on the decoded answer, never on the
program's object (but ``Name().method()``, ``Name`` capitalised, is taken for the program's
class). Every other sub-expression that uses a name is a leaf evaluated in the
sandbox, and a test splits only if each leaf is the value of a call of the program's functions
(``candidate`` and the checked name in HumanEval's form; the test's free names otherwise, less
those a trusted ``reference`` defines, see :func:`plan_for`) on arguments computed from the
test's constants and such calls alone, possibly indexed or over constants: ``f(3)``,
``candidate(x)[0]``, ``Solution().solve(s)``, ``f([Pair(1, 2)])``, ``[f(i) for i in (1, 2)]``.
Such a value is the program's answer, whatever the program does to its process. An argument
that calls a helper of the test (``candidate(encode('hi')) == 'hi'``) sends the test to replay:
beside the program, the helper could be redefined, or the expected value read from the leaf's
text.

**What is replayed** (:mod:`trafl.rewards.replay`): a test that does not split, including one
with a leaf that would compute part of the expected side beside the program
(``[i * i for i in range(3)]``, ``poly(xs, candidate(xs))``, ``[candidate(x) == v for v in vs]``,
``all(f(x) for x in range(3))``, a helper of the test): HumanEval's checks with loops or
assignments (32, 38, 44, 50, 53, 129, 151), statements in a test, lambdas, ``is`` against
non-singletons. Only what replay cannot take (:mod:`trafl.rewards.replay` says when) and text
that does not parse run inside the sandbox as before (``inside``): their pass flag comes from
the program's process. An assert's message is ignored.

The trusted language, its tables and its evaluator are :mod:`trafl.rewards.trusted_eval`.

**Limits.** Leaves are evaluated eagerly, in order (a short-circuit ``or`` still runs its right
side, though its error or value only counts if needed).
"""

from __future__ import annotations

import ast
import builtins
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from trafl.rewards.plain import decode
from trafl.rewards.replay import ReplayPlan, Unreplayable, defined, replay_plan
from trafl.rewards.trusted_eval import (
    BINOPS,
    LEAF,
    MAX_VALUE_BYTES,
    SAFE_CALLS,
    SAFE_CONSTANTS,
    SAFE_METHODS,
    dotted,
    judge,
)

__all__ = ["TestPlan", "Unsplittable", "decode", "plan", "plan_for", "verdict"]

_SINGLETONS = (None, True, False, Ellipsis)
_MODULES = {"math"}  # names a reference value may use without depending on the program
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))  # never names of the program


class Unsplittable(Exception):
    """The test has a shape this module does not split; it is replayed or runs inside."""


@dataclass(frozen=True, eq=False)
class TestPlan:
    """How one test runs: split (``setup`` + ``bind`` + ``exprs`` for the sandbox and ``checks``
    (verdict trees) for us), replayed (``replay``), or ``inside`` (the source to execute in the
    sandbox: the fallback; replayed tests keep it for when the replay is not possible)."""

    inside: str | None = None
    setup: str = ""
    bind: str | None = None  # the name HumanEval's check is called with: ``candidate``
    exprs: tuple[str, ...] = ()
    checks: tuple[ast.expr, ...] = ()
    replay: ReplayPlan | None = None
    roots: frozenset[str] = frozenset()  # names whose calls the leaves are (module form)

    @property
    def kind(self) -> str:
        """``split``, ``replay`` or ``inside``."""
        return "split" if self.inside is None else "replay" if self.replay else "inside"

    def request(self) -> dict[str, Any]:
        """What the sandbox receives for a split or inside test (never an expected value)."""
        if self.inside is not None:
            return {"run": self.inside}
        return {"setup": self.setup, "bind": self.bind, "exprs": list(self.exprs)}


@lru_cache(maxsize=4096)
def plan(test: str) -> TestPlan:
    """Split ``test``, else plan its replay, else run it inside (see the module docstring)."""
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return TestPlan(inside=test)
    try:
        setup, bind, asserts, program = _asserts_of(tree)
        leaves: list[str] = []
        checks = tuple(_split(a.test, leaves) for a in asserts)
        roots = [_roots(ast.parse(src, mode="eval").body) for src in leaves]
        if not all(r is not None and r <= program for r in roots):
            raise Unsplittable("a leaf computes part of the expected side")
        # in check form the roots are the checked function; in module form, names that a
        # reference may define instead of the program (see plan_for)
        module_roots = frozenset().union(*roots) if bind is None else frozenset()  # type: ignore[arg-type]
        return TestPlan(None, setup, bind, tuple(leaves), checks, None, module_roots)
    except (Unsplittable, SyntaxError, ValueError, RecursionError, MemoryError):
        return _replayed(test)


@lru_cache(maxsize=1024)
def _replayed(test: str) -> TestPlan:
    try:
        return TestPlan(inside=test, replay=replay_plan(ast.parse(test), test))
    except (Unreplayable, SyntaxError, ValueError, RecursionError, MemoryError):
        return TestPlan(inside=test)


def plan_for(test: str, reference: str) -> TestPlan:
    """:func:`plan` for a job with this trusted ``reference``: replayed instead of split when a
    leaf calls a function the reference defines (a helper computing the expected side, not the
    program's answer); run inside when a name the program provides is not only called."""
    found = plan(test)
    if found.roots and reference and found.roots & defined(reference):
        found = _replayed(test)
    if found.replay is not None and found.replay.names_for(reference) is None:
        return TestPlan(inside=test)  # a program name used other than by calling it
    return found


def _roots(node: ast.expr, names: frozenset[str] = frozenset()) -> frozenset[str] | None:
    """The functions a leaf's value is the call of: its own, and those called in its arguments
    (``Pair`` in ``f([Pair(1, 2)])``); None if the leaf is anything else. The arguments (and any
    index) must be computed from the test's constants and such calls alone (``names``: a
    comprehension's variables over constants): :func:`plan` then requires every root to be the
    program's, so that a helper of the test (``candidate(encode('hi')) == 'hi'``) never runs
    beside the program, which could redefine it or read the expected value from the leaf's
    text (replayed instead). A plain type's method on the answer (``f(x).startswith(E)``) is
    not in a leaf: it is evaluated here on the decoded value (:func:`_split`)."""
    found: set[str] = set()
    while isinstance(node, ast.Subscript):
        if (inner := _computed(node.slice, names)) is None:
            return None
        found |= inner
        node = node.value
    while isinstance(node, ast.Attribute):  # an attribute of the answer: f(x).real
        node = node.value
    if isinstance(node, ast.ListComp) and len(node.generators) == 1:
        loop = node.generators[0]  # [f(x) for x in <constant>]: all of it the program's values
        if loop.ifs or not _constant(loop.iter):
            return None
        inner = _roots(node.elt, names | _targets(loop.target))
        return None if inner is None else frozenset(found | inner)
    if not isinstance(node, ast.Call):
        return None
    func: ast.expr = node
    while not isinstance(func, ast.Name):
        parts: list[ast.AST] = []
        if isinstance(func, ast.Call):
            parts, func = [*func.args, *func.keywords], func.func
        elif _answer_method(func):  # inside a comprehension: replayed, where it runs on
            return None  # the decoded answer (top level: evaluated here, see _split)
        elif isinstance(func, ast.Attribute):
            func = func.value
        elif isinstance(func, ast.Subscript):
            parts, func = [func.slice], func.value
        else:
            return None
        for part in parts:
            if (inner := _computed(part, names)) is None:
                return None
            found |= inner
    return frozenset(found | {func.id})


def _computed(node: ast.AST, names: frozenset[str]) -> frozenset[str] | None:
    """The functions called in ``node`` (an argument, keyword or index) when it is otherwise
    computed by the trusted language from constants and ``names``; None if it needs anything
    else of the process."""
    if isinstance(node, (ast.keyword, ast.Starred)):
        node = node.value
    if isinstance(node, ast.Slice):
        bounds = [_computed(n, names) for n in (node.lower, node.upper, node.step) if n]
        return None if None in bounds else frozenset().union(*bounds)  # type: ignore[arg-type]
    leaves: list[str] = []
    try:
        _split(node, leaves)  # type: ignore[arg-type]
    except Unsplittable:
        return None
    found: set[str] = set()
    for leaf in leaves:
        if leaf in names:
            continue
        if (inner := _roots(ast.parse(leaf, mode="eval").body, names)) is None:
            return None
        found |= inner
    return frozenset(found)


def _targets(target: ast.expr) -> frozenset[str]:
    return frozenset(n.id for n in ast.walk(target) if isinstance(n, ast.Name))


def _asserts_of(tree: ast.Module) -> tuple[str, str | None, list[ast.Assert], set[str]]:
    """The setup source, the bound name, the asserts of a test module and the names the
    program provides (``candidate`` in HumanEval's form; else the free names of the asserts)."""
    body = list(tree.body)
    if body and all(isinstance(s, (ast.Assert, ast.Import, ast.ImportFrom)) for s in body):
        imports = [s for s in body if not isinstance(s, ast.Assert)]
        asserts = [s for s in body if isinstance(s, ast.Assert)]
        imported = {(a.asname or a.name).split(".")[0] for s in imports for a in s.names}
        free = set().union(*(_program_names(a.test) for a in asserts)) - imported - _STDLIB
        return ast.unparse(ast.Module(imports, [])), None, asserts, free
    last = body[-1] if body else None
    call = last.value if isinstance(last, ast.Expr) else None
    if not (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and len(call.args) == 1
        and not call.keywords
        and isinstance(call.args[0], ast.Name)
    ):
        raise Unsplittable("neither asserts nor check(NAME)")
    name = call.func.id
    defs = [s for s in body[:-1] if isinstance(s, ast.FunctionDef) and s.name == name]
    if len(defs) != 1 or _params(defs[0]) is None:
        raise Unsplittable("no single check function with one parameter")
    check = defs[0]
    param = _params(check)
    asserts = []
    for stmt in check.body:
        if isinstance(stmt, ast.Assert):
            asserts.append(_renamed(stmt, param))
        elif not (isinstance(stmt, ast.Pass) or _is_docstring(stmt)):
            raise Unsplittable(f"a {type(stmt).__name__} in {name}")
    setup = ast.unparse(ast.Module([s for s in body[:-1] if s is not check], []))
    return setup, call.args[0].id, asserts, {"candidate", call.args[0].id}


def _params(fn: ast.FunctionDef) -> str | None:
    a = fn.args
    if a.posonlyargs or a.vararg or a.kwonlyargs or a.kwarg or len(a.args) != 1:
        return None
    return a.args[0].arg


def _renamed(stmt: ast.Assert, param: str) -> ast.Assert:
    """The assert with ``check``'s parameter called ``candidate`` (the name the harness binds)."""
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name) and node.id == param:
            node.id = "candidate"
    return stmt


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)


# --------------------------------------------------------------------------- splitting


def _trusted_name(node: ast.expr) -> bool:
    name = dotted(node)
    return name is not None and (name in SAFE_CALLS or name in SAFE_CONSTANTS)


def _split(node: ast.expr, leaves: list[str]) -> ast.expr:
    """A copy of ``node`` in the trusted language whose other sub-expressions are leaves."""
    if isinstance(node, ast.Constant) or _trusted_name(node):
        return node
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        if any(isinstance(e, ast.Starred) for e in node.elts):
            return _leaf(node, leaves)
        return type(node)(elts=[_split(e, leaves) for e in node.elts], ctx=ast.Load())
    if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
        keys = [_split(k, leaves) for k in node.keys if k is not None]
        return ast.Dict(keys=keys, values=[_split(v, leaves) for v in node.values])
    if isinstance(node, ast.UnaryOp):
        return ast.UnaryOp(op=node.op, operand=_split(node.operand, leaves))
    if isinstance(node, ast.BinOp) and type(node.op) in BINOPS:
        return ast.BinOp(
            left=_split(node.left, leaves), op=node.op, right=_split(node.right, leaves)
        )
    if isinstance(node, ast.BoolOp):
        return ast.BoolOp(op=node.op, values=[_split(v, leaves) for v in node.values])
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            if isinstance(op, (ast.Is, ast.IsNot)) and not any(
                isinstance(x, ast.Constant) and x.value in _SINGLETONS for x in operands[i : i + 2]
            ):
                raise Unsplittable("'is' against a value that is not a singleton")
        parts = [_split(x, leaves) for x in operands]
        return ast.Compare(left=parts[0], ops=node.ops, comparators=parts[1:])
    if isinstance(node, ast.Call) and _plain_call(node):
        func = node.func
        if _answer_method(func):  # f(x).startswith(E): the method runs here, on f(x)
            assert isinstance(func, ast.Attribute)
            func = ast.Attribute(value=_split(func.value, leaves), attr=func.attr, ctx=ast.Load())
        elif not _trusted_name(func):
            return _leaf(node, leaves)
        args = [_split(a, leaves) for a in node.args]
        keywords = [ast.keyword(arg=k.arg, value=_split(k.value, leaves)) for k in node.keywords]
        return ast.Call(func=func, args=args, keywords=keywords)
    return _leaf(node, leaves)


def _answer_method(func: ast.expr) -> bool:
    """A plain value's method on a value: not on a name (``obj.count`` is the program's), nor on
    a new object of a class (``Solution().count(3)``: by its capital, the program's method)."""
    if not (isinstance(func, ast.Attribute) and func.attr in SAFE_METHODS):
        return False
    made = func.value.func if isinstance(func.value, ast.Call) else None
    return dotted(func.value) is None and not (isinstance(made, ast.Name) and made.id[:1].isupper())


def _plain_call(node: ast.Call) -> bool:
    return not any(isinstance(a, ast.Starred) for a in node.args) and all(
        k.arg is not None for k in node.keywords
    )


def _leaf(node: ast.expr, leaves: list[str]) -> ast.expr:
    """``node`` becomes a value computed in the sandbox. A generator is sent as a list (it is
    consumed there, eagerly); a lambda is no value at all, so its test falls back."""
    if any(isinstance(sub, ast.Lambda) for sub in ast.walk(node)):
        raise Unsplittable("a lambda in a test")
    if isinstance(node, ast.GeneratorExp):
        node = ast.ListComp(elt=node.elt, generators=node.generators)
    leaves.append(ast.unparse(node))
    return ast.Name(id=f"{LEAF}{len(leaves) - 1}", ctx=ast.Load())


def _program_names(node: ast.expr) -> set[str]:
    """Free names of ``node`` that may come from the program (not builtins we trust, not math)."""
    loads, stores = set(), set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            (loads if isinstance(sub.ctx, ast.Load) else stores).add(sub.id)
        elif isinstance(sub, ast.arg):
            stores.add(sub.arg)
    return loads - stores - set(dir(builtins)) - _MODULES


def _constant(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


# --------------------------------------------------------------------------- the verdict


def verdict(test_plan: TestPlan, result: Any, cap: int = MAX_VALUE_BYTES) -> tuple[bool, str]:
    """Pass flag and detail of one test from the sandbox's answer for it (never raises). A
    value longer than ``cap`` characters (the harness's own limit, ``max_output_bytes``) is
    refused here too: the program may have written the report itself, and a long list of
    colliding ints would make ``set(f(x))`` quadratic in the trainer."""
    if test_plan.inside is not None:
        ok = isinstance(result, list) and len(result) == 2 and result[0] is True
        return ok, "" if ok else str(result[1] if isinstance(result, list) else result)[:300]
    if isinstance(result, list) and len(result) == 2 and result[0] is False:
        return False, str(result[1])[:300]  # the program failed before its tests
    return judge(test_plan.checks, test_plan.exprs, result, cap)
