"""One run of the harness on a program (:func:`attempt`): a fresh work dir, a uid and a cgroup of
its own where there are, its process group waited for until the deadline and then killed, and
its report read back only if it carries the run's sentinel. :mod:`trafl.rewards.sandbox` runs a
job's programs and replays through it and gives the verdicts."""

from __future__ import annotations

import fcntl
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
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from trafl.rewards import plain
from trafl.rewards.program_limits import Poller, ProgramLimits, program_limits
from trafl.rewards.sandbox_boot import boot
from trafl.rewards.sandbox_config import Job, SandboxConfig
from trafl.rewards.sandbox_launcher import UID_SLOTS, Launcher

__all__ = ["JOB_BUDGET", "HarnessRun", "attempt"]

_POLL_S = (0.0005, 0.02)  # first and largest sleep while waiting for a program
JOB_BUDGET = 3  # a job's program run and replays together: at most this many timeouts


@dataclass
class HarnessRun:
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


def attempt(
    launcher: Launcher,
    cfg: SandboxConfig,
    job: Job,
    tests: list[dict[str, Any]],
    deadline: float = float("inf"),
) -> HarnessRun:
    """Run the harness once on ``job`` with these test requests, as a uid and in a cgroup of
    its own (where there are), and read its report; ``timeout_s``, or less to end by
    ``deadline``."""
    start = time.monotonic()
    seconds = min(cfg.timeout_s, deadline - start)
    if seconds <= 0:
        return HarnessRun(
            False, f"timeout: the job's runs took {JOB_BUDGET} x timeout_s", [], "", ""
        )
    with _uid_slot(launcher) as uid, _program_limits(launcher, cfg, uid) as limits:
        ran = _launch(launcher, cfg, job, tests, uid, start + seconds, limits)
        killed = limits.killed()
    timed_out, returncode, stdout, stderr, data, sentinel = ran
    parsed = None if timed_out else _parse_report(data, sentinel)
    if parsed is None:
        timeout = f"timeout: still running after {seconds:g} s" if timed_out else ""
        reason = killed or timeout or _no_report(returncode, data)
        return HarnessRun(False, reason, [], stdout, stderr)
    reason = f"program failed: {parsed['error']}"[:400] if parsed.get("error") else ""
    results = parsed.get("results")
    return HarnessRun(
        True, reason, list(results) if isinstance(results, list) else [], stdout, stderr
    )


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
