"""The in-sandbox half of :mod:`trafl.rewards.sandbox`: never imported by trafl, only read as text
and run as ``python -I -c <this file> SETTINGS`` inside the sandbox, with the untrusted program.

It must run under whatever interpreter the sandbox user can read (often the system Python, not
the trainer's), so it imports nothing from trafl and sticks to the Python 3.8 standard library.

Order of events, and why:

0. If it is the first process of a new PID namespace, fork: that init only waits (see
   ``_init_of_namespace``), the child goes on.
1. Read the request (program, tests, inputs) from stdin, then point fd 0 at /dev/null.
2. Set the resource limits (soft = hard, so the program can lower them but never raise them),
   then drop to the unprivileged uid, from which point RLIMIT_NPROC counts.
3. Install a best-effort audit hook (``guard``): no writes outside the work dir, no signals to
   other processes, no sockets. Code using ctypes or spawning a shell can step around it; it is
   a seat belt for the fallback without namespaces / a separate uid, not the wall.
4. Run the program, then the tests (or calls / stdin cases); every exception is a failed test.
5. Only now read the sentinel from the pipe whose write end the trainer closed before start, and
   write ``report JSON + "\\n" + sentinel + "\\n"`` to the report file descriptor, then
   ``os._exit`` (no atexit handlers, no waiting for the program's threads).

The trainer accepts a run only if the report file holds exactly those two lines. A program that
ends the process early (``os._exit(0)``, a signal, exceeding a limit) leaves no sentinel; one that
writes a fake report to the fd cannot write the sentinel, which is in no file, argument or
environment variable and is still unread in the pipe while the program and the tests run.
"""

import builtins
import io
import json
import os
import resource
import sys

_read, _write, _exit, _dumps = os.read, os.write, os._exit, json.dumps
_compile, _exec, _BaseException = builtins.compile, builtins.exec, builtins.BaseException


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
        elif event == "os.kill" and args[0] != os.getpid() or event == "os.killpg":
            raise PermissionError("sandbox: signals to other processes are not allowed")
        elif event in ("socket.connect", "socket.bind"):
            raise PermissionError("sandbox: network access is not allowed")

    sys.addaudithook(hook)


def _run_assert(g, request):
    results = []
    for test in request["tests"]:
        try:
            _exec(_compile(test, "<test>", "exec"), g)
            results.append([True, ""])
        except _BaseException as err:  # SystemExit in a test is a failure too
            results.append([False, _describe(err)])
    return results


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
            text = _dumps(fn(*args))
            results.append(["ok", text] if len(text) <= cap else ["error", "result too large"])
        except _BaseException as err:
            results.append(["error", _describe(err)])
    return results


def _run_stdio(code, request, cap, workdir):
    """Each case runs the whole program afresh with fd 0 / fd 1 on files in the work dir, so
    ``input()``, ``sys.stdin.buffer``, ``open(0)`` and ``os.write(1, ...)`` all behave."""
    stdin_path = os.path.join(workdir, ".stdin")
    stdout_path = os.path.join(workdir, ".stdout")
    results = []
    for text in request["inputs"]:
        with open(stdin_path, "wb") as f:
            f.write(text.encode("utf-8"))
        for fd, path, flags in ((0, stdin_path, os.O_RDONLY), (1, stdout_path, os.O_WRONLY)):
            new = os.open(path, flags | (os.O_CREAT | os.O_TRUNC if fd else 0), 0o600)
            os.dup2(new, fd)
            os.close(new)
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "rb", closefd=False)))
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "wb", closefd=False)))
        status, detail = "ok", ""
        try:
            _exec(code, {"__name__": "__main__", "__builtins__": builtins})
        except SystemExit as err:  # exit() after printing the answer is normal in stdio programs
            if err.code not in (None, 0):
                status, detail = "error", f"SystemExit({err.code!r})"
        except _BaseException as err:
            status, detail = "error", _describe(err)
        try:
            sys.stdout.flush()
        except _BaseException:
            pass
        with open(stdout_path, "rb") as f:
            out = f.read(cap + 1)
        if status == "ok" and len(out) > cap:
            status, detail = "error", "output too large"
        results.append([status, out.decode("utf-8", "replace") if status == "ok" else detail])
    return results


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


def main():
    if os.getpid() == 1:
        _init_of_namespace()
    settings = json.loads(sys.argv[1])
    chunks = []
    while True:
        chunk = _read(0, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    request = json.loads(b"".join(chunks).decode("utf-8"))
    workdir = os.getcwd()
    secret_fd, report_fd = settings["secret_fd"], settings["report_fd"]
    os.set_inheritable(secret_fd, False)  # not handed to anything the program executes
    os.set_inheritable(report_fd, False)
    _limit_and_drop(settings)
    _exit_builtins()
    if settings.get("guard"):
        _install_guard(workdir)

    mode, cap = request["mode"], settings["max_output"]
    count = len(request["tests"] if mode == "assert" else request["inputs"])
    report = {"error": None, "results": []}
    try:
        code = _compile(request["program"], "<program>", "exec")
        if mode == "stdio":
            report["results"] = _run_stdio(code, request, cap, workdir)
        else:
            g = {"__name__": "__sandbox__", "__builtins__": builtins}
            _exec(code, g)
            run = _run_assert if mode == "assert" else _run_call
            report["results"] = run(g, request) if mode == "assert" else run(g, request, cap)
    except _BaseException as err:  # the program itself failed: every test fails
        report["error"] = _describe(err)
        report["results"] = [[False, "program failed"] if mode == "assert" else ["error", ""]] * (
            count
        )
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
    _exit(0)


main()
