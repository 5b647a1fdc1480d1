"""A small process pool whose jobs can hang or crash without harming the caller.

Why not ``concurrent.futures.ProcessPoolExecutor``: a future that times out leaves its worker
busy forever (it cannot be cancelled), and one worker that dies breaks the whole executor. Reward
checks run on model output, so both happen: math-verify can spin for minutes inside sympy on a
pathological expression, and a memory limit can kill a worker. Here every worker is a process
with its own pipe, a job has a deadline from the moment it is handed to a worker, and a worker
that misses it is killed and replaced; the job's result is a :class:`JobFailed` and never an
exception. Processes (not threads) also because math-verify's own timeouts use ``signal.alarm``,
which raises off the main thread.

Workers are fresh interpreters (``python -c``), not ``multiprocessing`` children: ``spawn`` and
``forkserver`` re-import the caller's ``__main__``, which in a training script without an
``if __name__ == "__main__"`` guard would start the whole run again in every worker, and
``fork`` copies a trainer's threads and locks. A worker talks to us over a socket pair of
pickles; it exits when the socket closes, so it never outlives its pool.

Jobs are ``fn(*args)`` with ``fn`` a module-level function (pickled by reference, so a worker
imports its module; the worker sees our ``sys.path``), so a test can send any function through
the same entry point that the math checker uses.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

_STARTUP_TIMEOUT_S = (
    120.0  # a worker that is not ready by then is replaced (imports on a busy host)
)


class JobFailed(NamedTuple):
    """The result of a job that did not return: ``"timeout"``, ``"crash"`` or ``"error: ..."``."""

    reason: str


def serve(fd: int) -> None:
    """A worker's life, on the socket ``fd``: receive ``(memory_limit_mb, init)``, set up, say
    ready, then answer ``(job_id, fn, args)`` with ``(job_id, ok, value)`` until None or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    conn = Connection(fd)
    try:
        memory_limit_mb, init = conn.recv()
    except (EOFError, OSError):
        return
    if memory_limit_mb:
        import resource

        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if init is not None:
        init()
    conn.send(("ready", True, None))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        job_id, fn, args = msg
        try:
            reply = (job_id, True, fn(*args))
        except BaseException as err:  # noqa: BLE001 - report, never die of a job's exception
            reply = (job_id, False, f"error: {type(err).__name__}: {str(err)[:200]}")
        conn.send(reply)


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    started: float
    ready: bool = False
    job: int | None = None  # index of the job it is running
    deadline: float = 0.0


class WorkerPool:
    """``num_workers`` processes running ``fn(*args)`` jobs with a per-job timeout.

    Workers start lazily on the first :meth:`run`. ``init`` runs once in each new worker (warm-up
    imports), before it counts as ready, so start-up time never eats into a job's timeout.
    Thread-safe: concurrent :meth:`run` calls are serialised.
    """

    def __init__(
        self,
        num_workers: int = 2,
        memory_limit_mb: int | None = None,
        init: Callable[[], None] | None = None,
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        self.num_workers = num_workers
        self.memory_limit_mb = memory_limit_mb
        self.init = init
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self.num_timeouts = 0
        self.num_crashes = 0
        self.num_restarts = 0
        self._failed_starts = 0  # workers that died before ready, since one last became ready

    # ----------------------------------------------------------------- workers

    def _start_worker(self) -> _Worker:
        ours, theirs = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p or os.getcwd() for p in sys.path))
        code = "import sys; from trafl.rewards.workers import serve; serve(int(sys.argv[1]))"
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", code, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                env=env,
            )
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        conn.send((self.memory_limit_mb, self.init))
        return _Worker(process, conn, time.monotonic())

    def _replace(self, worker: _Worker) -> _Worker:
        """Kill ``worker`` (whatever it is doing) and start a fresh one in its place."""
        _kill(worker)
        self.num_restarts += 1
        fresh = self._start_worker()
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    def _ensure_started(self) -> None:
        if self._pid != os.getpid():  # we were forked: the workers belong to the parent
            self._workers, self._pid = [], os.getpid()
        while len(self._workers) < self.num_workers:
            self._workers.append(self._start_worker())

    # ----------------------------------------------------------------- jobs

    def run(
        self, fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]], timeout_s: float
    ) -> list[Any]:
        """``[fn(*args) for args in jobs]`` across the workers; a job that raises, overruns
        ``timeout_s`` or kills its worker gives a :class:`JobFailed` instead. Never raises
        because of a job."""
        results: list[Any] = [JobFailed("not run")] * len(jobs)
        if not jobs:
            return results
        with self._lock:
            self._ensure_started()
            pending = deque(range(len(jobs)))
            running = 0
            while pending or running:
                now = time.monotonic()
                for w in self._workers:  # hand out work
                    if w.ready and w.job is None and pending:
                        i = pending.popleft()
                        try:
                            w.conn.send((i, fn, jobs[i]))
                        except (OSError, ValueError) as err:  # dead pipe, or unpicklable job
                            results[i] = JobFailed(f"error: could not send job: {err}")
                            if isinstance(err, OSError):
                                self._replace(w)
                            continue
                        w.job, w.deadline = i, now + timeout_s
                        running += 1
                if pending and not running and self._failed_starts > 3 * self.num_workers:
                    log.error("reward workers keep dying at start-up; %d jobs fail", len(pending))
                    for i in pending:
                        results[i] = JobFailed("error: workers die at start-up")
                    break
                running -= self._collect(results, timeout_s)
        return results

    def _collect(self, results: list[Any], timeout_s: float) -> int:
        """Wait for the next event (a reply, a death or a deadline); returns jobs finished."""
        now = time.monotonic()
        deadlines = [w.deadline for w in self._workers if w.job is not None]
        deadlines += [w.started + _STARTUP_TIMEOUT_S for w in self._workers if not w.ready]
        wait_s = max(0.0, min(deadlines, default=now + timeout_s) - now)
        ready = set(wait([w.conn for w in self._workers], timeout=wait_s))  # EOF wakes us too
        finished = 0
        for w in list(self._workers):
            if w.conn in ready:
                try:
                    job_id, ok, value = w.conn.recv()
                except (EOFError, OSError):
                    finished += self._fail(w, results, "crash")
                    continue
                if job_id == "ready":
                    w.ready, self._failed_starts = True, 0
                elif job_id == w.job:
                    results[job_id] = value if ok else JobFailed(value)
                    w.job = None
                    finished += 1
        now = time.monotonic()
        for w in list(self._workers):
            if w.job is not None and now >= w.deadline:
                finished += self._fail(w, results, "timeout")
            elif not w.ready and now >= w.started + _STARTUP_TIMEOUT_S:
                log.warning(
                    "a reward worker did not start in %.0f s; replacing it", _STARTUP_TIMEOUT_S
                )
                self._replace(w)
        return finished

    def _fail(self, worker: _Worker, results: list[Any], reason: str) -> int:
        """Record ``reason`` for the worker's job (if any) and replace the worker."""
        job = worker.job
        if not worker.ready:
            self._failed_starts += 1
        if reason == "timeout":
            self.num_timeouts += 1
        else:
            self.num_crashes += 1
        if job is not None:
            results[job] = JobFailed(reason)
            log.debug("reward job %s: %s; its worker is replaced", job, reason)
        self._replace(worker)
        return 0 if job is None else 1

    # ----------------------------------------------------------------- shutdown

    def close(self) -> None:
        """Stop every worker (politely, then by force). The pool restarts if used again."""
        with self._lock:
            for w in self._workers:
                try:
                    w.conn.send(None)
                except (OSError, ValueError):
                    pass
            for w in self._workers:
                try:
                    w.process.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    pass
                _kill(w)
            self._workers = []

    def __del__(self) -> None:  # best effort; workers also exit when their socket closes
        try:
            if self._pid == os.getpid():
                for w in self._workers:
                    _kill(w)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _kill(worker: _Worker) -> None:
    if worker.process.poll() is None:
        worker.process.kill()
    try:
        worker.process.wait(timeout=5.0)
    except subprocess.TimeoutExpired:  # unkillable (stuck in the kernel): leave it be
        log.warning("reward worker %d did not exit after SIGKILL", worker.process.pid)
    worker.conn.close()
