"""The errors a command reports as one line instead of a traceback.

``trafl.commands.cli`` prints ``trafl COMMAND: message`` and exits with the error's ``exit_code``;
``--debug`` (or ``TRAFL_DEBUG=1``) shows the traceback instead. Imports nothing of ours, so any
module may raise these.
"""

from __future__ import annotations


def install_hint(extra: str) -> str:
    """How to install an optional extra, from PyPI and from a checkout of the repository."""
    return f"pip install 'trafl[{extra}]' (from a checkout: pip install -e '.[{extra}]')"


class TraflError(Exception):
    """A failure whose message says everything a user needs: printed alone, exit code 1."""

    exit_code = 1


class UserError(TraflError, ValueError):
    """Bad input the user can fix (config, files, folders, devices): exit code 2. A
    ``ValueError`` too, so library callers that catch ``ValueError`` keep working."""

    exit_code = 2


class RunStopped(TraflError):
    """A run stopped on purpose (a signal, a streak of bad updates) after saving what it could."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(BaseException):
    """SIGTERM or SIGINT outside a training loop. A BaseException, as KeyboardInterrupt is, so
    that code catching ``Exception`` (a reward function's guard, a loader's fallback) does not
    swallow it."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.exit_code = 128 + signum
