"""The limits one sandboxed program gets across all of its processes: a cgroup of its own
(:mod:`trafl.rewards.cgroups`) where there is one, else, when it has a uid of its own, its
processes' memory summed and checked while it runs (:class:`MemoryWatch`).

The tracked sum is the fallback, and weaker: it looks every :data:`WATCH_PERIOD_S` seconds,
so a program can briefly exceed it (by what it allocates in that time, each process still under
its address-space limit); it counts anonymous resident memory (``statm``: resident - shared),
which counts copy-on-write pages shared after ``fork`` once per process; and it does not see the
tmpfs (which has its own size limit).
"""

from __future__ import annotations

import os
import resource
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from trafl.rewards.cgroups import CgroupRoots, ProgramCgroup

WATCH_PERIOD_S = 0.05


class Poller(Protocol):
    """Looked at while a program runs (``now``: ``time.monotonic()``); may kill it."""

    def poll(self, now: float) -> None: ...


_PAGE = resource.getpagesize()


class MemoryWatch:
    """Kills every process of ``uid`` once their anonymous resident memory exceeds ``limit``."""

    def __init__(self, uid: int, limit_bytes: int) -> None:
        self.uid = uid
        self.limit = limit_bytes
        self.next = 0.0
        self.peak = 0
        self.tripped = False

    def poll(self, now: float) -> None:
        if now < self.next or self.tripped:
            return
        self.next = now + WATCH_PERIOD_S
        pids = _processes_of(self.uid)
        used = sum(_anonymous_bytes(pid) for pid in pids)
        self.peak = max(self.peak, used)
        if used > self.limit:
            self.tripped = True
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


def _processes_of(uid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    found.append(int(name))
            except OSError:
                continue
    return found


def _anonymous_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            fields = f.read().split()
        return (int(fields[1]) - int(fields[2])) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


@dataclass
class ProgramLimits:
    """What :func:`program_limits` set up: the cgroup files the harness joins, the watch."""

    memory_bytes: int
    cgroup: ProgramCgroup | None = None
    watch: Poller | None = None  # polled while the program runs
    procs: list[str] = field(default_factory=list)

    def killed(self) -> str:
        """Why the program was killed for memory ("" if it was not)."""
        limit = f"{self.memory_bytes >> 20} MiB"
        if self.cgroup is not None and self.cgroup.oom_killed():
            return f"killed: its processes together passed the memory limit ({limit}, cgroup)"
        if isinstance(self.watch, MemoryWatch) and self.watch.tripped:
            return f"killed: its processes together passed the memory limit ({limit}, tracked)"
        return ""


@contextmanager
def program_limits(
    roots: CgroupRoots | None, uid: int | None, own_uid: bool, memory_bytes: int, tasks: int
) -> Iterator[ProgramLimits]:
    """A cgroup for one program (``roots``), else a :class:`MemoryWatch` of its uid when the
    uid is its alone (``own_uid``), else nothing; removed, with what is left in it, at exit."""
    limits = ProgramLimits(memory_bytes)
    if roots is not None:
        limits.cgroup = ProgramCgroup(roots, memory_bytes, tasks)
        limits.procs = limits.cgroup.procs
        limits.watch = limits.cgroup
    elif own_uid and uid is not None:
        limits.watch = MemoryWatch(uid, memory_bytes)
        limits.watch.next = time.monotonic() + WATCH_PERIOD_S
    try:
        yield limits
    finally:
        if limits.cgroup is not None:
            limits.cgroup.close()
