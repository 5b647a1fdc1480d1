"""Reward functions written for TRL's GRPOTrainer, called as TRL calls them.

A reward function is ``fn(completions, **kwargs) -> list[float]``: one call per batch, one value
per completion, ``None`` for "does not apply to this sample". TRL's GRPOTrainer
(``_calculate_rewards``) passes, by keyword, ``prompts`` (the dataset's prompts), ``completions``
(plain strings for a standard dataset; ``[{"role": "assistant", "content": text}]`` per sample
for a conversational one) and every other column of the dataset rows (all but ``prompt``,
``completion`` and ``completion_ids``) as a list with one entry per completion. It turns
``None`` into NaN and sums the weighted values with ``nansum``: a ``None`` (or NaN) adds nothing.

Here the same, with three differences: ``completion_ids`` and ``trainer_state`` are not passed
(a function that requires them is refused when the task is built); a function without
``**kwargs`` gets only the arguments it names (TRL would raise a TypeError); and a column a
function requires but the data lacks is an error when the task is built, not at the first step.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trafl.core.errors import UserError
from trafl.core.registry import import_object

PASSED = ("prompts", "completions")  # the arguments every function may take besides columns
NOT_PASSED = ("completion_ids", "trainer_state")  # TRL passes these; trafl cannot


class RewardError(UserError):
    """A reward function raised or returned something other than one number per completion;
    the message names the function. The trainer scores such a sample 0 and counts it
    (``max_reward_error_rate``)."""


@dataclass(frozen=True)
class RewardFunction:
    """One resolved reward: ``spec`` as the user wrote it, ``name`` as it is logged
    (``reward_<name>``), and the keyword arguments it accepts (None: any, it has ``**kwargs``)."""

    spec: str
    name: str
    fn: Callable[..., Any]
    weight: float
    accepts: frozenset[str] | None
    required: frozenset[str]

    def __call__(self, n: int, arguments: dict[str, Any]) -> list[float | None]:
        """Its values for a batch of ``n`` completions; a :class:`RewardError` when it raises
        or returns anything but ``n`` numbers (or None)."""
        if self.accepts is not None:
            arguments = {k: v for k, v in arguments.items() if k in self.accepts}
        try:
            out = self.fn(**arguments)
        except Exception as err:  # noqa: BLE001 - reported with the function's name
            raise RewardError(f"reward {self.spec} raised {type(err).__name__}: {err}") from err
        return self._values(out, n)

    def _values(self, out: Any, n: int) -> list[float | None]:
        if isinstance(out, (str, bytes, dict)) or not hasattr(out, "__len__"):
            raise RewardError(
                f"reward {self.spec} returned {type(out).__name__}; it must return a list with "
                f"one float (or None) per completion"
            )
        if len(out) != n:
            raise RewardError(
                f"reward {self.spec} returned {len(out)} values for {n} completions; it must "
                f"return one float (or None) per completion"
            )
        values: list[float | None] = []
        for i, v in enumerate(out):
            if v is None:
                values.append(None)
                continue
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise RewardError(
                    f"reward {self.spec} returned {v!r} at index {i}; expected a float or None"
                ) from None
            if math.isinf(x):
                raise RewardError(f"reward {self.spec} returned {x} at index {i}; must be finite")
            values.append(None if math.isnan(x) else x)
        return values


def resolve_rewards(specs: Sequence[str], weights: Sequence[float] | None) -> list[RewardFunction]:
    """The functions ``specs`` name (``package.module:fn`` or ``path/to/file.py:fn``) with their
    weights (all 1.0 when None, TRL's default); one-line errors for anything unusable."""
    if not specs:
        raise UserError(
            "task.rewards is empty; name at least one reward function, e.g. "
            "task.rewards=[mylab.rewards:correct] (TRL's signature: fn(completions, **kwargs))"
        )
    if weights is not None and len(weights) != len(specs):
        raise UserError(
            f"task.reward_weights has {len(weights)} values for {len(specs)} rewards; give one "
            f"weight per reward, or none (all 1.0)"
        )
    out = [
        _resolve(spec, 1.0 if weights is None else float(w)) for spec, w in _pairs(specs, weights)
    ]
    names = [r.name for r in out]
    for name in names:
        if names.count(name) > 1 or name == "reward":
            why = "is reserved for the total" if name == "reward" else "is used twice"
            raise UserError(
                f"reward name {name!r} {why} (a reward is logged as reward_<function name>); "
                f"rename the function"
            )
    return out


def _pairs(specs: Sequence[str], weights: Sequence[float] | None) -> list[tuple[str, float]]:
    return list(zip(specs, weights if weights is not None else [1.0] * len(specs), strict=True))


def _resolve(spec: str, weight: float) -> RewardFunction:
    try:
        fn = import_object(spec)
    except (ImportError, AttributeError, OSError, SyntaxError) as err:
        raise UserError(
            f"cannot import reward {spec!r}: {err} (expected 'package.module:function' or "
            f"'path/to/file.py:function')"
        ) from err
    if not callable(fn):
        raise UserError(f"reward {spec!r} is a {type(fn).__name__}, not a function")
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: pass everything
        params = [inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)]
    by_keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    named = {p.name for p in params if p.kind in by_keyword}
    any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    required = {p.name for p in params if p.default is p.empty and p.kind in by_keyword}
    unpassable = sorted(required & set(NOT_PASSED)) + [
        p.name
        for p in params
        if p.kind is inspect.Parameter.POSITIONAL_ONLY and p.default is p.empty
    ]
    if "completions" not in named and not any_keyword:
        raise UserError(
            f"reward {spec!r} takes no 'completions' argument; TRL's signature is "
            f"fn(completions, **kwargs) -> list[float]"
        )
    if unpassable:
        raise UserError(
            f"reward {spec!r} requires {', '.join(unpassable)}, which trafl does not pass; "
            f"it passes prompts, completions and the dataset's columns by keyword"
        )
    name = getattr(fn, "__name__", spec.rpartition(":")[2])
    accepts = None if any_keyword else frozenset(named)
    return RewardFunction(spec, name, fn, weight, accepts, frozenset(required - set(PASSED)))


def check_columns(
    rewards: list[RewardFunction], passed: Sequence[str], columns: Sequence[str], where: str
) -> None:
    """Every argument a reward requires is passed (``passed``: the columns a reward receives;
    ``columns``: all of the data's, for the message); else one line naming both."""
    for reward in rewards:
        missing = sorted(reward.required - set(passed))
        if missing:
            raise UserError(
                f"reward {reward.spec} requires the column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}, which {where} lacks; its columns: {', '.join(columns)}"
            )


def weighted_scores(
    rewards: list[RewardFunction], n: int, arguments: dict[str, Any]
) -> list[dict[str, float]]:
    """Per completion: ``reward`` (sum of weight * value over the values that are not None)
    and each function's value under its name (0.0 where it returned None)."""
    columns = {r.name: r(n, arguments) for r in rewards}
    out = []
    for i in range(n):
        parts = {name: values[i] for name, values in columns.items()}
        total = float(sum(r.weight * parts[r.name] for r in rewards if parts[r.name] is not None))
        out.append({"reward": total} | {k: 0.0 if v is None else v for k, v in parts.items()})
    return out
