"""Attacks on the code reward, written as a policy would find them: each wrong program tries to
score 1 without solving its task, and each hostile one tries to reach the host or a neighbour.
Every test asserts the exact reward, and that nothing is left on the host (processes, files,
cgroups). The replayed tests (``rewards.replay``) and the per-program limits (``cgroups``,
``program_limits``) are what is under test here; tests/test_sandbox.py holds the rest."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from tests.sandbox_helpers import our_cgroups, sandbox_processes
from trafl.rewards import replay
from trafl.rewards.assert_split import plan_for
from trafl.rewards.plain import decode, loads
from trafl.rewards.sandbox import Job, Sandbox, SandboxConfig

TIMEOUT_S = 1.5

# A HumanEval/38-like task: the expected side needs a trusted helper of the prompt (encode),
# the inputs come from ``random``, and the test has a loop: it is replayed.
REFERENCE = "def encode(s):\n    return s[::-1] + '!'\n\ndef decode(s):\n    '''Invert encode.'''\n"
CHECK = (
    "import random\n\ndef check(candidate):\n    for _ in range(4):\n"
    "        s = ''.join(random.choice('abcdef') for _ in range(8))\n"
    "        assert candidate(encode(s)) == s\n\ncheck(decode)\n"
)
RIGHT = REFERENCE + "def decode(s):\n    return s[:-1][::-1]\n"
WRONG = REFERENCE + "def decode(s):\n    return s\n"
# A helper of the test computes the expected side (a leaf the program could bend): replayed.
SQUARE = "def sq(x):\n    return x * x\n\ndef check(c):\n    assert c(3) == sq(3)\n\ncheck(f)\n"
# How many values are checked is decided by range(), which runs beside the program: replayed.
EVERY = "assert all(f(x) for x in range(3))"
HUGE = "assert f(1) == 'expected-3f9a'"  # split: the value comes back as plain data
LOOP = "def check(c):\n    assert sum(range(c(1))) == 3\n\ncheck(f)\n"  # the replay loops on c(1)
# No loop: the helper in the argument must still run on the trusted side (replayed), where the
# program can neither redefine it nor read the leaf's text, whose argument is the answer.
ROUND_TRIP = (
    "def check(candidate):\n    assert candidate(encode('hello')) == 'hello'\n"
    "    assert candidate(encode('abcxyz')) == 'abcxyz'\n\ncheck(decode)\n"
)
# A plain value's method on the answer: evaluated by the trainer on the decoded value.
METHOD = "assert greet('bob').startswith('Hello, bob') and greet('al').endswith('al!')"
# ... and inside a comprehension: replayed, the method run on the decoded answer
METHODS = "assert all(greet(n).startswith('Hello, ' + n) for n in ('bob', 'al'))"
FAMILIES = {  # test, right program, reference
    "decode": (CHECK, RIGHT, REFERENCE),
    "square": (SQUARE, "def f(x):\n    return x * x\n", ""),
    "every": (EVERY, "def f(x):\n    return True\n", ""),
    "huge": (HUGE, "def f(x):\n    return 'expected-3f9a'\n", ""),
    "loop": (LOOP, "def f(x):\n    return 3\n", ""),
    "round_trip": (ROUND_TRIP, RIGHT, REFERENCE),
    "method": (METHOD, "def greet(n):\n    return 'Hello, ' + n + '!'\n", ""),
    "methods": (METHODS, "def greet(n):\n    return 'Hello, ' + n + '!'\n", ""),
}
MAIN = "import sys\nm = sys.modules['__main__']\n"
LYING_STR = (
    "class S(str):\n    def startswith(self, *a):\n        return True\n"
    "    def endswith(self, *a):\n        return True\n"
    "def greet(n):\n    return S('nope')\n"
)
ATTACKS = {  # name: (family, a wrong program that tries to pass)
    "redefine_the_helper": ("decode", WRONG + "def encode(s):\n    return s\n"),
    "patch_random": (
        "decode",
        REFERENCE + "import random\nrandom.choice = lambda seq: 'a'\n"
        "def decode(s):\n    return 'a' * 8\n",
    ),
    "peek_at_caller_frames": (
        "decode",
        REFERENCE + "import sys\ndef decode(x):\n    f = sys._getframe(1)\n    while f:\n"
        "        for v in f.f_locals.values():\n"
        "            if type(v) is str and len(v) == 8 and v != x:\n                return v\n"
        "        f = f.f_back\n    return x\n",
    ),
    "search_gc_for_expected": (
        "decode",
        REFERENCE + "import gc\ndef decode(x):\n    for o in gc.get_objects():\n"
        "        for v in (o if isinstance(o, (list, tuple)) else ()):\n"
        "            if type(v) is str and len(v) == 8 and set(v) <= set('abcdef'):\n"
        "                return v\n    return x\n",
    ),
    "forge_the_answers": (
        "decode",
        WRONG
        + MAIN
        + "m._answer_call = lambda g, key, cap: ['ok', '[\"s\", \"abcdefab\"]', None]\n",
    ),
    "forge_argument_mutation": (
        "decode",
        WRONG + MAIN + 'm._call_key = lambda n, a, k: \'["l", [["s", "decode"], '
        '["l", [["s", "zz"]]], ["d", []]]]\'\n',
    ),
    "forge_a_replayed_verdict": (
        "decode",
        WRONG + MAIN + "m._calls = lambda g, t, cap: ['replayed', True, '', []]\n",
    ),
    "class_property_lies": (
        "decode",
        REFERENCE + "class X:\n    __class__ = property(lambda self: str)\n"
        "    def __eq__(self, o):\n        return True\n    __hash__ = object.__hash__\n"
        "def decode(s):\n    return X()\n",
    ),
    "str_subclass": (
        "decode",
        REFERENCE + "class S(str):\n    def __eq__(self, o):\n        return True\n"
        "    __hash__ = str.__hash__\ndef decode(s):\n    return S(s)\n",
    ),
    "raise_an_exception": ("decode", REFERENCE + "def decode(s):\n    raise StopIteration\n"),
    "replace_eval": ("square", MAIN + "m._eval = lambda *a: 'same'\ndef f(x):\n    return 0\n"),
    "patch_builtins": (
        "square",
        "import builtins\nbuiltins.int = str\nclass I(int):\n    def __eq__(self, o):\n"
        "        return True\n    __hash__ = int.__hash__\ndef f(x):\n    return I(0)\n",
    ),
    "patch_range": (
        "every",
        "import builtins\nbuiltins.range = lambda *a: iter(())\ndef f(x):\n    return False\n",
    ),
    "make_the_replay_run_forever": ("loop", "def f(x):\n    return 10 ** 15\n"),
    "redefine_the_helper_in_an_argument": ("round_trip", WRONG + "def encode(s):\n    return s\n"),
    "read_the_argument_from_the_leaf_text": (
        "round_trip",
        REFERENCE + "import ast, sys\ndef decode(s):\n    f = sys._getframe(1)\n    while f:\n"
        "        for v in f.f_locals.values():\n"
        "            if isinstance(v, str) and v.startswith('candidate(encode('):\n"
        "                return ast.literal_eval(v[len('candidate(encode('):-2])\n"
        "        f = f.f_back\n    return s\n",
    ),
    "lying_str_methods": ("method", LYING_STR),
    "lying_str_methods_in_a_comprehension": ("methods", LYING_STR),
    "gigantic_int": ("huge", "def f(x):\n    return 10 ** 200000\n"),
    "cyclic_list": ("huge", "def f(x):\n    v = []\n    v.append(v)\n    return v\n"),
    "huge_dict": ("huge", "def f(x):\n    return {i: str(i) for i in range(200000)}\n"),
    "report_nested_100k_deep": ("huge", "FORGE = '[' * 100000\n"),
    "report_with_a_5M_digit_int": ("huge", "FORGE = '{\"results\": [' + '9' * 5000000 + ']}'\n"),
    "stop_every_process": (
        "huge",
        "import os, signal\nfor p in [1] + [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    try:\n        os.kill(p, signal.SIGSTOP)\n    except OSError:\n        pass\n"
        "def f(x):\n    return 'wrong'\n",
    ),
}
FORGE_WITH_SENTINEL = (  # appended to FORGE programs: the report line, with the real sentinel
    "import json, marshal, os, sys\ns = marshal.loads(bytes.fromhex(sys.argv[1]))\n"
    "token = os.read(s['secret_fd'], 64)\n"
    "os.write(s['report_fd'], FORGE.encode() + b'\\n' + token + b'\\n')\nos._exit(0)\n"
)


SORT_IN_PLACE = (
    "def check(candidate):\n    xs = [3, 1, 2]\n    assert candidate(xs) is None\n"
    "    assert xs == [1, 2, 3]\n\ncheck(f)\n"
)
CHAINED = "def check(candidate):\n    y = candidate(5)\n    assert candidate(y) == 7\n\ncheck(f)\n"
BRANCH = (
    "def check(c):\n    if c(1) == 2:\n        assert c(2) == 3\n    else:\n        assert False\n"
    "\ncheck(f)\n"
)
OBJECT = "x = Solution()\nassert x.solve(1) == 2"
# fails with trusted code alone (a module the sandbox lacks): fails for every program, forgers too
BROKEN = (
    "def check(c):\n    for x in [3]:\n        assert c(x) == 9\n"
    "    import trafl_test_no_such_module\n\ncheck(f)\n"
)
# raises outside an assert when the program's value says so: not a broken test (runs inside)
RAISES = (
    "def check(c):\n    try:\n        c(-1)\n    except ValueError:\n        pass\n"
    "    else:\n        raise AssertionError('no error')\n\ncheck(f)\n"
)
# a set argument: its calls are keyed the same in the three runs, whatever their hash seeds
SET_ARGUMENT = (
    "def check(c):\n    for s in [{'apple', 'banana', 'cherry', 'date', 'elder', 'fig', 'kiwi'}]:\n"
    "        assert c(s) == 7\n\ncheck(f)\n"
)
FORGER = (  # a wrong program that replaces the in-sandbox runner
    "def f(v):\n    return v\nimport sys\nsys.modules['__main__']._run_assert = "
    "lambda g, r, *c: [[True, '']] * len(r['tests'])\n"
)
REPLAY_CASES = [  # program, test, reward
    ("def f(xs):\n    xs.sort()\n", SORT_IN_PLACE, 1.0),
    ("def f(xs):\n    return None\n", SORT_IN_PLACE, 0.0),
    ("def f(x):\n    return x + 1\n", CHAINED, 1.0),
    ("def f(x):\n    return x\n", CHAINED, 0.0),
    ("def f(v):\n    return v + 1\n", BRANCH, 1.0),
    ("def f(v):\n    return v\n", BRANCH, 0.0),
    ("class Solution:\n    def solve(self, v):\n        return v + 1\n", OBJECT, 1.0),
    (FORGER, BRANCH, 1.0),  # inside: forgeable
    (FORGER, CHAINED, 0.0),  # replayed: not
    ("def f(v):\n    return v * v\n", BROKEN, 0.0),
    (FORGER, BROKEN, 0.0),  # not inside: the record run failed without any program
    ("def f(v):\n    if v < 0:\n        raise ValueError(v)\n", RAISES, 1.0),
    ("def f(v):\n    return v\n", RAISES, 0.0),
    ("def f(s):\n    return len(s)\n", SET_ARGUMENT, 1.0),
    ("def f(s):\n    return 6\n", SET_ARGUMENT, 0.0),
]


def _reward(result) -> float:
    return float(
        result.finished and bool(result.results) and all(r[0] is True for r in result.results)
    )


@pytest.fixture(scope="module")
def work_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="trafl-test-attacks-"))
    root.chmod(0o711)
    yield root
    for path in sorted(root.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    root.rmdir()


@pytest.fixture(scope="module")
def sandbox(work_root: Path) -> Sandbox:
    cfg = SandboxConfig(timeout_s=TIMEOUT_S, cpu_s=2, workers=4, tmp_dir=str(work_root))
    sb = Sandbox(cfg)
    if not (sb.launcher.prefix or sb.launcher.uid is not None):
        pytest.skip(f"no namespaces or separate uid here ({sb.launcher.describe()})")
    return sb


@pytest.fixture(scope="module")
def attack_runs(sandbox: Sandbox, work_root: Path) -> dict:
    """Every attack and every family's right program, in one parallel batch."""
    jobs, names = [], []
    for family, (test, right, reference) in FAMILIES.items():
        jobs.append(Job(right, tests=[test], reference=reference))
        names.append(f"right:{family}")
    for name, (family, program) in ATTACKS.items():
        test, _, reference = FAMILIES[family]
        if program.startswith("FORGE"):
            program += FORGE_WITH_SENTINEL
        jobs.append(Job(program, tests=[test], reference=reference))
        names.append(name)
    jobs += [Job(program, tests=[test]) for program, test, _ in REPLAY_CASES]
    start = time.monotonic()
    ran = sandbox.run(jobs)
    results = dict(zip(names, ran[: len(names)], strict=True))
    return {
        "results": results,
        "replay": ran[len(names) :],
        "seconds": time.monotonic() - start,
        "processes": sandbox_processes(work_root),
        "cgroups": our_cgroups(sandbox),
        "files": list(work_root.iterdir()),
    }


def test_the_attacked_tests_are_judged_outside_the_program() -> None:
    kinds = [plan_for(t, r).kind for t, _, r in FAMILIES.values()]
    assert kinds == ["replay", "replay", "replay", "split", "replay", "replay", "split", "replay"]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_right_programs_score_one(attack_runs: dict, family: str) -> None:
    result = attack_runs["results"][f"right:{family}"]
    assert _reward(result) == 1.0, result


@pytest.mark.parametrize("name", list(ATTACKS))
def test_a_wrong_program_cannot_fake_a_pass(attack_runs: dict, name: str) -> None:
    result = attack_runs["results"][name]
    assert _reward(result) == 0.0, result
    assert result.seconds < TIMEOUT_S + 2  # every bomb ends within its limits


def test_attacks_leave_nothing_on_the_host(attack_runs: dict) -> None:
    assert attack_runs["processes"] == []
    assert attack_runs["cgroups"] == []
    assert attack_runs["files"] == []
    results = attack_runs["results"]
    assert "value too large" in results["gigantic_int"].results[0][1]
    assert "nested too deeply" in results["cyclic_list"].results[0][1]
    for forged in ("report_nested_100k_deep", "report_with_a_5M_digit_int"):
        assert "tampered" in results[forged].reason  # refused, not parsed without bound
    assert "timeout" in results["stop_every_process"].reason
    assert "replay run failed: timeout" in results["make_the_replay_run_forever"].results[0][1]


def test_trainer_side_parsing_is_bounded() -> None:
    for bomb in ("[" * 100_000, "[" + "9" * 5_000_000 + "]"):
        start = time.monotonic()
        with pytest.raises(ValueError):
            loads(bomb)
        assert time.monotonic() - start < 0.5
    deep: list = ["l", []]
    for _ in range(101):
        deep = ["l", [deep]]
    with pytest.raises(ValueError, match="nested"):
        decode(deep)
    assert decode(["t", [["i", "-ff"], ["y", "00ff"]]]) == (-255, b"\x00\xff")


# --------------------------------------------------------------------------- the replay itself


def test_replay_keeps_mutations_asks_again_and_falls_back_where_it_must(attack_runs: dict) -> None:
    """An argument changed in place is changed in the trusted replay too; a call whose argument
    is an earlier answer takes a second round; a branch on a call's value or an object kept in
    a variable cannot be replayed and runs inside, as before: right programs still pass there,
    and a program that replaces the runner passes too (the documented limit)."""
    results = attack_runs["replay"]
    assert [_reward(r) for r in results] == [c[2] for c in REPLAY_CASES], results
    assert "assert xs == [1, 2, 3]" in results[1].results[0][1]
    broken = [r.results[0][1] for r, c in zip(results, REPLAY_CASES, strict=True) if c[1] == BROKEN]
    assert broken == ["the test fails without the program: ModuleNotFoundError: "
                      "No module named 'trafl_test_no_such_module'"] * 2  # fmt: skip


def test_a_record_run_that_does_not_finish_fails_closed_and_is_not_cached() -> None:
    """Only the record run's own report may send a test inside: a run that did not finish
    (load, a timeout) fails the test instead, and is asked again next time."""
    test_plan = plan_for(CHAINED.replace("== 7", "== 8"), "").replay  # not cached by others
    asked = []

    def timed_out(program: str, tests: list) -> str:
        asked.append(tests)
        return "timeout: still running after 1 s"

    for _ in range(2):
        assert replay.prepare(test_plan, "", timed_out) == (
            "record run failed: timeout: still running after 1 s"
        )
    assert len(asked) == 2 and "record" in asked[0][0]  # not cached; the record request
    assert replay.prepare(test_plan, "", lambda p, t: [["error", "NameError: x"]]) is None
