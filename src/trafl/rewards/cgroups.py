"""A cgroup per sandboxed program: one memory limit for all of its processes (its tmpfs pages
included, which the kernel charges to the cgroup of the process that writes them) and one
process/thread limit, whatever uid its processes run as.

Where (probed once, never assumed): cgroup v2, when the trainer's own cgroup has the ``memory``
and ``pids`` controllers in ``cgroup.subtree_control`` or may enable them (the root cgroup, or a
folder named by ``SandboxConfig.cgroup``, e.g. a systemd ``Delegate=yes`` unit's subtree);
otherwise cgroup v1, when the ``memory`` and ``pids`` hierarchies are mounted and writable
(as root). Each program gets ``trafl-<trainer pid>-<random>`` under the trainer's cgroup of
each controller; the harness moves itself in (writing ``0`` to ``cgroup.procs``) as its first
act, before anything of the program exists, and the unprivileged program cannot move out (the
files are root's). Afterwards every process left in it is killed and the folder removed; folders
of trainers that died are removed at the next probe.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_PREFIX = "trafl-"
_REMOVE_S = 2.0  # how long removal waits for killed processes to leave a cgroup
POLL_S = 0.05  # how often a v1 cgroup is checked for an OOM kill while its program runs


@dataclass(frozen=True)
class CgroupRoots:
    """Folders under which per-program cgroups are made (the same folder twice on v2)."""

    version: int
    memory: str
    pids: str

    def describe(self) -> str:
        where = self.memory if self.version == 2 else f"{self.memory}, {self.pids}"
        return f"a cgroup v{self.version} per program ({where})"


class ProgramCgroup:
    """One program's cgroup(s); :attr:`procs` are the files the harness writes ``0`` into."""

    def __init__(self, roots: CgroupRoots, memory_bytes: int, max_tasks: int) -> None:
        self.roots = roots
        self.next_poll, self.ended = time.monotonic() + POLL_S, False
        name = f"{_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
        self.dirs = [Path(roots.memory) / name]
        if roots.pids != roots.memory:
            self.dirs.append(Path(roots.pids) / name)
        made: list[Path] = []
        try:
            for folder in self.dirs:
                folder.mkdir(mode=0o755)
                made.append(folder)
            _set_limits(roots.version, self.dirs[0], self.dirs[-1], memory_bytes, max_tasks)
        except BaseException:
            self.dirs = made
            self.close()
            raise
        self.procs = [str(d / "cgroup.procs") for d in self.dirs]

    def poll(self, now: float) -> None:
        """Once the kernel has killed one of its processes for memory, kill all the others (v2
        does so itself with ``memory.oom.group``): a program past its limit ends, whole, now."""
        if now >= self.next_poll and self.roots.version == 1 and not self.ended:
            self.next_poll = now + POLL_S
            if self.oom_killed():
                self.ended = True
                _kill_members(self.dirs[0])

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this program for its memory limit."""
        name = "memory.events" if self.roots.version == 2 else "memory.oom_control"
        try:
            text = (self.dirs[0] / name).read_text()
        except OSError:
            return False
        counts = dict(line.split()[:2] for line in text.splitlines() if len(line.split()) >= 2)
        return any(int(counts.get(key, "0")) > 0 for key in ("oom_kill", "oom_group_kill"))

    def close(self) -> None:
        """Kill whatever is left in it and remove its folders (retrying while they empty)."""
        deadline = time.monotonic() + _REMOVE_S
        for folder in self.dirs:
            kill = folder / "cgroup.kill"
            if kill.exists():
                _write(kill, "1")
        pending = list(self.dirs)
        while pending:
            for folder in list(pending):
                _kill_members(folder)
                try:
                    folder.rmdir()
                    pending.remove(folder)
                except FileNotFoundError:
                    pending.remove(folder)
                except OSError as err:
                    if err.errno != errno.EBUSY or time.monotonic() > deadline:
                        log.warning("sandbox: could not remove cgroup %s: %s", folder, err)
                        pending.remove(folder)
            if pending:
                time.sleep(0.005)
        self.dirs = []


def _set_limits(version: int, memory: Path, pids: Path, memory_bytes: int, tasks: int) -> None:
    if version == 2:
        _write(memory / "memory.max", str(memory_bytes))
        for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
            if (memory / name).exists():
                _write(memory / name, value)
    else:
        _write(memory / "memory.limit_in_bytes", str(memory_bytes))
        if (memory / "memory.memsw.limit_in_bytes").exists():  # memory + swap: no swapping out
            _write(memory / "memory.memsw.limit_in_bytes", str(memory_bytes))
    _write(pids / "pids.max", str(tasks))


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _kill_members(folder: Path) -> None:
    try:
        pids = (folder / "cgroup.procs").read_text().split()
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError, ValueError):
            pass


# --------------------------------------------------------------------------- finding the roots


def find_roots(setting: str) -> CgroupRoots | None:
    """Where per-program cgroups can be made: ``setting`` ``"auto"`` (probe v2, then v1),
    ``"none"``, or a cgroup v2 folder to make them under (an error if that does not work)."""
    if setting == "none":
        return None
    if setting != "auto":
        roots = CgroupRoots(2, setting, setting)
        problem = _usable(roots, enable=True)
        if problem:
            raise ValueError(
                f"sandbox cgroup {setting!r} is not usable ({problem}); valid: 'auto', 'none', "
                "or a cgroup v2 folder where root may create children with memory and pids"
            )
        return roots
    own = _own_cgroups()
    mounts = _cgroup_mounts()
    for roots in (_v2_roots(own, mounts), _v1_roots(own, mounts)):
        if roots is not None and not _usable(roots, enable=roots.version == 2):
            _remove_stale(roots)
            return roots
    return None


def _own_cgroups() -> dict[str, str]:
    """``/proc/self/cgroup`` as controller -> path (``""`` is the v2 hierarchy)."""
    own = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return own
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    return own


def _cgroup_mounts() -> dict[str, tuple[str, str]]:
    try:
        return _parse_mounts(Path("/proc/self/mountinfo").read_text())
    except OSError:
        return {}


def _parse_mounts(mountinfo: str) -> dict[str, tuple[str, str]]:
    """Mounted hierarchies as controller -> (mount point, root inside the hierarchy); ``""``
    is the v2 hierarchy."""
    mounts: dict[str, tuple[str, str]] = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        fstype, options = fields[dash + 1], fields[dash + 3].split(",")
        point = fields[4].replace("\\040", " ")
        if fstype == "cgroup2":
            mounts.setdefault("", (point, fields[3]))
        elif fstype == "cgroup":
            for controller in ("memory", "pids"):
                if controller in options:
                    mounts.setdefault(controller, (point, fields[3]))
    return mounts


def _folder(mount: tuple[str, str], path: str) -> str | None:
    point, root = mount
    rel = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
    if rel.startswith(".."):
        return None
    folder = os.path.normpath(os.path.join(point, rel))
    return folder if os.path.isdir(folder) else None


def _v2_roots(own: dict[str, str], mounts: dict[str, tuple[str, str]]) -> CgroupRoots | None:
    if "" not in own or "" not in mounts:
        return None
    folder = _folder(mounts[""], own[""])
    if folder is None:
        return None
    try:
        controllers = Path(folder, "cgroup.controllers").read_text().split()
    except OSError:
        return None
    if not {"memory", "pids"} <= set(controllers):
        return None
    return CgroupRoots(2, folder, folder)


def _v1_roots(own: dict[str, str], mounts: dict[str, tuple[str, str]]) -> CgroupRoots | None:
    folders = []
    for controller in ("memory", "pids"):
        if controller not in own or controller not in mounts:
            return None
        folders.append(_folder(mounts[controller], own[controller]))
    if None in folders:
        return None
    return CgroupRoots(1, str(folders[0]), str(folders[1]))


def _usable(roots: CgroupRoots, enable: bool) -> str:
    """Why per-program cgroups cannot be made under ``roots`` ("" if they can): make one."""
    if enable:
        control = Path(roots.memory, "cgroup.subtree_control")
        try:
            if not {"memory", "pids"} <= set(control.read_text().split()):
                _write(control, "+memory +pids")
        except OSError as err:
            return f"cannot enable memory and pids in {control}: {err.strerror}"
    try:
        ProgramCgroup(roots, 64 << 20, 8).close()
    except OSError as err:
        return f"cannot make a cgroup there: {err.strerror or err}"
    return ""


def _remove_stale(roots: CgroupRoots) -> None:
    """Remove per-program cgroups left by trainers that are no longer running."""
    for parent in {roots.memory, roots.pids}:
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            pid = name[len(_PREFIX) :].split("-")[0] if name.startswith(_PREFIX) else ""
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                try:
                    os.rmdir(os.path.join(parent, name))
                except OSError:
                    pass
