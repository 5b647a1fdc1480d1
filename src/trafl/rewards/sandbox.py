"""Run untrusted generated Python programs against tests, so that code rewards can be computed
during training without trusting the policy's output.

**What each run gets** (the in-sandbox half is :mod:`trafl.rewards.sandbox_harness`):

* **a verdict it cannot reach**: assert-style tests are split (:mod:`trafl.rewards.assert_split`)
  into the expressions that need the program, evaluated in the sandbox and sent back as plain
  data of exact types, and the comparison, made here; tests that do not split (loops,
  assignments, helpers computing the expected side) are replayed (:mod:`trafl.rewards.replay`):
  runs holding only the test and the task's trusted ``reference`` record the calls and, on the
  program's answers, give the verdict. ``call`` and ``stdio`` results are compared by the task,
  here, too. The expected values never enter the program's process, so a program that replaces
  the harness's runner, rewrites its request, redefines a helper, patches builtins or forges its
  report can only change its own answers, and always-equal objects or ``int`` subclasses are not
  plain data;
* an environment holding nothing of the trainer's (no API tokens, no sentinel);
* where the kernel allows it (probed at first use, never assumed): new network, PID, IPC and
  mount namespaces through ``unshare`` (as root, or through a user namespace otherwise). No
  network at all (only a downed loopback), its own /proc, no view of or signal to the trainer's
  processes; when the namespace's first process dies, the kernel kills every process in it;
* with the mount namespace, **a read-only host and a private disk**: every mount made
  read-only (``mount_setattr``), then one tmpfs of ``max_disk_mb`` on /tmp, shared with
  /var/tmp, /dev/shm and the work dir by bind mounts, the only places it can write (not
  /run/lock, not a world-writable folder of the host); no other program or host process sees
  it, and it vanishes with the namespace (the host work dir stays empty and is removed);
* then, where ``pivot_root`` works, **only the system's software in view**: a new root holding
  read-only binds of /usr, /bin, /sbin, /lib*, /etc, /dev, /proc and the interpreter's own
  lib and bin, plus the private folders; the old root is detached. No /home, /root, /srv,
  /opt, no dataset (whose answers a program could look up), checkpoint or source tree of the
  trainer's, and every site-packages an empty folder unless ``site_packages`` (a package may
  carry a benchmark's solutions) (``Launcher.hidden``; without it a warning says what stays
  readable). In a user namespace, where the program is its namespace's root, a nested one
  locks those mounts read-only (a remount cannot make them writable);
* as root, **a cgroup of its own** (:mod:`trafl.rewards.cgroups`; v2, else v1): one memory limit
  of ``memory_mb + max_disk_mb`` for all its processes and its tmpfs (past it the whole program
  is killed, with the reason), and ``pids.max`` of ``max_processes`` whatever uid they run as;
  everything left in it is killed at the end. Without a cgroup but with a uid of its own, the
  memory of its processes is summed and checked while it runs (:mod:`.program_limits`);
* when the trainer runs as root, **a uid of its own**: one of ``UID_SLOTS`` uids from
  ``uid_base`` (a range with no accounts), held through a lock file for the run, so that file
  permissions separate concurrent programs and RLIMIT_NPROC counts this program's processes
  only (a fork bomb cannot starve its neighbour); at the end the harness kills every process of
  that uid. Falls back to ``nobody`` (shared by all programs) if the range is taken;
* resource limits: CPU seconds, address space, processes, open files, file size, no core dumps;
  a wall-clock timeout after which its whole process group is killed (and, with namespaces, the
  whole namespace); stdout/stderr and each captured output are capped;
* ``stdio`` cases run as forked children writing into a pipe that only the harness reads;
* a random sentinel (:mod:`secrets`, 128 bits) that the harness reads from an inherited pipe
  only after the program and all tests have run, and writes after its report. A run without it
  scores 0: ``exit(0)``/``os._exit(0)``/a signal before the tests finish is no pass;
* a thread pool of ``workers`` runs batches in parallel; nothing raises into the trainer: every
  failure (timeout, crash, limit, sandbox error) is a result with a reason and fails its tests.

**Limits, honestly:**

* What replay cannot take runs inside as before, and a program written against this harness can
  forge its pass flag: a test that branches on a program's value outside an assert
  (``if f(x):``), passes it a function or object, or keeps a program's object in a variable
  (``x = Solution(); x.solve(1)``); a test whose helpers the job's ``reference`` lacks. (In
  HumanEval none: 157 of 164 split, the other 7 replay.) Replay assumes the program's functions
  are functions of their arguments: a call is asked once per distinct argument list.
* Without a cgroup (not root, or no writable v1/v2 hierarchy with memory and pids), memory is
  bounded per process (address space); with a uid per program the sum over its processes is
  checked every 50 ms (a burst can pass it briefly; copy-on-write pages count once per process;
  the tmpfs has only its own size limit), and without one it is bounded only by address space
  times the process limit. Without a uid per program and without a cgroup, concurrent programs
  share one process limit.
* Without namespaces (no ``unshare``, no user namespaces) there is no network isolation and no
  private /tmp (what a program writes to /tmp, /var/tmp or /dev/shm stays, and other programs
  see it); without the uid drop (trainer not root, or no interpreter the sandbox uid can read)
  the program has the trainer's uid: it can read and write what the trainer can, signal its
  processes, and RLIMIT_NPROC counts all of that user's processes (as root it is not enforced
  at all). The audit-hook guard then stops plain ``open(..., "w")`` outside the work dir,
  ``os.kill`` of other processes and sockets, but ctypes or a shell get around it. Each missing
  layer is logged once as a warning. Without namespaces, children that call ``setsid`` escape
  the process-group kill (a cgroup or a uid per program still ends them at the end, unless the
  program exits early in the uid case).
* The program can read world-readable files of the system's software (/usr, /etc, installed
  packages under /usr); without ``pivot_root`` every world-readable file of the host, a
  dataset's answers included (a warning says so).
"""

from __future__ import annotations

import fcntl
import logging
import marshal
import os
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from trafl.rewards import plain, replay
from trafl.rewards.assert_split import TestPlan, plan_for, verdict
from trafl.rewards.program_limits import Poller, ProgramLimits, program_limits
from trafl.rewards.sandbox_boot import boot
from trafl.rewards.sandbox_launcher import UID_SLOTS, Launcher, find_launcher
from trafl.rewards.trusted_eval import MAX_VALUE_BYTES

log = logging.getLogger(__name__)

_POLL_S = (0.0005, 0.02)  # first and largest sleep while waiting for a program
JOB_BUDGET = 3  # a job's program run and replays together: at most this many timeouts


@dataclass
class SandboxConfig:
    """Limits and isolation of each program run (see the module docstring)."""

    timeout_s: float = 10.0  # wall clock, whole run (program + all tests)
    cpu_s: int = 10
    memory_mb: int = 1024  # address space of each process; with a cgroup (or the tracked
    # sum) also the resident memory of all of a program's processes, + max_disk_mb for its tmpfs
    max_processes: int = 64  # processes and threads of one program (cgroup pids.max, RLIMIT_NPROC)
    max_open_files: int = 64
    max_file_mb: int = 16  # largest file a program may write (its captured output included)
    max_disk_mb: int = 64  # its private tmpfs: /tmp, /var/tmp, /dev/shm and the work dir
    max_output_bytes: int = MAX_VALUE_BYTES  # kept of stdout/stderr and of each captured output
    workers: int = 2
    isolation: Literal["auto", "namespaces", "none"] = "auto"  # auto: namespaces if they work
    user: str = "auto"  # auto: as root, one uid per worker slot from uid_base; "none": keep ours
    uid_base: int = 1_950_000_000  # first of UID_SLOTS uids reserved for programs (no accounts)
    python: str = "auto"  # interpreter for programs; auto: the trainer's, else /usr/bin/python3
    guard: bool = True  # the in-process audit hook (see sandbox_harness)
    site_packages: bool = False  # let programs import the interpreter's installed packages
    tmp_dir: str | None = None  # where work dirs are made (default: the system's temp dir);
    # every directory above it must be searchable by the sandbox user
    cgroup: str = "auto"  # auto: a cgroup per program where possible (v2, else v1); "none"; or
    # a cgroup v2 folder to make them in (e.g. a systemd unit's delegated subtree)

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.cpu_s < 1 or self.memory_mb < 64:
            raise ValueError("need timeout_s > 0, cpu_s >= 1 and memory_mb >= 64")
        if min(self.max_processes, self.max_open_files, self.max_file_mb, self.workers) < 1:
            raise ValueError("max_processes, max_open_files, max_file_mb and workers must be >= 1")
        if self.max_disk_mb < 1 or not 0 < self.uid_base < 2**32 - UID_SLOTS - 1:
            raise ValueError(f"need max_disk_mb >= 1 and 0 < uid_base < {2**32 - UID_SLOTS - 1}")


@dataclass
class Job:
    """One program and what to run against it.

    ``assert``: each of ``tests`` is executed after the program in its namespace; a test passes
    if it raises nothing. ``call``: ``entry`` (``"f"`` or ``"Solution.method"``) is called with
    each argument list of ``inputs``; results come back JSON-encoded for the caller to compare.
    ``stdio``: the program runs once per ``inputs`` text as its stdin; stdout comes back.

    ``reference``: trusted code that assert tests may use besides the program (HumanEval's prompt,
    with helpers such as ``encode_cyclic``); replayed tests (:mod:`trafl.rewards.replay`) run it
    with the test, without the program, to compute the expected side.
    """

    program: str
    mode: Literal["assert", "call", "stdio"] = "assert"
    tests: list[str] = field(default_factory=list)
    inputs: list[Any] = field(default_factory=list)
    entry: str = ""
    reference: str = ""


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


class Sandbox:
    """Runs :class:`Job` s under a :class:`SandboxConfig`; ``run`` never raises."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config if config is not None else SandboxConfig()
        cfg = self.config
        self.launcher = resolve_launcher(
            cfg.isolation, cfg.user, cfg.python, cfg.uid_base, cfg.cgroup
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
    """One program in a fresh work dir and process group (see the module docstring); assert
    tests that are replayed add runs of the reference (before and after) and, if the replay
    asks for more, of the program. From the program's first run on, all of a job's runs share
    :data:`JOB_BUDGET` times ``timeout_s``: a program cannot make its replays cost more."""
    start = time.monotonic()
    plans = [plan_for(t, job.reference) for t in job.tests] if job.mode == "assert" else []
    deadline = [float("inf")]

    def reference(program: str, tests: list[dict[str, Any]]) -> list[Any] | str:
        return _attempt(launcher, cfg, Job(program, "assert"), tests, deadline[0]).outcome()

    def more(tests: list[dict[str, Any]]) -> list[Any] | str:
        return _attempt(launcher, cfg, job, tests, deadline[0]).outcome()

    prepared = {
        i: replay.prepare(p.replay, job.reference, reference)  # cached: trusted, deterministic
        for i, p in enumerate(plans)
        if p.replay
    }
    tests = [_request(p, prepared.get(i)) for i, p in enumerate(plans)]
    deadline[0] = time.monotonic() + JOB_BUDGET * cfg.timeout_s
    run = _attempt(launcher, cfg, job, tests)
    if not run.finished or job.mode != "assert":
        return SandboxResult(
            run.finished, run.reason, run.results, run.stdout, run.stderr, _since(start)
        )
    if len(run.results) != len(plans):
        return SandboxResult(False, "malformed report", [], run.stdout, run.stderr, _since(start))
    results = []
    cap = cfg.max_output_bytes
    for i, (p, r) in enumerate(zip(plans, run.results, strict=True)):
        q = prepared.get(i)
        if q is None:
            results.append(list(verdict(p, r, cap)))
        elif isinstance(q, str):  # the record run failed: the test fails (see replay.prepare)
            results.append([False, q[:300]])
        elif isinstance(r, list) and len(r) == 2 and r[0] is False:  # the program failed
            results.append([False, str(r[1])[:300]])
        else:
            answers = replay.answers_of(r, len(q.calls), cap)
            results.append(list(replay.judge(q, answers, job.reference, reference, more, cap)))
    return SandboxResult(True, run.reason, results, run.stdout, run.stderr, _since(start))


def _request(test_plan: TestPlan, prepared: replay.Prepared | str | None) -> dict[str, Any]:
    """What the program's run gets for one test: its expressions, the replay's calls, nothing
    (the record run failed and the test fails anyway), or the test itself (inside)."""
    if isinstance(prepared, replay.Prepared):
        return prepared.request()
    return {"calls": []} if isinstance(prepared, str) else test_plan.request()


@dataclass
class _Run:
    """One harness run: finished (the report carried the sentinel) with its results, or why
    not."""

    finished: bool
    reason: str
    results: list[Any]
    stdout: str
    stderr: str

    def outcome(self) -> list[Any] | str:
        """The results of a run that finished, else why it did not (for :mod:`.replay`)."""
        return self.results if self.finished else self.reason or "did not finish"


def _attempt(
    launcher: Launcher,
    cfg: SandboxConfig,
    job: Job,
    tests: list[dict[str, Any]],
    deadline: float = float("inf"),
) -> _Run:
    """Run the harness once on ``job`` with these test requests, as a uid and in a cgroup of
    its own (where there are), and read its report; ``timeout_s``, or less to end by
    ``deadline``."""
    start = time.monotonic()
    seconds = min(cfg.timeout_s, deadline - start)
    if seconds <= 0:
        return _Run(False, f"timeout: the job's runs took {JOB_BUDGET} x timeout_s", [], "", "")
    with _uid_slot(launcher) as uid, _program_limits(launcher, cfg, uid) as limits:
        ran = _launch(launcher, cfg, job, tests, uid, start + seconds, limits)
        killed = limits.killed()
    timed_out, returncode, stdout, stderr, data, sentinel = ran
    parsed = None if timed_out else _parse_report(data, sentinel)
    if parsed is None:
        timeout = f"timeout: still running after {seconds:g} s" if timed_out else ""
        reason = killed or timeout or _no_report(returncode, data)
        return _Run(False, reason, [], stdout, stderr)
    reason = f"program failed: {parsed['error']}"[:400] if parsed.get("error") else ""
    results = parsed.get("results")
    return _Run(True, reason, list(results) if isinstance(results, list) else [], stdout, stderr)


def _launch(
    launcher: Launcher,
    cfg: SandboxConfig,
    job: Job,
    tests: list[dict[str, Any]],
    uid: int | None,
    deadline: float,
    limits: ProgramLimits,
) -> tuple[bool, int, str, str, bytes, bytes]:
    """Start the harness on ``job`` as ``uid`` and wait for it until ``deadline``; returns
    (timed out, exit code, stdout, stderr, report bytes, sentinel)."""
    sentinel = secrets.token_hex(16).encode()
    workdir = tempfile.mkdtemp(prefix="trafl-sandbox-", dir=cfg.tmp_dir)
    gid = uid if launcher.slots else launcher.gid
    files: list[Any] = []
    secret_r = -1
    try:
        if uid is not None:
            os.chown(workdir, uid, gid if gid is not None else -1)
        payload, out, err, report = files = [tempfile.TemporaryFile() for _ in range(4)]
        request = {"mode": job.mode, "program": job.program, "tests": tests}
        # marshal (version 4, read by every Python 3.4+): the harness need not import json
        payload.write(marshal.dumps(request | {"inputs": job.inputs, "entry": job.entry}, 4))
        payload.seek(0)
        secret_r, secret_w = os.pipe()
        os.write(secret_w, sentinel)  # 32 bytes: fits the pipe buffer; EOF once it is read
        os.close(secret_w)
        settings = _settings(cfg, launcher, uid, gid, secret_r, report.fileno())
        settings["cgroup_procs"] = limits.procs
        site = [] if cfg.site_packages else ["-S"]  # -S: start faster, standard library only
        code, code_fd = boot(launcher.python)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir}
        proc = subprocess.Popen(
            [
                *launcher.prefix,
                launcher.python,
                "-I",
                *site,
                "-c",
                code,
                marshal.dumps(settings, 4).hex(),
            ],
            stdin=payload,
            stdout=out,
            stderr=err,
            cwd=workdir,
            env=env | {"LANG": "C.UTF-8"},
            pass_fds=(secret_r, report.fileno(), *code_fd),
            start_new_session=True,
        )
        os.close(secret_r)
        secret_r = -1
        timed_out = not _wait_unreaped(proc.pid, deadline, limits.watch)
        _kill_group(proc.pid)  # the leader is not reaped yet: its group id cannot be reused
        returncode = proc.wait()
        cap = cfg.max_output_bytes
        stdout, stderr = _head(out, cap), _head(err, cap)
        report.seek(0)
        data = report.read((cfg.max_file_mb << 20) + 1)
    finally:
        if secret_r >= 0:
            os.close(secret_r)
        for f in files:
            f.close()
        _remove_tree(workdir)
    return timed_out, returncode, stdout, stderr, data, sentinel


def _settings(
    cfg: SandboxConfig,
    launcher: Launcher,
    uid: int | None,
    gid: int | None,
    secret: int,
    report: int,
) -> dict[str, Any]:
    return {
        "secret_fd": secret,
        "report_fd": report,
        "max_output": cfg.max_output_bytes,
        "guard": cfg.guard,
        "uid": uid,
        "gid": gid,
        "kill_uid": launcher.slots,  # the uid is this program's alone: end all its processes
        "private_mb": cfg.max_disk_mb if launcher.private else 0,
        "hide_host": launcher.hidden,
        "hide_packages": not cfg.site_packages,
        "lock_mounts": launcher.private and "--user" in launcher.prefix,
        "limits": {
            "RLIMIT_CPU": cfg.cpu_s,
            "RLIMIT_AS": cfg.memory_mb << 20,
            "RLIMIT_NPROC": cfg.max_processes
            if launcher.slots or not launcher.cgroup
            # a uid shared by all programs: their cgroups' pids.max is the per-program limit
            else cfg.max_processes * UID_SLOTS,
            "RLIMIT_NOFILE": cfg.max_open_files,
            "RLIMIT_FSIZE": cfg.max_file_mb << 20,
            "RLIMIT_CORE": 0,
        },
    }


def _program_limits(
    launcher: Launcher, cfg: SandboxConfig, uid: int | None
) -> AbstractContextManager[ProgramLimits]:
    """One memory limit for all of the program's processes (with its tmpfs where that is
    charged: in a cgroup) and one process limit (the namespace's init is the one more)."""
    tmpfs = cfg.max_disk_mb if launcher.private and launcher.cgroup else 0
    memory = (cfg.memory_mb + tmpfs) << 20
    return program_limits(launcher.cgroup, uid, launcher.slots, memory, cfg.max_processes + 1)


@contextmanager
def _uid_slot(launcher: Launcher) -> Iterator[int | None]:
    """A uid that no other running program has: ``flock`` on a file per uid in a root-owned
    folder, so that threads and other trainer processes on this host never share one."""
    if not launcher.slots or launcher.uid is None:
        yield launcher.uid
        return
    folder = _slot_folder()
    first = secrets.randbelow(UID_SLOTS)
    for i in range(UID_SLOTS):
        slot = (first + i) % UID_SLOTS
        fd = os.open(os.path.join(folder, str(slot)), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield launcher.uid + slot
        finally:
            os.close(fd)  # releases the lock
        return
    raise RuntimeError(f"all {UID_SLOTS} sandbox uids are busy")


@cache
def _slot_folder() -> str:
    base = "/run" if os.access("/run", os.W_OK) else tempfile.gettempdir()
    folder = os.path.join(base, "trafl-sandbox-uids")
    os.makedirs(folder, 0o700, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise RuntimeError(f"{folder} is not a private folder of ours: remove it")
    return folder


def _parse_report(data: bytes, sentinel: bytes) -> dict[str, Any] | None:
    """The report only counts if the file is exactly ``JSON\\nSENTINEL\\n``: anything else
    (nothing, a truncated write, bytes the program wrote to the fd) is a failed run."""
    lines = data.split(b"\n")
    if len(lines) != 3 or lines[1] != sentinel or lines[2] != b"":
        return None
    try:
        parsed = plain.loads(lines[0])
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


def _wait_unreaped(pid: int, deadline: float, watch: Poller | None = None) -> bool:
    """Wait until ``pid`` exits or ``deadline`` passes, leaving it a zombie (WNOWAIT) so that
    its process group id stays reserved until the group has been killed. ``watch`` (the tracked
    memory sum, where there is no cgroup) may kill the program meanwhile."""
    pause = _POLL_S[0]
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
                return True
        except ChildProcessError:
            return True
        now = time.monotonic()
        if watch is not None:
            watch.poll(now)
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
def resolve_launcher(
    isolation: str,
    user: str,
    python: str,
    uid_base: int = SandboxConfig.uid_base,
    cgroup: str = "auto",
) -> Launcher:
    """The strongest launcher that works here (:func:`.sandbox_launcher.find_launcher`), probed
    once per setting by running the harness on ``assert x + 1 == 2``."""
    return find_launcher(isolation, user, python, uid_base, cgroup, _probe)


def _probe(launcher: Launcher) -> bool:
    cfg = SandboxConfig(timeout_s=20.0, cpu_s=10, isolation="none")
    # Imports after the uid drop: the interpreter's standard library must be readable by the
    # sandbox user (the harness's own imports happen before the drop and prove nothing).
    program = "import decimal, fractions, heapq, statistics\nx = 1"
    result = run_job(launcher, cfg, Job(program, tests=["assert x + 1 == 2"]))
    return result.finished and result.results == [[True, ""]]
