"""Math answer checking: extraction, equivalence through math-verify in worker processes, the
pool's timeout and crash handling, and d1's format components."""

from __future__ import annotations

import os
import time

import pytest

from trafl.rewards.answers import (
    answer_block,
    extract_answer,
    hash_answer,
    last_boxed,
    last_number,
    normalize_answer,
)
from trafl.rewards.formats import (
    boxed_answer,
    integer_answer,
    soft_format,
    strict_format,
    xml_count,
)
from trafl.rewards.math import MathCheckConfig, MathChecker, shared_checker
from trafl.rewards.workers import JobFailed, WorkerPool

# (gold, prediction, equivalent?)
EQUIVALENCE = [
    # fractions and decimals
    ("1/2", "0.5", True),
    ("\\frac{1}{2}", "0.5", True),
    ("0.5", "\\frac12", True),
    ("\\dfrac{1}{2}", "1/2", True),
    ("1.5", "3/2", True),
    ("1.5", "1.50", True),
    ("72", "72.0", True),
    ("0.333", "1/3", False),
    # LaTeX spellings
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)", True),
    ("\\dfrac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}", True),
    ("3\\sqrt{2}", "\\sqrt{18}", True),
    ("10", "\\text{10 apples}", True),
    ("\\text{(C)}", "(C)", True),
    ("x^2+2x+1", "(x+1)^2", True),
    # sets, tuples, intervals
    ("\\{1,2,3\\}", "\\{3,2,1\\}", True),
    ("-2, 2", "2,-2", True),
    ("(1,2)", "(2,1)", False),
    ("[1,3)", "[1,3)", True),
    ("[1,3)", "(1,3]", False),
    ("(-\\infty, 3]", "(-\\infty,3]", True),
    # units, percent, dollars, separators, scientific notation
    ("10", "10\\text{ cm}", True),
    ("150", "150 miles", True),
    ("72", "72 dollars", True),
    ("\\$18", "18", True),
    ("900", "\\$900", True),
    ("18", "\\$18.00", True),
    ("25\\%", "25", True),
    ("1000", "1,000", True),
    ("1,000", "1000", True),
    ("1000", "1\\,000", True),
    ("7.5e-7", "7.5 \\times 10^{-7}", True),
    # signs and plain wrong answers
    ("-3", "-3", True),
    ("-5", "\u22125", True),
    ("-3", "3", False),
    ("5", "6", False),
    ("7.5 \\times 10^{-7}", "7.4 \\times 10^{-7}", False),
    # malformed model output
    ("5", "abc", False),
    ("5", "", False),
    ("5", "}}}{{\\frac", False),
    ("5", "\\boxed{", False),
    ("18", "eighteen", False),
]


@pytest.fixture(scope="module")
def checker() -> MathChecker:
    return shared_checker(MathCheckConfig())  # the pool the math tasks' tests share


@pytest.fixture(scope="module")
def verdicts(checker: MathChecker) -> dict[tuple[str, str], bool]:
    pairs = [(gold, pred) for gold, pred, _ in EQUIVALENCE]
    return dict(zip(pairs, checker.equivalent_many(pairs), strict=True))


@pytest.mark.parametrize(("gold", "pred", "expected"), EQUIVALENCE)
def test_equivalence_table(
    verdicts: dict[tuple[str, str], bool], gold: str, pred: str, expected: bool
) -> None:
    assert verdicts[(gold, pred)] is expected


def test_none_and_cache(checker: MathChecker) -> None:
    assert checker.equivalent_many([("5", None), ("5", "  ")]) == [False, False]
    before = checker.pool.num_restarts
    assert checker.equivalent("\\frac{1}{2}", "0.5") is True  # cached from the table
    assert checker.pool.num_restarts == before


# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so $\\boxed{\\frac{1}{\\sqrt{2}}}$", "\\frac{1}{\\sqrt{2}}"),  # nested braces
        (
            "\\boxed{1} then \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.",
            "\\left( 3, \\frac{\\pi}{2} \\right)",
        ),
        ("\\fbox{4} and finally \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces
        ("the answer is $\\boxed 5$", "5"),
        ("\\boxed{unclosed", None),
        ("no box", None),
    ],
)
def test_last_boxed(text: str, expected: str | None) -> None:
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<reasoning>r</reasoning>\n<answer>\n\\boxed{7}\n</answer>", "7"),  # boxed inside
        ("<answer>\n72\n</answer>", "72"),
        ("<answer> a </answer> <answer>\n5\n</answer>", "5"),  # the last block
        ("<reasoning>x = \\boxed{3}</reasoning><answer>...</answer>", "3"),  # empty block
        ("<answer>\n42", "42"),  # closing tag cut off by the length limit
        ("He has 48 - 30 = 18 left.\n#### 18", "18"),
        ("1 + 2 = 3, then 3 * 1,234.5", "1234.5"),  # last-number fallback
        ("nothing numeric", None),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_extraction_parts() -> None:
    solution = "Natalia sold 48 / 2 = <<48/2=24>>24 clips in May.\n#### 1,072"
    assert hash_answer(solution) == "1072"
    assert hash_answer("no marker") is None
    assert answer_block("no tags") is None
    assert last_number("-3 and -4.5") == "-4.5"
    assert extract_answer("it is 7", last_number_fallback=False) is None
    assert extract_answer(None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$\\frac{1}{2}$", "\\frac{1}{2}"),
        ("\\boxed{3}", "3"),
        ("\\text{10 apples}", "10"),
        ("x = 5.", "x = 5"),
        ("1\\,000", "1000"),
        ("7.5e-7", "7.5 \\times 10^{-7}"),
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


# --------------------------------------------------------------------------- timeouts, crashes


def hang(*_args: object) -> bool:
    time.sleep(600)
    return True


def die(*_args: object) -> bool:
    os._exit(3)


def square(x: int) -> int:
    return x * x


def fail(_x: int) -> int:
    raise ZeroDivisionError("boom")


def test_pool_timeout_crash_and_recovery() -> None:
    pool = WorkerPool(num_workers=1)
    try:
        start = time.monotonic()
        out = pool.run(hang, [(1,)], timeout_s=0.5)
        assert out == [JobFailed("timeout")]
        assert time.monotonic() - start < 30  # bounded by the timeout (plus one worker start)
        assert pool.run(die, [(1,)], timeout_s=10) == [JobFailed("crash")]
        out = pool.run(fail, [(1,)], timeout_s=10)
        assert isinstance(out[0], JobFailed) and "ZeroDivisionError" in out[0].reason
        assert pool.run(square, [(i,) for i in range(5)], timeout_s=10) == [0, 1, 4, 9, 16]
        assert (pool.num_timeouts, pool.num_crashes) == (1, 1)
    finally:
        pool.close()


class HangingChecker(MathChecker):
    job = staticmethod(hang)


class CrashingChecker(MathChecker):
    job = staticmethod(die)


def test_hung_check_scores_zero_within_timeout() -> None:
    checker = HangingChecker(MathCheckConfig(timeout_s=0.5, num_workers=1))
    try:
        start = time.monotonic()
        assert checker.equivalent_many([("1", "2")]) == [False]
        assert time.monotonic() - start < 30  # the job sleeps 600 s
        assert checker.num_failed == 1 and checker.pool.num_timeouts == 1
    finally:
        checker.close()


def test_crashing_check_scores_zero_and_pool_survives() -> None:
    checker = CrashingChecker(MathCheckConfig(num_workers=1))
    try:
        assert checker.equivalent_many([("1", "2")]) == [False]
        CrashingChecker.job = staticmethod(MathChecker.job)  # the same pool, now healthy
        assert checker.equivalent_many([("1/2", "0.5"), ("1", "2")]) == [True, False]
    finally:
        CrashingChecker.job = staticmethod(die)
        checker.close()


def test_config_errors_list_choices() -> None:
    with pytest.raises(ValueError, match="num_workers"):
        MathCheckConfig(num_workers=0)
    with pytest.raises(ValueError, match="timeout_s"):
        MathCheckConfig(timeout_s=0)


# --------------------------------------------------------------------------- d1 format rewards

STRICT = "<reasoning>\nadd them\n</reasoning>\n<answer>\n42\n</answer>\n"


def test_format_components() -> None:
    assert strict_format(STRICT) == soft_format(STRICT) == 1.0
    assert xml_count(STRICT) == pytest.approx(1.0)
    assert integer_answer(STRICT) == 1.0
    loose = "<reasoning>add</reasoning> <answer>42</answer>"
    assert (strict_format(loose), soft_format(loose)) == (0.0, 1.0)
    trailing = STRICT + "more text"  # d1 charges 0.001 per trailing character (x2 here)
    assert xml_count(trailing) == pytest.approx(1.0 - 2 * 0.002 * len("more text"))
    assert strict_format(trailing) == 0.0
    assert integer_answer("<answer>\n4.5\n</answer>") == 0.0
    assert boxed_answer("<answer>\\boxed{4}</answer>") == 1.0
    assert boxed_answer("\\boxed{4}") == 0.0  # a box outside the answer block
    for garbage in ("", "<answer>", "</reasoning><reasoning>", "\x00" * 5):
        assert 0.0 <= strict_format(garbage) + soft_format(garbage) <= 2.0
        assert xml_count(garbage) <= 1.0
