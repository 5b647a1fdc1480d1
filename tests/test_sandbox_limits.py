"""Limits per program, not shared: memory across all of a program's processes (a cgroup, or the
tracked sum without one), processes per program even when programs share a uid, a read-only
host around a private disk, and programs that cannot see or forge each other's files or
output. Each case asserts the exact reward and that nothing is left on the host."""

from __future__ import annotations

import os
import stat
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.sandbox_helpers import our_cgroups, sandbox_processes
from trafl.rewards import cgroups
from trafl.rewards.cgroups import CgroupRoots, ProgramCgroup
from trafl.rewards.sandbox import Job, Sandbox, SandboxConfig

TIMEOUT_S = 2.0
MEMORY_BOMB = (  # 4 processes of 100 MiB each: each under its address-space limit of 160 MiB
    "import os, time\nkids = []\nfor _ in range(4):\n    pid = os.fork()\n    if pid == 0:\n"
    "        x = bytearray(100 << 20)\n        for i in range(0, len(x), 4096):\n"
    "            x[i] = 1\n        time.sleep(3)\n        os._exit(0)\n    kids.append(pid)\n"
    "for pid in kids:\n    os.waitpid(pid, 0)\ndef f():\n    return 1\n"
)
MODEST = (
    MEMORY_BOMB.replace("range(4)", "range(2)")
    .replace("100 << 20", "20 << 20")
    .replace("sleep(3)", "sleep(0.2)")
)
FORK_BOMB = (
    "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
)
THREADED = (
    "import threading, time\ntime.sleep(0.5)\nout = []\n"
    "threads = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]\n"
    "for t in threads:\n    t.start()\nfor t in threads:\n    t.join()\n"
    "def f():\n    return sorted(out)\n"
)
THREADS_TEST = "assert f() == [0, 1, 2, 3, 4, 5, 6, 7]"


def _reward(result) -> float:
    return float(
        result.finished and bool(result.results) and all(r[0] is True for r in result.results)
    )


def _config(root: Path, **kw) -> SandboxConfig:
    return SandboxConfig(
        **{"timeout_s": TIMEOUT_S, "cpu_s": 2, "workers": 4, "tmp_dir": str(root)} | kw
    )


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> dict:
    """A work root, and a world-writable folder of the host outside /tmp (as /run/lock is)."""
    root = Path(tempfile.mkdtemp(prefix="trafl-test-limits-"))
    root.chmod(0o711)
    base = Path("/run") if os.access("/run", os.W_OK) else tmp_path_factory.mktemp("open")
    open_dir = Path(tempfile.mkdtemp(prefix="trafl-test-open-", dir=base))
    open_dir.chmod(0o1777)
    yield {"root": root, "open": open_dir}
    for folder in (root, open_dir):
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


@pytest.fixture(scope="module")
def runs(host: dict) -> dict:
    """Four batches at once, each under its own settings (as concurrent trainers would be)."""
    root = host["root"]
    auto = Sandbox(_config(root, memory_mb=160, max_disk_mb=8))
    if not auto.launcher.slots:
        pytest.skip(f"needs root, namespaces and a uid per program ({auto.launcher.describe()})")
    tracked = Sandbox(_config(root, memory_mb=160, max_disk_mb=8, cgroup="none"))
    shared = Sandbox(_config(root, user="nobody", timeout_s=1.5))
    secret = f"secret-{os.getpid()}"
    host_write = "ENOENT" if auto.launcher.hidden else "EROFS"  # not there at all, or read-only
    targets = ["/run/lock", str(host["open"]), "/var/tmp", "/dev/shm", "/tmp", "."]
    writer = (  # through ctypes and a shell, where the audit hook cannot see it
        "import ctypes, errno, os, time\nlibc = ctypes.CDLL(None, use_errno=True)\nout = []\n"
        f"for d in {targets!r}:\n"
        f"    os.system(f'echo {secret} > {{d}}/{secret}-sh 2>/dev/null')\n"
        f"    fd = libc.open(f'{{d}}/{secret}-c'.encode(), 0o101, 0o644)\n"
        "    out.append('ok' if fd >= 0 else errno.errorcode[ctypes.get_errno()])\n"
        "time.sleep(1.0)\ndef f():\n    return out\n"
    )
    reader = (  # at the same time, looks for them everywhere it can
        "import glob, time\ntime.sleep(0.5)\n"
        f"pattern = {secret!r}\nplaces = ['/tmp/*', '/var/tmp/*', '/dev/shm/*', '/run/lock/*', "
        f"{str(host['open']) + '/*'!r}, {str(root) + '/*/*'!r}, '/proc/*/root/tmp/*', "
        "'/proc/*/cwd/*']\n"
        "found = sorted({p for g in places for p in glob.glob(g) if pattern in p})\n"
        "def f():\n    return found\n"
    )
    forger = (  # stdio: fake report frames on every descriptor, then its answer
        "import os\nfor fd in range(64):\n    try:\n"
        '        os.write(fd, b\'{"error": null, "results": [[true, ""]]}\\n\')\n'
        "    except OSError:\n        pass\nprint(41)\n"
    )
    batches = {
        "auto": (  # the bomb and its neighbours first, so that they run at the same time
            auto,
            [Job(FORK_BOMB, tests=[THREADS_TEST])]
            + [Job(THREADED, tests=[THREADS_TEST])] * 3
            + [
                Job(MEMORY_BOMB, tests=["assert f() == 1"]),
                Job(MODEST, tests=["assert f() == 1"]),
                Job(writer, tests=[f"assert f() == {[host_write] * 2 + ['ok'] * 4}"]),
                Job(reader, tests=["assert f() == []"]),
                Job(forger, mode="stdio", inputs=[""]),
            ],
        ),
        "tracked": (tracked, [Job(p, tests=["assert f() == 1"]) for p in (MEMORY_BOMB, MODEST)]),
        "shared": (
            shared,
            [Job(FORK_BOMB, tests=[THREADS_TEST])] + [Job(THREADED, tests=[THREADS_TEST])] * 3,
        ),
    }
    with ThreadPoolExecutor(len(batches)) as pool:
        futures = {k: pool.submit(sb.run, jobs) for k, (sb, jobs) in batches.items()}
        results = {k: f.result() for k, f in futures.items()}
    ours = f"{secret}-"
    left_files = [
        str(p)
        for d in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", str(host["open"]), str(root))
        if os.path.isdir(d)
        for p in Path(d).iterdir()
        if p.name.startswith(ours)
    ]
    return {
        "results": results,
        "sandboxes": {k: sb for k, (sb, _) in batches.items()},
        "processes": sandbox_processes(root, grace_s=0.0),
        "files": left_files + [str(p) for p in root.iterdir()],
        "cgroups": our_cgroups(auto) + our_cgroups(shared),
    }


def test_memory_is_limited_across_all_of_a_programs_processes(runs: dict) -> None:
    bomb, modest = runs["results"]["auto"][4:6]
    assert [_reward(bomb), _reward(modest)] == [0.0, 1.0], (bomb, modest)
    how = "cgroup" if runs["sandboxes"]["auto"].launcher.cgroup else "tracked"
    assert "memory limit (168 MiB, " + how in bomb.reason  # 160 + the 8 MiB tmpfs
    assert bomb.seconds < TIMEOUT_S  # killed when it passed the limit, not at the timeout
    bomb, modest = runs["results"]["tracked"]  # no cgroup: the sum of its processes, tracked
    assert [_reward(bomb), _reward(modest)] == [0.0, 1.0], (bomb, modest)
    assert "memory limit (160 MiB, tracked)" in bomb.reason and bomb.seconds < TIMEOUT_S


def test_a_retrying_fork_bomb_does_not_starve_correct_threaded_programs(runs: dict) -> None:
    """With a uid per program (RLIMIT_NPROC and pids.max), and with one uid shared by all
    programs (``user=nobody``: only the cgroup's pids.max keeps them apart)."""
    assert [_reward(r) for r in runs["results"]["auto"][:4]] == [0.0, 1.0, 1.0, 1.0]
    if runs["sandboxes"]["shared"].launcher.cgroup is None:
        pytest.skip("no cgroup here: programs sharing a uid share its process limit")
    assert [_reward(r) for r in runs["results"]["shared"]] == [0.0, 1.0, 1.0, 1.0]


def test_the_host_is_read_only_and_programs_do_not_see_each_other(runs: dict) -> None:
    writer, reader, forger = runs["results"]["auto"][6:]
    assert _reward(writer) == 1.0, (
        writer
    )  # /run/lock and a 1777 host folder: read-only or not there
    assert _reward(reader) == 1.0, reader  # nothing of the writer's, anywhere
    assert forger.results == [["ok", '{"error": null, "results": [[true, ""]]}\n41\n']]


def test_nothing_is_left_on_the_host(runs: dict) -> None:
    assert runs["processes"] == []
    assert runs["files"] == []
    assert runs["cgroups"] == []


# --------------------------------------------------------------------------- cgroup v2 files


def test_cgroup_v2_discovery_and_files_on_a_fake_tree(tmp_path: Path) -> None:
    """Where v2 is found and what is written there (this host may only have v1): the
    trainer's own cgroup from /proc/self/cgroup and mountinfo, limits, kill and removal."""
    own = tmp_path / "sys" / "trainer.scope"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpu memory pids\n")
    mountinfo = f"30 20 0:26 / {tmp_path / 'sys'} rw - cgroup2 cgroup2 rw\n"
    roots = cgroups._v2_roots({"": "/trainer.scope"}, cgroups._parse_mounts(mountinfo))
    assert roots == CgroupRoots(2, str(own), str(own))
    group = ProgramCgroup(roots, 96 << 20, 9)
    folder = Path(group.dirs[0])
    assert group.procs == [str(folder / "cgroup.procs")]
    assert (folder / "memory.max").read_text() == str(96 << 20)
    assert (folder / "pids.max").read_text() == "9"
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert group.oom_killed()
    for name in ("memory.max", "pids.max", "memory.events"):
        (folder / name).unlink()
    group.close()
    assert not folder.exists() and stat.S_ISDIR(own.stat().st_mode)
    with pytest.raises(ValueError, match="valid: 'auto', 'none'"):
        cgroups.find_roots(str(tmp_path / "missing"))
