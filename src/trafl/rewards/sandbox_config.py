"""What the sandbox is asked: its limits and isolation (:class:`SandboxConfig`) and one program
with its tests (:class:`Job`). :mod:`trafl.rewards.sandbox` says what each setting buys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from trafl.rewards.sandbox_launcher import UID_SLOTS
from trafl.rewards.trusted_eval import MAX_VALUE_BYTES

__all__ = ["Job", "SandboxConfig"]


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
