"""What the sandbox tests look for on the host after hostile programs ran."""

from __future__ import annotations

import os
import time
from pathlib import Path

from trafl.rewards.sandbox import Sandbox


def sandbox_processes(root: Path, grace_s: float = 2.0) -> list[int]:
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


def our_cgroups(sb: Sandbox) -> list[str]:
    """This test process's program cgroups still present under the sandbox's roots."""
    roots = sb.launcher.cgroup
    if roots is None:
        return []
    prefix = f"trafl-{os.getpid()}-"
    return [n for d in {roots.memory, roots.pids} for n in os.listdir(d) if n.startswith(prefix)]
