"""Plain data coming back from the sandbox, read without trusting it.

Values cross the sandbox's wall as tagged JSON (``sandbox_harness._plain`` writes it): ``None``,
``["b", 0|1]``, ``["i", hex]``, ``["f", float.hex]``, ``["c", re, im]``, ``["s", text]``,
``["y", hex]``, ``["l"|"t"|"S"|"F", [items]]`` and ``["d", [[key, value], ...]]``. A program owns
the process that writes it and may write anything instead, so :func:`loads` refuses what would
make the trainer work without bound (JSON integers longer than :data:`MAX_INT_DIGITS` digits,
whose decimal conversion is quadratic before Python 3.11, and nesting beyond
:data:`MAX_DEPTH`), and :func:`decode` rebuilds builtins of exactly the tagged types, refusing
sets and dicts whose keys were chosen to collide (:data:`MAX_SHARED_HASH`).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

MAX_DEPTH = 100  # deepest value decoded (the harness refuses to encode deeper ones too)
MAX_INT_DIGITS = 4300  # longest decimal integer literal accepted in a report (Python's own limit)
MAX_SHARED_HASH = 8  # most keys of a set or dict sharing one hash (more: a hash-flooding forgery)
PLAIN_TYPES = (str, bytes, list, tuple, dict, set, frozenset, int, float, complex, bool)
# the public attributes of plain values: on a program's answer, computed on the decoded value
# (split: by the trainer; replayed: by the trusted replay run), never by the program's object
COMPARISONS = frozenset(
    "__eq__ __ne__ __lt__ __le__ __gt__ __ge__ __contains__ __len__ __getitem__".split()
)
PLAIN_ATTRIBUTES = COMPARISONS | {a for t in PLAIN_TYPES for a in dir(t) if not a.startswith("_")}


def _bounded_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise ValueError(f"integer literal of {len(text)} digits in sandbox data")
    return int(text)


def loads(text: str | bytes) -> Any:
    """``json.loads`` that fails (``ValueError``) instead of working without bound."""
    try:
        return json.loads(text, parse_int=_bounded_int)
    except RecursionError:
        raise ValueError("sandbox data nested too deeply") from None


def decode(data: Any, depth: int = 0) -> Any:
    """The value that ``sandbox_harness._plain`` encoded, rebuilt with its exact type."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if data is None:
        return None
    tag, *rest = data
    if tag == "b":
        return rest[0] == 1
    if tag == "i":
        return int(rest[0], 16)  # hex: linear time, no digit limit needed
    if tag == "f":
        return float.fromhex(rest[0])
    if tag == "c":
        return complex(float.fromhex(rest[0]), float.fromhex(rest[1]))
    if tag == "s" and type(rest[0]) is str:
        return rest[0]
    if tag == "y":
        return bytes.fromhex(rest[0])
    if tag in _CONTAINERS:
        items = [decode(x, depth + 1) for x in rest[0]]
        return _CONTAINERS[tag](_spread(items) if tag in "SF" else items)
    if tag == "d":
        pairs = [(decode(k, depth + 1), decode(v, depth + 1)) for k, v in rest[0]]
        _spread([k for k, _ in pairs])
        return dict(pairs)
    raise ValueError(f"unknown value tag {tag!r}")


def _spread(keys: list[Any]) -> list[Any]:
    """``keys``, unless too many share one hash: ints' and floats' hashes are not randomised, so
    a forged report of colliding keys (multiples of 2**61 - 1) would make building the set or
    dict quadratic. Distinct values rarely share a hash (-1 and -2 do), never many of them."""
    if len(keys) > MAX_SHARED_HASH:
        counts = Counter(hash(k) for k in keys)  # unhashable: TypeError, as set() would raise
        if max(counts.values()) > MAX_SHARED_HASH:
            raise ValueError("sandbox data with many keys of one hash (hash flooding)")
    return keys


_CONTAINERS: dict[str, Any] = {"l": list, "t": tuple, "S": set, "F": frozenset}
