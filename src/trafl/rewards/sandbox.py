"""Run untrusted generated Python programs against tests, so that code rewards can be computed
during training without trusting the policy's output.

**What each run gets** (the in-sandbox half is :mod:`trafl.rewards.sandbox_harness`):

* a fresh temporary directory as cwd (``HOME`` and ``TMPDIR`` too), removed afterwards, and an
  environment holding nothing of the trainer's (no API tokens, no sentinel);
* where the kernel allows it (probed at first use, never assumed): new network, PID, IPC and
  mount namespaces through ``unshare`` (as root, or through a user namespace otherwise). No
  network at all (only a downed loopback), its own /proc, no view of or signal to the trainer's
  processes; when the namespace's first process dies, the kernel kills every process in it;
* when the trainer runs as root: the program runs as ``nobody`` (if an interpreter that
  ``nobody`` can read is found: the trainer's own, else ``/usr/bin/python3``), so file
  permissions protect the host and RLIMIT_NPROC bounds fork bombs;
* resource limits: CPU seconds, address space, processes, open files, file size, no core dumps;
  a wall-clock timeout after which its whole process group is killed (and, with namespaces, the
  whole namespace); stdout/stderr and each captured output are capped;
* a random sentinel (:mod:`secrets`, 128 bits) that the harness reads from an inherited pipe
  only after the program and all tests have run, and writes after its report. A run without it
  scores 0: ``exit(0)``/``os._exit(0)``/a signal before the tests finish is no pass, and the
  program cannot print the sentinel since it is not in its argv, environment or any file;
* a thread pool of ``workers`` runs batches in parallel; nothing raises into the trainer: every
  failure (timeout, crash, limit, sandbox error) is a result with a reason and fails its tests.

**Limits, honestly:**

* The program runs *in the same process* as the tests (as HumanEval/MBPP/LiveCodeBench
  harnesses do). A program written against this harness can read the sentinel pipe itself and
  forge a report, or (in ``assert`` mode) return objects whose ``__eq__`` is always true. The
  sentinel defeats early exits and accidents, not a deliberate attacker; ``call`` and ``stdio``
  modes at least compare results in the trainer, outside the sandbox.
* Without namespaces (no ``unshare``, no user namespaces) there is no network isolation, and
  without the uid drop (trainer not root, or no interpreter ``nobody`` can read) the program has
  the trainer's uid: it can read and write what the trainer can, signal its processes, and
  RLIMIT_NPROC counts all of that user's processes (as root it is not enforced at all). The
  audit-hook guard then stops plain ``open(..., "w")`` outside the work dir, ``os.kill`` of other
  processes and sockets, but ctypes or a shell get around it. A warning is logged.
* Without namespaces, children that call ``setsid`` escape the process-group kill.
* The program can read world-readable files (the host's /etc, installed packages) and write to
  world-writable ones (/tmp) even as ``nobody``; there is no cgroup, so memory is bounded per
  process (address space) and by the process count, not in total.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

HARNESS = (Path(__file__).parent / "sandbox_harness.py").read_text()
_NAMESPACES = ["--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--ipc"]
_POLL_S = (0.0005, 0.02)  # first and largest sleep while waiting for a program


@dataclass
class SandboxConfig:
    """Limits and isolation of each program run (see the module docstring)."""

    timeout_s: float = 10.0  # wall clock, whole run (program + all tests)
    cpu_s: int = 10
    memory_mb: int = 1024  # address space of each process
    max_processes: int = 64  # RLIMIT_NPROC of the sandbox uid
    max_open_files: int = 64
    max_file_mb: int = 16  # largest file a program may write (its captured output included)
    max_output_bytes: int = 1 << 16  # kept of stdout/stderr and of each captured output
    workers: int = 2
    isolation: Literal["auto", "namespaces", "none"] = "auto"  # auto: namespaces if they work
    user: str = "auto"  # auto: "nobody" when running as root; "none": keep the trainer's uid
    python: str = "auto"  # interpreter for programs; auto: the trainer's, else /usr/bin/python3
    guard: bool = True  # the in-process audit hook (see sandbox_harness)
    site_packages: bool = False  # let programs import the interpreter's installed packages
    tmp_dir: str | None = None  # where work dirs are made (default: the system's temp dir);
    # every directory above it must be searchable by the sandbox user

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.cpu_s < 1 or self.memory_mb < 64:
            raise ValueError("need timeout_s > 0, cpu_s >= 1 and memory_mb >= 64")
        if min(self.max_processes, self.max_open_files, self.max_file_mb, self.workers) < 1:
            raise ValueError("max_processes, max_open_files, max_file_mb and workers must be >= 1")


@dataclass
class Job:
    """One program and what to run against it.

    ``assert``: each of ``tests`` is executed after the program in its namespace; a test passes
    if it raises nothing. ``call``: ``entry`` (``"f"`` or ``"Solution.method"``) is called with
    each argument list of ``inputs``; results come back JSON-encoded for the caller to compare.
    ``stdio``: the program runs once per ``inputs`` text as its stdin; stdout comes back.
    """

    program: str
    mode: Literal["assert", "call", "stdio"] = "assert"
    tests: list[str] = field(default_factory=list)
    inputs: list[Any] = field(default_factory=list)
    entry: str = ""


@dataclass
class SandboxResult:
    """``finished``: the harness ran to the end and its report carries the sentinel. Then
    ``results`` has one entry per test: ``[passed, detail]`` (assert), ``["ok", json_text]`` or
    ``["error", detail]`` (call), ``["ok", stdout]`` or ``["error", detail]`` (stdio)."""

    finished: bool
    reason: str  # why it did not finish, or the program's own error ("" when all ran)
    results: list[Any]
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True)
class Launcher:
    """How programs are started here: the command prefix (namespaces), interpreter, and uid."""

    prefix: tuple[str, ...]
    python: str
    uid: int | None
    gid: int | None

    def describe(self) -> str:
        ns = "namespaces(net,pid,ipc,mount)" if self.prefix else "no namespaces"
        user = pwd.getpwuid(self.uid).pw_name if self.uid is not None else f"uid {os.geteuid()}"
        return f"{ns}, {user}, {self.python}"


class Sandbox:
    """Runs :class:`Job` s under a :class:`SandboxConfig`; ``run`` never raises."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config if config is not None else SandboxConfig()
        self.launcher = resolve_launcher(
            self.config.isolation, self.config.user, self.config.python
        )

    def run(self, jobs: list[Job]) -> list[SandboxResult]:
        """Run a batch on ``workers`` threads (each waits on its own process)."""
        if len(jobs) <= 1 or self.config.workers == 1:
            return [self.run_one(job) for job in jobs]
        with ThreadPoolExecutor(max_workers=self.config.workers) as pool:
            return list(pool.map(self.run_one, jobs))

    def run_one(self, job: Job) -> SandboxResult:
        start = time.monotonic()
        try:
            return run_job(self.launcher, self.config, job)
        except Exception as err:  # noqa: BLE001 - a sandbox failure scores 0, never kills a run
            log.warning("sandbox run failed: %r", err)
            return SandboxResult(False, f"sandbox error: {err!r}", [], "", "", _since(start))


def run_job(launcher: Launcher, cfg: SandboxConfig, job: Job) -> SandboxResult:
    """One program in a fresh work dir and process group (see the module docstring)."""
    start = time.monotonic()
    sentinel = secrets.token_hex(16).encode()
    workdir = tempfile.mkdtemp(prefix="trafl-sandbox-", dir=cfg.tmp_dir)
    files: list[Any] = []
    secret_r = -1
    try:
        if launcher.uid is not None:
            os.chown(workdir, launcher.uid, launcher.gid if launcher.gid is not None else -1)
        payload, out, err, report = files = [tempfile.TemporaryFile() for _ in range(4)]
        request = {"mode": job.mode, "program": job.program, "tests": job.tests}
        payload.write(json.dumps(request | {"inputs": job.inputs, "entry": job.entry}).encode())
        payload.seek(0)
        secret_r, secret_w = os.pipe()
        os.write(secret_w, sentinel)  # 32 bytes: fits the pipe buffer; EOF once it is read
        os.close(secret_w)
        cap = cfg.max_output_bytes
        settings = {
            "secret_fd": secret_r,
            "report_fd": report.fileno(),
            "max_output": cap,
            "guard": cfg.guard,
            "uid": launcher.uid,
            "gid": launcher.gid,
            "limits": {
                "RLIMIT_CPU": cfg.cpu_s,
                "RLIMIT_AS": cfg.memory_mb << 20,
                "RLIMIT_NPROC": cfg.max_processes,
                "RLIMIT_NOFILE": cfg.max_open_files,
                "RLIMIT_FSIZE": cfg.max_file_mb << 20,
                "RLIMIT_CORE": 0,
            },
        }
        site = [] if cfg.site_packages else ["-S"]  # -S: start faster, standard library only
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir}
        proc = subprocess.Popen(
            [*launcher.prefix, launcher.python, "-I", *site, "-c", HARNESS, json.dumps(settings)],
            stdin=payload,
            stdout=out,
            stderr=err,
            cwd=workdir,
            env=env | {"LANG": "C.UTF-8"},
            pass_fds=(secret_r, report.fileno()),
            start_new_session=True,
        )
        os.close(secret_r)
        secret_r = -1
        timed_out = not _wait_unreaped(proc.pid, start + cfg.timeout_s)
        _kill_group(proc.pid)  # the leader is not reaped yet: its group id cannot be reused
        returncode = proc.wait()
        stdout, stderr = _head(out, cap), _head(err, cap)
        report.seek(0)
        data = report.read((cfg.max_file_mb << 20) + 1)
    finally:
        if secret_r >= 0:
            os.close(secret_r)
        for f in files:
            f.close()
        _remove_tree(workdir)
    seconds = _since(start)
    if timed_out:
        reason = f"timeout: still running after {cfg.timeout_s:g} s"
        return SandboxResult(False, reason, [], stdout, stderr, seconds)
    parsed = _parse_report(data, sentinel)
    if parsed is None:
        return SandboxResult(False, _no_report(returncode, data), [], stdout, stderr, seconds)
    reason = f"program failed: {parsed['error']}" if parsed.get("error") else ""
    return SandboxResult(True, reason, list(parsed.get("results", [])), stdout, stderr, seconds)


def _parse_report(data: bytes, sentinel: bytes) -> dict[str, Any] | None:
    """The report only counts if the file is exactly ``JSON\\nSENTINEL\\n``: anything else
    (nothing, a truncated write, bytes the program wrote to the fd) is a failed run."""
    lines = data.split(b"\n")
    if len(lines) != 3 or lines[1] != sentinel or lines[2] != b"":
        return None
    try:
        parsed = json.loads(lines[0])
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _no_report(returncode: int, data: bytes) -> str:
    if returncode > 128 and returncode - 128 in signal.valid_signals():
        returncode = 128 - returncode  # passed on by the namespace's init (sandbox_harness)
    if returncode < 0:
        sig = signal.Signals(-returncode).name
        why = {
            "SIGXCPU": "CPU time limit",
            "SIGXFSZ": "file size / output limit",
            "SIGSEGV": "crash, e.g. recursion too deep",
            "SIGKILL": "killed (a limit or kill)",
        }.get(sig, "signal")
        return f"died: {sig} ({why}) before the tests finished"
    if data:
        return f"report without the sentinel (exit code {returncode}): output tampered with"
    if returncode == 0:
        return "exited with code 0 before the tests finished (no sentinel): early exit is no pass"
    return f"exited with code {returncode} before the tests finished"


def _wait_unreaped(pid: int, deadline: float) -> bool:
    """Wait until ``pid`` exits or ``deadline`` passes, leaving it a zombie (WNOWAIT) so that
    its process group id stays reserved until the group has been killed."""
    pause = _POLL_S[0]
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
                return True
        except ChildProcessError:
            return True
        now = time.monotonic()
        if now >= deadline:
            return False
        time.sleep(min(pause, deadline - now))
        pause = min(pause * 2, _POLL_S[1])


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _head(f: Any, cap: int) -> str:
    f.seek(0)
    return f.read(cap).decode("utf-8", "replace")


def _since(start: float) -> float:
    return time.monotonic() - start


def _remove_tree(path: str) -> None:
    """Remove a work dir, also when the program left unreadable or unwritable entries."""

    def fix(func: Any, name: str, _exc: Any) -> None:
        os.chmod(os.path.dirname(name), 0o700)
        if os.path.isdir(name) and not os.path.islink(name):
            os.chmod(name, 0o700)
        func(name)

    try:
        shutil.rmtree(path, onerror=fix)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- isolation probing


@cache
def resolve_launcher(isolation: str, user: str, python: str) -> Launcher:
    """The strongest launcher that actually works here, probed once per setting by running the
    harness on ``assert 1 + 1 == 2``. Weaker fallbacks are logged as warnings; a setting that
    asks for more than works here (``isolation=namespaces``, a named ``user``) is an error."""
    if isolation not in ("auto", "namespaces", "none"):
        raise ValueError(f"invalid isolation {isolation!r}; valid: 'auto', 'namespaces', 'none'")
    root = os.geteuid() == 0
    prefixes: list[tuple[str, ...]] = []
    unshare = shutil.which("unshare")
    if isolation != "none" and unshare:
        if root:
            prefixes.append((unshare, *_NAMESPACES))
        prefixes.append((unshare, "--user", "--map-root-user", *_NAMESPACES))
    if isolation != "namespaces":
        prefixes.append(())
    account = _account(user, root)
    pythons = [python] if python != "auto" else _interpreters()
    for prefix in prefixes:
        userns = "--user" in prefix
        drops = [account] if account and not userns else []
        if user == "auto" or account is None or userns:
            drops.append(None)
        for who in drops:
            for exe in pythons:
                uid, gid = (who.pw_uid, who.pw_gid) if who else (None, None)
                launcher = Launcher(prefix, exe, uid, gid)
                if _probe(launcher):
                    _warn_if_weak(launcher, root)
                    return launcher
    raise ValueError(
        f"no working sandbox for isolation={isolation!r}, user={user!r}, python={python!r}; "
        "valid: isolation 'auto' falls back to no namespaces, user 'none' keeps the trainer's "
        "uid, python names an interpreter the sandbox user can run"
    )


def _account(user: str, root: bool) -> pwd.struct_passwd | None:
    if user == "none" or (user == "auto" and not root):
        return None
    name = "nobody" if user == "auto" else user
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        if user == "auto":
            return None
        raise ValueError(
            f"sandbox user {name!r} does not exist; valid: 'auto', 'none', a user"
        ) from None
    if not root:
        raise ValueError(f"sandbox user {name!r} needs the trainer to run as root; use 'auto'")
    return account


def _interpreters() -> list[str]:
    found = [sys.executable, "/usr/bin/python3", shutil.which("python3") or ""]
    return [p for i, p in enumerate(found) if p and os.path.exists(p) and p not in found[:i]]


def _probe(launcher: Launcher) -> bool:
    cfg = SandboxConfig(timeout_s=20.0, cpu_s=10, isolation="none")
    # Imports after the uid drop: the interpreter's standard library must be readable by the
    # sandbox user (the harness's own imports happen before the drop and prove nothing).
    program = "import decimal, fractions, heapq, statistics\nx = 1"
    result = run_job(launcher, cfg, Job(program, tests=["assert x + 1 == 2"]))
    return result.finished and result.results == [[True, ""]]


def _warn_if_weak(launcher: Launcher, root: bool) -> None:
    if not launcher.prefix:
        log.warning(
            "sandbox: no network/PID namespaces here (unshare missing or not permitted); "
            "generated code has network access and can see the trainer's processes"
        )
    if launcher.uid is None:
        who = "root" if root and "--user" not in launcher.prefix else "the trainer's user"
        log.warning(
            "sandbox: generated code runs as %s (no separate uid: not root, or no interpreter "
            "'nobody' can read); file permissions do not protect the trainer's files, only the "
            "audit-hook guard does",
            who,
        )
    log.info("sandbox: %s", launcher.describe())
