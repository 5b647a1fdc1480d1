"""How sandboxed programs are started here (:class:`Launcher`), and the search for the strongest
way that works: namespaces (as root or through a user namespace), a private tmpfs, a uid per
program or a shared one, an interpreter the sandbox user can run, a cgroup per program. Each
candidate is tried by a probe run of the harness (:func:`trafl.rewards.sandbox.resolve_launcher`);
weaker fallbacks are logged once as warnings."""

from __future__ import annotations

import grp
import logging
import os
import pwd
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass

from trafl.rewards.cgroups import CgroupRoots, find_roots

log = logging.getLogger("trafl.rewards.sandbox")

_NAMESPACES = ["--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--ipc"]
UID_SLOTS = 512  # uids uid_base .. uid_base + 511, each held by one running program at a time


@dataclass(frozen=True)
class Launcher:
    """How programs are started here: the command prefix (namespaces), interpreter, and uid."""

    prefix: tuple[str, ...]
    python: str
    uid: int | None  # the sandbox uid, or the first of UID_SLOTS per-slot uids (slots=True)
    gid: int | None
    slots: bool = False  # one uid (and gid) per running program: uid .. uid + UID_SLOTS - 1
    private: bool = False  # a private tmpfs on /tmp, /var/tmp, /dev/shm and the work dir
    cgroup: CgroupRoots | None = None  # where each program gets its own cgroup
    hidden: bool = False  # with private: a root of the system's software only (no /home, data)

    def describe(self) -> str:
        ns = "namespaces(net,pid,ipc,mount)" if self.prefix else "no namespaces"
        if self.private:
            ns += ", system dirs only" if self.hidden else ", read-only root"
        ns += ", private tmpfs" if self.private else ", shared /tmp"
        ns += f", {self.cgroup.describe()}" if self.cgroup else ", no cgroup"
        if self.uid is None:
            user = f"uid {os.geteuid()}"
        elif self.slots:
            user = f"a uid per program ({self.uid}+slot)"
        else:
            user = pwd.getpwuid(self.uid).pw_name
        return f"{ns}, {user}, {self.python}"


def find_launcher(
    isolation: str,
    user: str,
    python: str,
    uid_base: int,
    cgroup: str,
    probe: Callable[[Launcher], bool],
) -> Launcher:
    """The strongest launcher that actually works here: the first for which ``probe`` (a run
    of the harness) succeeds. Weaker fallbacks are logged as warnings; a setting that
    asks for more than works here (``isolation=namespaces``, a named ``user`` or ``cgroup``)
    is an error."""
    if isolation not in ("auto", "namespaces", "none"):
        raise ValueError(f"invalid isolation {isolation!r}; valid: 'auto', 'namespaces', 'none'")
    root = os.geteuid() == 0
    roots = find_roots(cgroup) if root else None
    if cgroup not in ("auto", "none") and roots is None:
        raise ValueError(f"sandbox cgroup {cgroup!r} needs the trainer to run as root; use 'auto'")
    groups = [roots] if cgroup not in ("auto", "none") else [roots, None] if roots else [None]
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
    views = ((True, True), (True, False), (False, False))  # (private, hidden), strongest first
    for prefix in prefixes:
        for private, hidden in views if prefix else views[-1:]:
            for uid, gid, slots in _drops(user, account, root, "--user" in prefix, uid_base):
                for exe, group in ((e, g) for e in pythons for g in groups):
                    launcher = Launcher(prefix, exe, uid, gid, slots, private, group, hidden)
                    if probe(launcher):
                        _warn_if_weak(launcher, root)
                        return launcher
    raise ValueError(
        f"no working sandbox for isolation={isolation!r}, user={user!r}, python={python!r}, "
        f"cgroup={cgroup!r}; valid: isolation 'auto' falls back to no namespaces, user 'none' "
        "keeps the trainer's uid, python names an interpreter the sandbox user can run, cgroup "
        "'auto' falls back to none"
    )


def _drops(
    user: str, account: pwd.struct_passwd | None, root: bool, userns: bool, uid_base: int
) -> list[tuple[int | None, int | None, bool]]:
    """The uids to try, strongest first: a uid per program (root, ``user=auto``, a range with
    no accounts in it), the named or ``nobody`` account, the trainer's own."""
    drops: list[tuple[int | None, int | None, bool]] = []
    if userns:
        return [(None, None, False)]
    if user == "auto" and root and not _accounts_in(uid_base, uid_base + UID_SLOTS):
        drops.append((uid_base, uid_base, True))
    if account is not None:
        drops.append((account.pw_uid, account.pw_gid, False))
    if user == "auto" or account is None:
        drops.append((None, None, False))
    return drops


def _accounts_in(low: int, high: int) -> list[str]:
    """Users or groups with ids in [low, high): such a range is not free for programs."""
    taken = [u.pw_name for u in pwd.getpwall() if low <= u.pw_uid < high]
    taken += [g.gr_name for g in grp.getgrall() if low <= g.gr_gid < high]
    if taken:
        log.warning("sandbox: uids %d..%d are in use (%s); not using them", low, high - 1, taken)
    return taken


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


def _warn_if_weak(launcher: Launcher, root: bool) -> None:
    if not launcher.prefix:
        log.warning(
            "sandbox: no network/PID namespaces here (unshare missing or not permitted); "
            "generated code has network access and can see the trainer's processes"
        )
    if not launcher.private:
        log.warning(
            "sandbox: no private /tmp (no mount namespace or tmpfs here); programs share /tmp, "
            "/var/tmp and /dev/shm with the host and each other, and what they write there stays"
        )
    if launcher.private and not launcher.hidden:
        log.warning(
            "sandbox: programs see the host's files read-only (no pivot_root here): whatever is "
            "world-readable, a dataset's answers included, is theirs to read"
        )
    if launcher.cgroup is None:
        log.warning(
            "sandbox: no cgroup here (cgroup v2 with memory and pids delegated, or v1, as root); "
            "a program's memory is limited per process (address space)%s",
            ", and the sum over its processes is tracked every 50 ms (program_limits)"
            if launcher.slots
            else ", not across its processes",
        )
    if launcher.uid is not None and not launcher.slots:
        log.warning(
            "sandbox: every program runs as uid %d; process limits and files are shared "
            "between programs running at the same time",
            launcher.uid,
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
