"""Tests that cannot be split expression by expression, judged without trusting the program:
its functions are replaced by recorded answers in runs that hold only trusted code.

A test with loops, assignments or helpers (HumanEval's ``check`` of problems 32, 38, 44, 50,
53, 129, 151; an MBPP test with statements) is run three times, each run a sandboxed process:

1. **record** (test + the task's trusted ``reference`` code, e.g. HumanEval's prompt with its
   helpers; no program): every function the program provides is a stand-in that records its
   arguments and returns a pending value; asserts do not stop the run. Gives the calls the test
   makes, as plain data. Deterministic (``random`` is seeded), so cached per test;
2. **calls** (the program): each recorded call is made and its value, and the state it left
   its arguments in, sent back as plain data of exact types. This process holds no test code
   and no expected value: only the arguments;
3. **replay** (test + reference again; no program): the test runs as written, each call of a
   program's function answered from step 2. The verdict is this process's: trusted code on plain
   data. A call nobody asked yet (arguments that depend on earlier answers) is reported, asked
   of the program, and the replay repeated (at most :data:`ROUNDS` times).

The expected side (``encode_cyclic(s)``, ``poly(xs, x)``, ``x + y``) is computed from the
reference and the test only, so a program that redefines a helper, patches ``random`` or
builtins, peeks at its caller's frame or forges its report changes only its own answers.

**Falls back** to the in-sandbox verdict (:mod:`trafl.rewards.assert_split`) when the record
run cannot go on without the program (the test needs a program's value outside an assert, e.g.
``if f(x):``, or passes a function or object to it), or a program name is used other than by
calling it (a class, an attribute): their outcome is then the program's to forge. A record run
that fails in a way no program's value can cause (``import numpy`` where the sandbox has none,
a name the test never defines: an import, name or syntax error) fails the test for every
program: inside, only a forger would pass it. **Assumes** the program's
functions are functions of their arguments (a call with the same arguments is answered once).
"""

from __future__ import annotations

import ast
import builtins
import copy
import hashlib
import json
import symtable
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from trafl.rewards.plain import PLAIN_ATTRIBUTES

ROUNDS = 3  # replays that may ask the program for more calls
MAX_CALLS = 10_000  # calls of one test the program is asked for, in all
_CACHE_SIZE = 1024

# (program, tests) -> the harness's results, or why the run did not finish
Launch = Callable[[str, list[dict[str, Any]]], "list[Any] | str"]


class Unreplayable(Exception):
    """The test's shape does not allow a replay."""


@dataclass(frozen=True)
class ReplayPlan:
    source: str  # the test, run as written in the replay
    record: str  # the same with every assert's failure ignored (the record run)
    names: tuple[str, ...]  # names the program may provide (check form: the one checked)
    odd: tuple[str, ...]  # of those, names used other than by calling them
    modules: tuple[str, ...]  # standard modules the test uses without importing them
    check_form: bool  # HumanEval's ``def check(candidate) ... check(NAME)``

    def names_for(self, reference: str) -> tuple[str, ...] | None:
        """The names replaced by stand-ins (those the reference does not define), or None if
        one of them is used other than by calls (not replayable)."""
        names = set(self.names) if self.check_form else set(self.names) - defined(reference)
        return None if names & set(self.odd) else tuple(sorted(names))


def replay_plan(tree: ast.Module, source: str) -> ReplayPlan:
    """The replay of a parsed test, or :class:`Unreplayable`."""
    body = tree.body
    final = body[-1].value if body and isinstance(body[-1], ast.Expr) else None
    check_form = (
        isinstance(final, ast.Call)
        and isinstance(final.func, ast.Name)
        and len(final.args) == 1
        and isinstance(final.args[0], ast.Name)
        and any(isinstance(s, ast.FunctionDef) and s.name == final.func.id for s in body)
    )
    modules = _free_names(source) & set(getattr(sys, "stdlib_module_names", ()))
    skip = None
    if check_form and isinstance(final, ast.Call) and isinstance(final.args[0], ast.Name):
        names, skip = {final.args[0].id}, final.args[0]
        if _odd_uses(tree, names, skip) or _odd_params(tree, final.func):
            raise Unreplayable("the checked function is used other than by calling it")
    else:
        names = _free_names(source) - modules
    odd = _odd_uses(tree, names, skip)
    record = ast.unparse(ast.fix_missing_locations(_Recording().visit(copy.deepcopy(tree))))
    return ReplayPlan(
        source, record, tuple(sorted(names)), tuple(sorted(odd)), tuple(sorted(modules)), check_form
    )


def _free_names(source: str) -> set[str]:
    """Names the test reads but never binds (nor are builtins), in any scope."""
    top = symtable.symtable(source, "<test>", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    used: set[str] = set()
    tables = [top]
    while tables:
        table = tables.pop()
        for s in table.get_symbols():
            if s.is_referenced() and (table is top or s.is_global()):
                used.add(s.get_name())
        tables += table.get_children()
    return used - bound - set(dir(builtins))


@lru_cache(maxsize=256)
def defined(reference: str) -> frozenset[str]:
    """The names the top level of ``reference`` binds (none if it does not parse)."""
    try:
        top = symtable.symtable(reference, "<reference>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return frozenset()
    return frozenset(s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported())


def _odd_uses(tree: ast.AST, names: set[str], skip: ast.AST | None) -> set[str]:
    """Those of ``names`` read other than as ``name(...)`` whose result is not an object whose
    attributes are used (``Solution().solve(x)``). A plain value's attribute on the result
    (``f(x).startswith(E)``) is not odd: the replay computes it on the decoded answer (but
    ``Name().count()``, ``Name`` capitalised, is taken for the program's class)."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    odd = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name) or node.id not in names or node is skip:
            continue
        call = parents.get(node)
        above = parents.get(call) if call is not None else None
        called = isinstance(call, ast.Call) and call.func is node
        attribute = isinstance(above, ast.Attribute) and above.value is call
        plain = attribute and above.attr in PLAIN_ATTRIBUTES and not node.id[:1].isupper()  # type: ignore[union-attr]
        if not called or (attribute and not plain):
            odd.add(node.id)
    return odd


def _odd_params(tree: ast.Module, func: ast.Name) -> bool:
    """Whether the check function's parameter is used other than by calling it."""
    fn = next(s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == func.id)
    params = {a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]}
    return bool(_odd_uses(fn, params, skip=None))


class _Recording(ast.NodeTransformer):
    """``assert COND, MSG`` -> ``try: COND / except __trafl_swallow__: pass``: the condition is
    evaluated (its calls recorded), its outcome and its pending-value errors ignored."""

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        handler = ast.ExceptHandler(
            type=ast.Name(id="__trafl_swallow__", ctx=ast.Load()), name=None, body=[ast.Pass()]
        )
        return ast.Try(
            body=[ast.Expr(value=node.test)], handlers=[handler], orelse=[], finalbody=[]
        )


# --------------------------------------------------------------------------- the three runs


class _Cache:
    """A small thread-safe LRU of trusted results (record and replay runs are deterministic)."""

    def __init__(self) -> None:
        self.items: OrderedDict[str, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key: str, value: Any) -> None:
        with self.lock:
            self.items[key] = value
            while len(self.items) > _CACHE_SIZE:
                self.items.popitem(last=False)


_RECORDS, _REPLAYS = _Cache(), _Cache()


def clear_caches() -> None:
    """Forget recorded calls and replay verdicts (a benchmark measuring cold runs)."""
    for cache in (_RECORDS, _REPLAYS):
        with cache.lock:
            cache.items.clear()


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Prepared:
    """A replay plan with the names replaced and the calls its record run made."""

    plan: ReplayPlan
    names: tuple[str, ...]
    calls: tuple[str, ...]

    def request(self) -> dict[str, Any]:
        """What the program's run receives for this test: the arguments only."""
        return {"calls": list(self.calls)}

    def _reference(self, kind: str) -> dict[str, Any]:
        source = self.plan.record if kind == "record" else self.plan.source
        return {kind: source, "names": list(self.names), "modules": list(self.plan.modules)}


def prepare(plan: ReplayPlan, reference: str, launch_reference: Launch) -> Prepared | str | None:
    """Record the calls of the test (cached); None if it is not replayable (it runs inside),
    or why the record run did not finish (the test fails: never a fallback by accident)."""
    names = plan.names_for(reference)
    if names is None:
        return None
    key = _digest("record", reference, plan.record, names, plan.modules)
    cached = _RECORDS.get(key)
    if cached is None:
        request = Prepared(plan, names, ())._reference("record")
        out = launch_reference(reference, [request])
        if isinstance(out, str):
            return f"record run failed: {out}"  # not cached: it may pass next time
        cached = _recorded(out)
        _RECORDS.put(key, cached)
    if cached[0] == "failed":
        return f"the test fails without the program: {cached[1]}"
    return Prepared(plan, names, cached[1]) if cached[0] == "ok" else None


def _recorded(out: list[Any]) -> tuple[Any, ...]:
    """("ok", calls); ("failed", why): the record run raised what no program's value can cause
    (a module the sandbox lacks, a name the test never defines), so the test fails for every
    program, never runs inside where a forger would pass it; ("no",): not replayable (inside)."""
    if len(out) == 1 and isinstance(out[0], list) and len(out[0]) == 2 and out[0][0] == "failed":
        return ("failed", str(out[0][1])[:300])
    calls = _calls_of(out)
    return ("ok", calls) if calls is not None else ("no",)


def _calls_of(out: list[Any]) -> tuple[str, ...] | None:
    if len(out) != 1 or not isinstance(out[0], list) or len(out[0]) != 2:
        return None
    tag, calls = out[0]
    if tag != "calls" or not isinstance(calls, list) or len(calls) > MAX_CALLS:
        return None
    return tuple(c for c in calls if isinstance(c, str))


def answers_of(result: Any, count: int, cap: int) -> list[list[Any]]:
    """The program's answers to ``count`` calls, each checked for shape and size (anything else
    becomes an error answer: the program's process wrote it)."""
    bad = ["error", "ValueError", "malformed answer"]
    if not (isinstance(result, list) and len(result) == 2 and result[0] == "answers"):
        return [bad] * count
    answers = result[1] if isinstance(result[1], list) else []
    if len(answers) != count:
        return [bad] * count
    return [_answer(a, cap) or bad for a in answers]


def _answer(a: Any, cap: int) -> list[Any] | None:
    if not (isinstance(a, list) and len(a) == 3 and a[0] in ("ok", "error")):
        return None
    ok = a[0] == "ok"
    if not (isinstance(a[1], str) and (isinstance(a[2], str) or (ok and a[2] is None))):
        return None
    if len(a[1]) + len(a[2] or "") > cap:
        return None
    return a


def judge(
    prepared: Prepared,
    answers: list[list[Any]],
    reference: str,
    launch_reference: Launch,
    launch_program: Callable[[list[dict[str, Any]]], list[Any] | str],
    cap: int,
) -> tuple[bool, str]:
    """Replay the test on the program's ``answers`` (asking it for more when the replay needs
    them); the pass flag and detail of the test."""
    known = dict(zip(prepared.calls, answers, strict=True))
    for round_ in range(ROUNDS + 1):
        out = _replay(prepared, known, reference, launch_reference)
        if isinstance(out, str):
            return False, out
        passed, detail, missing = out
        if not missing:
            return passed, detail
        if round_ == ROUNDS or len(known) + len(missing) > MAX_CALLS:
            break
        more = launch_program([{"calls": missing}])
        if isinstance(more, str):
            return False, more
        more_answers = answers_of(more[0] if len(more) == 1 else None, len(missing), cap)
        known.update(zip(missing, more_answers, strict=True))
    return False, "replay: the test kept asking for calls with new arguments"


def _replay(
    prepared: Prepared, known: dict[str, Any], reference: str, launch_reference: Launch
) -> tuple[bool, str, list[str]] | str:
    pairs = sorted(known.items())
    key = _digest("replay", reference, prepared.plan.source, prepared.names, pairs)
    cached = _REPLAYS.get(key)
    if cached is not None:
        return cached
    request = prepared._reference("replay") | {"answers": [list(p) for p in pairs]}
    out = launch_reference(reference, [request])
    if isinstance(out, str):
        return f"replay run failed: {out}"
    report = out[0] if len(out) == 1 else None
    if not (isinstance(report, list) and len(report) == 4 and report[0] == "replayed"):
        return "replay run failed: malformed report"
    _, passed, detail, missing = report
    if not (isinstance(passed, bool) and isinstance(detail, str) and isinstance(missing, list)):
        return "replay run failed: malformed report"
    missing = [m for m in missing if isinstance(m, str)]
    result = (passed, detail[:300], [m for m in missing if m not in known])
    if passed or not result[2]:
        _REPLAYS.put(key, result)
    return result
