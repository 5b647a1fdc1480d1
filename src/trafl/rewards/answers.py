"""Find the final answer in a model's text (or a dataset's solution), and tidy it for checking.

Pure string code (no sympy): it runs in the trainer's process on every completion, so every
pattern here is linear-time and the brace matcher is a scan, never a regex with nested
quantifiers. Whether two answers are *equal* is not decided here but by math-verify in worker
processes (:mod:`trafl.rewards.math`).

Where a completion states its answer, in the order we look (first found wins):

1. ``<answer>...</answer>`` (d1's XML format, the last such block; the closing tag may be
   missing): the last ``\\boxed{}`` inside it, else the whole block;
2. the last ``\\boxed{...}`` / ``\\fbox{...}`` anywhere (MATH's convention), nested braces
   matched;
3. ``#### 42`` (GSM8K's convention; the text after the last ``####``, to the end of its line);
4. optionally, the last number in the text (the usual GSM8K fallback for free-form output).
"""

from __future__ import annotations

import re

MAX_SCAN_CHARS = 20_000  # look at the tail only: answers are at the end, and it bounds the work

_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"
_BOX_COMMANDS = ("\\boxed", "\\fbox")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_DIGIT_GROUPS = re.compile(r"(?<=\d)(?:\\,|\\!|\{,\}|\\ )(?=\d{3}(?!\d))")
_NUMBER_THEN_WORDS = re.compile(r"(-?\\?\$?\s*\d[\d,]*(?:\.\d+)?\s*\\?%?)\s+[A-Za-z][A-Za-z\s.]*")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{")
_E_NOTATION = re.compile(r"(-?\d+(?:\.\d+)?)[eE]([+-]?\d+)")
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def _tail(text: str) -> str:
    return text[-MAX_SCAN_CHARS:] if len(text) > MAX_SCAN_CHARS else text


def _braced(text: str, open_at: int) -> tuple[str, int] | None:
    """The content of the brace group opening at ``text[open_at] == "{"`` and the index after
    its closing brace; None when it never closes. Escaped braces (``\\{``) do not count."""
    depth, i = 0, open_at
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i], i + 1
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` or ``\\fbox{...}`` (nested braces matched);
    also the brace-less ``\\boxed 5``. None when there is none."""
    text = _tail(text)
    best: tuple[int, str] | None = None
    for command in _BOX_COMMANDS:
        start = text.rfind(command)
        while start != -1:
            after = start + len(command)
            rest = text[after:]
            stripped = rest.lstrip()
            if stripped.startswith("{"):
                group = _braced(text, after + len(rest) - len(stripped))
                if group is not None:
                    best = max(best or (-1, ""), (start, group[0].strip()))
                    break
            elif rest[:1] == " " and stripped:  # "\boxed 5": up to the next space or "$"
                best = max(best or (-1, ""), (start, re.split(r"[\s$]", stripped, maxsplit=1)[0]))
                break
            start = text.rfind(command, 0, start)
    return None if best is None else best[1]


def answer_block(text: str) -> str | None:
    """The content of the last ``<answer>`` block (to ``</answer>`` or the end), stripped; None
    when the text has no ``<answer>`` tag."""
    text = _tail(text)
    start = text.rfind(_ANSWER_OPEN)
    if start == -1:
        return None
    block = text[start + len(_ANSWER_OPEN) :]
    end = block.find(_ANSWER_CLOSE)
    return (block if end == -1 else block[:end]).strip()


def hash_answer(text: str) -> str | None:
    """GSM8K's final answer: what follows the last ``####`` on its line, without thousands
    separators. None when there is no ``####`` or nothing follows it."""
    text = _tail(text)
    start = text.rfind("####")
    if start == -1:
        return None
    answer = text[start + 4 :].strip().split("\n", 1)[0].strip()
    return answer.replace(",", "") or None


def last_number(text: str) -> str | None:
    """The last number written in the text (``1,234.5`` -> ``1234.5``), or None."""
    matches = _NUMBER.findall(_tail(text))
    return matches[-1].replace(",", "") if matches else None


def extract_answer(text: str, last_number_fallback: bool = True) -> str | None:
    """The completion's final answer as written (see the module docstring for the order), or
    None when it states none. Never raises on a ``str``."""
    if not isinstance(text, str):
        return None
    block = answer_block(text)
    if block:
        boxed = last_boxed(block)
        if boxed:
            return boxed
        if block.strip(". ") not in ("", "..."):
            return block
    for find in (last_boxed, hash_answer):
        found = find(text)
        if found:
            return found
    return last_number(text) if last_number_fallback else None


def normalize_answer(answer: str) -> str:
    """Tidy an extracted answer before math-verify sees it: math delimiters, a wrapping
    ``\\boxed{}`` or ``\\text{}``, a trailing full stop, thin-space thousands separators
    (``1\\,000``) and trailing unit words (``72 dollars`` -> ``72``) go, and ``7.5e-7`` becomes
    ``7.5 \\times 10^{-7}`` (LaTeX would read the ``e`` as Euler's number). Equivalence itself
    (fractions, LaTeX, sets, percent...) is math-verify's job, not this function's."""
    s = answer.strip()
    for left, right in _MATH_DELIMITERS:
        if len(s) > len(left) + len(right) and s.startswith(left) and s.endswith(right):
            s = s[len(left) : -len(right)].strip()
            break
    for command in (*_BOX_COMMANDS, "\\text", "\\textbf", "\\mbox", "\\mathrm"):
        if s.startswith(command + "{"):
            group = _braced(s, len(command))
            if group is not None and group[1] == len(s):
                s = group[0].strip()
    s = s.rstrip(" .")
    s = _DIGIT_GROUPS.sub("", s)
    match = _NUMBER_THEN_WORDS.fullmatch(s)
    if match:
        s = match.group(1).strip()
    match = _E_NOTATION.fullmatch(s)  # LaTeX would read 7.5e-7 as 7.5 * e - 7
    if match:
        s = f"{match.group(1)} \\times 10^{{{match.group(2)}}}"
    return s
