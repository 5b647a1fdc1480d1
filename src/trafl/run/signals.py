"""SIGTERM and SIGINT stop a run between steps, with a checkpoint, instead of killing it.

The first signal sets a flag that the training loop reads after each step: it then writes a
checkpoint and exits non-zero with one line. A second SIGINT (Ctrl-C twice) abandons the step
at once, as Python's default does. Handlers are only installed from the main thread.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

HANDLED = (signal.SIGTERM, signal.SIGINT)
# Signals received before a loop installed its handlers (the command line records them): a
# library that swallowed the exception raised for one (a bare ``except:`` around an import)
# cannot make it vanish, since the loop then stops after its first step.
_RECEIVED: list[int] = []


def record(signum: int) -> None:
    _RECEIVED.append(signum)


class StopRequests:
    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        if _RECEIVED:
            self.signum = _RECEIVED[-1]
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: abandon the step now
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or 0)
