"""Run untrusted generated Python programs against tests, so that code rewards can be computed
during training without trusting the policy's output.

Here: a job's runs and their verdicts. One run of a program is :mod:`.sandbox_process`, what it
is asked :mod:`.sandbox_config`, how it is isolated :mod:`.sandbox_launcher`.

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

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

from trafl.rewards import replay
from trafl.rewards.assert_split import TestPlan, plan_for, verdict
from trafl.rewards.sandbox_config import Job, SandboxConfig
from trafl.rewards.sandbox_launcher import Launcher, find_launcher
from trafl.rewards.sandbox_process import JOB_BUDGET, attempt

__all__ = ["JOB_BUDGET", "Job", "Sandbox", "SandboxConfig", "SandboxResult", "resolve_launcher"]

log = logging.getLogger(__name__)


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
        return attempt(launcher, cfg, Job(program, "assert"), tests, deadline[0]).outcome()

    def more(tests: list[dict[str, Any]]) -> list[Any] | str:
        return attempt(launcher, cfg, job, tests, deadline[0]).outcome()

    prepared = {
        i: replay.prepare(p.replay, job.reference, reference)  # cached: trusted, deterministic
        for i, p in enumerate(plans)
        if p.replay
    }
    tests = [_request(p, prepared.get(i)) for i, p in enumerate(plans)]
    deadline[0] = time.monotonic() + JOB_BUDGET * cfg.timeout_s
    run = attempt(launcher, cfg, job, tests)
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


def _since(start: float) -> float:
    return time.monotonic() - start


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
