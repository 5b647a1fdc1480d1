"""Math answer equivalence through math-verify, run in worker processes with a per-check timeout.

Why workers: math-verify (sympy underneath) can take seconds or hang on adversarial text, and
its own timeouts use ``signal.alarm``, which raises when called off the main thread (a trainer
that scores in a thread would crash). Each check runs as a job of a
:class:`~trafl.rewards.workers.WorkerPool`: a check that overruns ``timeout_s`` is killed with its
worker and scores False, as does one whose worker crashes; nothing raises into the trainer.

What counts as equal is math-verify's ``verify(parse(gold), parse(pred))`` (gold first: it is
asymmetric), on answers that :mod:`trafl.rewards.answers` extracted and tidied: 1/2 = 0.5 =
\\frac{1}{2}, \\left( 3, \\frac{\\pi}{2} \\right) = (3, \\pi/2), {1, 2} = {2, 1}, 1,000 = 1000,
10 cm = 10, x = 3 = 3; and 0.333 != 1/3, [1, 3) != (1, 3]. A percentage equals its number
(25\\% = 25), as in math-verify. Identical tidied strings match without a worker round trip,
and verdicts are cached (the G samples of a prompt often repeat an answer); failed checks are
not, so a check that timed out on a busy host is tried again next time.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from trafl.rewards.answers import normalize_answer
from trafl.rewards.workers import JobFailed, WorkerPool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MathCheckConfig:
    """How answers are checked. ``timeout_s`` bounds one check (parse both sides + verify) from
    the moment a worker takes it; ``memory_limit_mb`` caps each worker's address space (None:
    no cap), so a sympy blow-up fails one check instead of swapping the host."""

    timeout_s: float = 5.0
    num_workers: int = 2
    memory_limit_mb: int | None = 4096
    cache_size: int = 100_000
    # math-verify rounds floats to this many decimals before comparing: 6 (its default) calls
    # 7e-7 and 7.5e-7 equal, so tasks with tiny answers (minerva_math) raise it.
    float_rounding: int = 6

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {self.num_workers}")
        if not 1 <= self.float_rounding <= 30:
            raise ValueError(f"float_rounding must be in [1, 30], got {self.float_rounding}")
        if self.memory_limit_mb is not None and self.memory_limit_mb < 256:
            raise ValueError(f"memory_limit_mb must be >= 256 or None, got {self.memory_limit_mb}")


# --------------------------------------------------------------------------- worker side


def warm_up() -> None:
    """Worker start-up: import math-verify and run one check, so the first real check does not
    pay sympy's imports and caches (a fifth of a second) out of its timeout."""
    check_equivalent("\\frac{1}{2}", "0.5", 5, 6)


@functools.lru_cache(maxsize=4096)
def _parse(text: str, timeout_s: int) -> tuple[Any, ...]:
    """math-verify's parse of an answer: as the content of a ``\\boxed{}`` first (answers are
    bare LaTeX or numbers), else of the raw text (sentences such as "The answer is 7")."""
    from math_verify import parse

    boxed = parse("\\boxed{" + text + "}", parsing_timeout=timeout_s)
    if any(not isinstance(p, str) for p in boxed):
        return tuple(boxed)
    raw = parse(text, parsing_timeout=timeout_s)
    return tuple(raw if any(not isinstance(p, str) for p in raw) else boxed)


def check_equivalent(gold: str, pred: str, timeout_s: int, float_rounding: int) -> bool:
    """The job run in a worker: is ``pred`` equivalent to ``gold``? (math-verify's own signal
    timeouts of ``timeout_s`` apply per step; the pool's deadline is the hard backstop.)"""
    from math_verify import verify

    gold_parsed, pred_parsed = _parse(gold, timeout_s), _parse(pred, timeout_s)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(
        verify(
            list(gold_parsed),
            list(pred_parsed),
            float_rounding=float_rounding,
            timeout_seconds=timeout_s,
        )
    )


# --------------------------------------------------------------------------- caller side


class MathChecker:
    """Batch answer equivalence. ``job`` is the function the workers run for each pair; tests
    replace it to check timeouts and crashes through the real entry point."""

    job = staticmethod(check_equivalent)

    def __init__(self, config: MathCheckConfig | None = None) -> None:
        self.config = config if config is not None else MathCheckConfig()
        self.pool = WorkerPool(self.config.num_workers, self.config.memory_limit_mb, init=warm_up)
        self._cache: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._lock = threading.Lock()
        self.num_failed = 0  # checks that timed out, crashed or raised (scored False)

    def equivalent_many(self, pairs: Sequence[tuple[str, str | None]]) -> list[bool]:
        """For each ``(gold, pred)``: is ``pred`` the same answer as ``gold``? A None or empty
        prediction is False; a check that fails in any way is False. Never raises."""
        try:
            return self._equivalent_many(pairs)
        except Exception as err:  # noqa: BLE001 - a reward must never take the trainer down
            log.error("math answer checking failed for a whole batch (%r); scoring it 0", err)
            return [False] * len(pairs)

    def equivalent(self, gold: str, pred: str | None) -> bool:
        return self.equivalent_many([(gold, pred)])[0]

    def _equivalent_many(self, pairs: Sequence[tuple[str, str | None]]) -> list[bool]:
        out: list[bool | None] = [None] * len(pairs)
        todo: dict[tuple[str, str], list[int]] = {}
        for i, (gold, pred) in enumerate(pairs):
            if pred is None or not str(pred).strip():
                out[i] = False
                continue
            key = (normalize_answer(str(gold)), normalize_answer(str(pred)))
            if not key[1]:
                out[i] = False
            elif key[0] == key[1]:
                out[i] = True
            else:
                with self._lock:
                    out[i] = self._cache.get(key)
                if out[i] is None:
                    todo.setdefault(key, []).append(i)
        if todo:
            keys = list(todo)
            inner, rounding = max(1, int(self.config.timeout_s)), self.config.float_rounding
            jobs = [(g, p, inner, rounding) for g, p in keys]
            results = self.pool.run(type(self).job, jobs, self.config.timeout_s)
            for key, result in zip(keys, results, strict=True):
                ok = result is True
                if isinstance(result, JobFailed):  # not cached: a busy host may time out once
                    self.num_failed += 1
                    log.warning(
                        "math check %r vs %r failed: %s", key[1][:80], key[0][:80], result.reason
                    )
                else:
                    self._remember(key, ok)
                for i in todo[key]:
                    out[i] = ok
        return [bool(v) for v in out]

    def _remember(self, key: tuple[str, str], value: bool) -> None:
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)

    def close(self) -> None:
        self.pool.close()


_SHARED: dict[tuple[Any, ...], MathChecker] = {}
_SHARED_LOCK = threading.Lock()


def shared_checker(config: MathCheckConfig) -> MathChecker:
    """One checker (one worker pool) per distinct config in this process, so a train task and
    an eval task of the same run share workers; closed at exit."""
    key = tuple(asdict(config).values())
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = MathChecker(config)
        return _SHARED[key]


@atexit.register
def _close_shared() -> None:
    for checker in _SHARED.values():
        checker.close()
