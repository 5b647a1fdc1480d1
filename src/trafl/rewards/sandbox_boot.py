"""How a sandboxed interpreter gets the harness (:mod:`trafl.rewards.sandbox_harness`).

Compiling the harness's ~800 lines on every start cost about 11 ms of CPU, a quarter of a small
program's whole run. So it is compiled once per interpreter, in that interpreter (bytecode
differs between Python versions), and kept in a sealed memfd: no process, the programs
included, can change it. Each start inherits the descriptor, reads the code and closes it
before anything else happens. Where a memfd is not possible, the harness's text is passed as
``-c`` as before.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

HARNESS = (Path(__file__).parent / "sandbox_harness.py").read_text()
_COMPILE = (
    "import marshal, sys\n"
    "code = compile(sys.stdin.read(), '<harness>', 'exec')\n"
    "sys.stdout.buffer.write(marshal.dumps(code))\n"
)


def boot(python: str) -> tuple[str, tuple[int, ...]]:
    """The ``-c`` code that starts the harness under ``python``, and the descriptors it needs."""
    compiled = _compiled(python)
    if compiled is None:
        return HARNESS, ()
    fd, size = compiled
    code = f"import marshal,os;c=os.pread({fd},{size},0);os.close({fd});exec(marshal.loads(c))"
    return code, (fd,)


@cache
def _compiled(python: str) -> tuple[int, int] | None:
    """A sealed memfd holding the harness compiled by ``python``, and its size."""
    try:
        out = subprocess.run(
            [python, "-I", "-S", "-c", _COMPILE],
            input=HARNESS.encode(),
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout
        fd = os.memfd_create("trafl-sandbox-harness", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except (OSError, AttributeError, subprocess.SubprocessError) as err:
        log.info("sandbox: the harness is compiled at every start (%s)", err)
        return None
    view = memoryview(out)
    while view:
        view = view[os.write(fd, view) :]
    seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd, len(out)
