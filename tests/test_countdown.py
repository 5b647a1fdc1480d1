"""Tests for the countdown task: the reward and the solution enumerator against an independent
brute force, canonical forms, hostile inputs, and the problem generator / split."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from fractions import Fraction

import pytest

from trafl.tasks import TASKS, Task
from trafl.tasks import countdown as cd
from trafl.tasks import countdown_expr as cx
from trafl.tasks.countdown import (
    Countdown,
    CountdownConfig,
    canonical_key,
    enumerate_solutions,
    parse,
    render,
)

# ----------------------------------------------------------------------------- brute force


def brute_force(nums: list[int]) -> dict[Fraction, list[str]]:
    """Every fully parenthesised expression using each number once, grouped by exact value.

    Independent of the task: it combines any two remaining sub-expressions (in both orders,
    with all four operators) until one is left, building strings and evaluating them here.
    """
    found: dict[Fraction, list[str]] = {}

    def rec(items: list[tuple[str, Fraction]]) -> None:
        if len(items) == 1:
            text, value = items[0]
            found.setdefault(value, []).append(text)
            return
        for i, (sa, va) in enumerate(items):
            for j, (sb, vb) in enumerate(items):
                if i == j:
                    continue
                rest = [x for k, x in enumerate(items) if k not in (i, j)]
                combos = [(f"({sa}+{sb})", va + vb), (f"({sa}-{sb})", va - vb)]
                combos.append((f"({sa}*{sb})", va * vb))
                if vb != 0:
                    combos.append((f"({sa}/{sb})", va / vb))
                for combo in combos:
                    rec([*rest, combo])

    rec([(str(n), Fraction(n)) for n in nums])
    return found


def check_against_brute_force(nums: list[int], task: Countdown) -> int:
    """Compare the task with brute force for every integer value reachable from ``nums`` (and a
    few unreachable targets); returns how many (target, solution) pairs were checked."""
    by_value = brute_force(nums)
    checked = 0
    integer_targets = {int(v) for v in by_value if v.denominator == 1}
    unreachable = [t for t in range(1, 200) if t not in integer_targets][:3]
    for target in sorted(integer_targets) + unreachable:
        problem = {"nums": list(nums), "target": target}
        strings = by_value.get(Fraction(target), [])
        keys = set()
        for text in strings:
            assert task.reward(problem, text) == 1.0, (problem, text)
            key = task.solution_key(problem, text)
            assert key is not None and key == canonical_key(text)
            keys.add(key)
        # The enumerator finds every solution and nothing else.
        assert enumerate_solutions(nums, target) == keys, problem
        assert task.all_solutions(problem) == keys
        checked += len(strings)
    # A wrong target never scores, even with the right numbers.
    some_value, some_strings = next(iter(by_value.items()))
    wrong = {"nums": list(nums), "target": some_value + Fraction(1, 2)}
    assert task.reward(wrong, some_strings[0]) == 0.0
    return checked


@pytest.fixture(scope="module")
def task() -> Countdown:
    return Countdown()


def test_three_numbers_agree_with_brute_force(task: Countdown) -> None:
    rng = random.Random(0)
    total = 0
    for _ in range(30):
        nums = [rng.randint(1, 12) for _ in range(3)]
        total += check_against_brute_force(nums, task)
    assert total > 1000  # the comparison really covered many solutions


@pytest.mark.parametrize("nums", [[3, 7, 9, 11], [2, 2, 6, 12], [1, 5, 5, 8], [4, 4, 4, 4]])
def test_four_numbers_agree_with_brute_force(task: Countdown, nums: list[int]) -> None:
    assert check_against_brute_force(nums, task) > 1000


def test_enumerated_keys_are_canonical_solutions() -> None:
    rng = random.Random(1)
    for size in (3, 3, 3, 4, 4):
        nums = [rng.randint(1, 12) for _ in range(size)]
        counts = cd.solution_counts(tuple(sorted(nums)))
        for target in list(counts)[:: max(1, len(counts) // 15)]:
            keys = enumerate_solutions(nums, target)
            assert len(keys) == counts[target] > 0
            for key in keys:
                parsed = parse(key)
                assert parsed is not None, key
                assert parsed.value == target
                assert sorted(parsed.literals) == sorted(nums)
                assert parsed.node.key == key  # idempotent


def test_enumerating_four_numbers_is_fast() -> None:
    cx._all_values.cache_clear()
    cx._solution_table.cache_clear()
    start = time.perf_counter()
    keys = enumerate_solutions([3, 8, 11, 7], 24)
    assert time.perf_counter() - start < 1.0
    assert keys == {canonical_key(s) for s in brute_force([3, 8, 11, 7]).get(Fraction(24), [])}


# ----------------------------------------------------------------------------- canonical forms


@pytest.mark.parametrize(
    "same",
    [
        ["3+4", "4+3", "(3)+(4)", " 4 + 3 "],
        ["12-(7-3)", "12-7+3", "3+12-7", "(12+3)-7", "3-(7-12)"],
        ["(3*4)/2", "3/2*4", "3*(4/2)", "4/(2/3)", "4*3/2"],
        ["12/(6/3)", "12*3/6", "3/6*12", "3/(6/12)"],
        ["2*(3+4)", "(4+3)*2", "(3+4)*2"],
        ["1+2+3+4", "4+(3+(2+1))", "(1+2)+(3+4)"],
        ["12-3-4-5", "12-(3+4+5)", "12-(3+(4+5))", "(12-3)-(4+5)"],
        ["12/3/4/5", "12/(3*4*5)", "12/(3*(4*5))"],
        ["(1+2)*(3-4)", "(3-4)*(2+1)"],
    ],
)
def test_equivalent_expressions_share_a_key(same: list[str]) -> None:
    keys = {canonical_key(expr) for expr in same}
    assert len(keys) == 1 and None not in keys
    (key,) = keys
    assert canonical_key(key) == key
    assert parse(key).value == parse(same[0]).value  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "a, b",
    [
        ("(3+4)*2", "3+4*2"),
        ("12-7-3", "12-(7-3)"),
        ("12/6/3", "12/(6/3)"),
        ("3-4", "4-3"),
        ("(1+2)*(3-4)", "(2+1)*(4-3)*1"),
        ("6/3/1", "6*1/3"),  # different: dividing by vs multiplying by the literal 1
        ("2*3", "2+3"),
    ],
)
def test_different_expressions_have_different_keys(a: str, b: str) -> None:
    assert canonical_key(a) is not None and canonical_key(b) is not None
    assert canonical_key(a) != canonical_key(b)


def test_render_varies_the_string_but_not_the_solution() -> None:
    rng = random.Random(2)
    for key in enumerate_solutions([2, 3, 5, 7], 24) | enumerate_solutions([1, 2, 3, 4], 10):
        node = parse(key).node  # type: ignore[union-attr]
        spellings = {render(node, rng) for _ in range(20)}
        assert all(canonical_key(s) == key for s in spellings)
        assert len(spellings) > 1  # (each of these solutions has operands to reorder)
        assert all(s[0] not in "+-*/" for s in spellings)  # no unary minus / leading op


# ----------------------------------------------------------------------------- hostile input

PROBLEM = {"nums": [3, 4, 5], "target": 12}

MALFORMED = [
    "",
    "   ",
    "abc",
    "3+",
    "3+4+",
    "(3+4",
    "3+4)+5",
    "(3+4+5))",
    "()",
    "3 4 +",
    "3 4 5",
    "3++4+5",
    "3+*4+5",
    "-3+4+5+6",
    "+3+4+5",
    "3+4+5=12",
    "3+4+5 = 12",
    "3+4+5\n=12",
    "3.0+4+5",
    "3+4+5;",
    "3**4+5",
    "3^4+5",
    "03+4+5",
    "3+4+5.",
    "1/0+3+4+5",
    "3+4+5+0/0",
    "3+4/(5-5)",
    "３+4+5",  # full-width digit
    "3+4+٥",  # Arabic-Indic digit
    "3+4+5²",
    "3 + 4 + 5 🙂",
    "3+4+" + "5" * 300,
    "3+4+5" + " " * 10_000,  # over the length cap, even though it strips to an answer
    "(" * 500 + "3+4+5" + ")" * 500,
    "(" * 60 + "3+4+5" + ")" * 60,
    "3+3+3+3",  # a number used twice / a wrong number
    "4+4+4",
    "3+4+5+0",
    "3*4",  # a number left out
    "12",
    "3+4+6-1",
    "__import__('os')",
    "lambda: 12",
    "None",
]


@pytest.mark.parametrize("completion", MALFORMED)
def test_malformed_completions_score_zero(task: Countdown, completion: str) -> None:
    assert task.reward(PROBLEM, completion) == 0.0
    assert task.solution_key(PROBLEM, completion) is None


def test_accepted_spellings(task: Countdown) -> None:
    for text in [
        "3+4+5",
        "  5 + 4 + 3\n",
        "(3+4)+5",
        "5+(4+3)",
        "((3)+4)+(5)",
        "\t3+4+5",
        "4*3*5/5",
    ]:
        expected = 0.0 if text == "4*3*5/5" else 1.0  # the last uses 5 twice
        assert task.reward(PROBLEM, text) == expected, text
    assert task.reward({"nums": [3, 3, 4], "target": 24}, "(3+3)*4") == 1.0
    assert task.reward({"nums": [3, 3, 4], "target": 24}, "(3+4)*4") == 0.0
    # Intermediate fractions are allowed; only the final value must hit the target.
    assert task.reward({"nums": [1, 3, 4, 6], "target": 24}, "6/(1-3/4)") == 1.0


def test_moderate_nesting_is_accepted_deep_nesting_is_not() -> None:
    assert canonical_key("(" * 20 + "3+4" + ")" * 20) == "3+4"
    assert parse("(" * 51 + "3" + ")" * 51) is None  # beyond the nesting cap, still < 200 chars


def test_reward_never_raises_on_garbage_types(task: Countdown) -> None:
    for completion in [None, 12, b"3+4+5", ["3+4+5"], 3.5]:
        assert task.reward(PROBLEM, completion) == 0.0  # type: ignore[arg-type]
        assert task.solution_key(PROBLEM, completion) is None  # type: ignore[arg-type]
    for problem in [{}, {"nums": None, "target": 12}, {"nums": [3, 4, 5]}, {"target": "x"}]:
        assert task.reward(problem, "3+4+5") == 0.0
        assert task.solution_key(problem, "3+4+5") is None
    rng = random.Random(3)
    alphabet = "0123456789+-*/() =xa.\n"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert task.reward(PROBLEM, text) in (0.0, 1.0)


# ----------------------------------------------------------------------------- generator


def test_task_protocol_and_registry(task: Countdown) -> None:
    assert TASKS.get("countdown") is Countdown
    assert Countdown.Config is CountdownConfig
    assert isinstance(task, Task)
    assert task.name == "countdown"
    assert task.prompt({"nums": [3, 7, 12], "target": 25}) == "3 7 12 -> 25:"


def test_config_validation() -> None:
    with pytest.raises(ValueError, match=r"3, 4"):
        CountdownConfig(num_numbers=[5])
    with pytest.raises(ValueError, match=r"3, 4"):
        Countdown.Config(num_numbers=[])
    config = CountdownConfig()
    config.num_numbers = [2]  # changed after construction: the task re-validates
    with pytest.raises(ValueError, match=r"3, 4"):
        Countdown(config)
    with pytest.raises(ValueError):
        CountdownConfig(min_number=0)
    with pytest.raises(ValueError):
        CountdownConfig(min_target=10, max_target=5)
    with pytest.raises(ValueError):
        CountdownConfig(min_solutions=0)


def test_splits(task: Countdown) -> None:
    with pytest.raises(ValueError, match="sample_train"):
        task.problems("train")
    with pytest.raises(ValueError, match="test"):
        task.problems("validation")


def test_test_split_is_deterministic_distinct_and_in_range() -> None:
    config = CountdownConfig(num_numbers=[3, 4], num_test=120, min_solutions=3, max_target=60)
    a, b = Countdown(config).problems("test"), Countdown(config).problems("test")
    assert a == b
    other = Countdown(CountdownConfig(num_numbers=[3, 4], num_test=120, split_seed=7))
    assert other.problems("test") != a
    ids = {(tuple(sorted(p["nums"])), p["target"]) for p in a}
    assert len(a) == len(ids) == 120
    assert {len(p["nums"]) for p in a} == {3, 4}
    for p in a:
        assert json.loads(json.dumps(p)) == p
        assert all(1 <= n <= 12 for n in p["nums"])
        assert 1 <= p["target"] <= 60
        assert len(enumerate_solutions(p["nums"], p["target"])) >= 3
    # Mutating a returned problem does not corrupt the cached split.
    t = Countdown(config)
    t.problems("test")[0]["nums"].append(99)
    assert t.problems("test") == a


def test_default_test_split_size(task: Countdown) -> None:
    test = task.problems("test")
    assert len(test) == 500
    assert len({(tuple(sorted(p["nums"])), p["target"]) for p in test}) == 500
    sizes = {len(p["nums"]) for p in test}
    assert sizes == {3, 4}  # the default mixes both sizes
    assert all(len(task.all_solutions(p)) >= 2 for p in test)  # default min_solutions=2
    assert all(1 <= n <= 9 for p in test for n in p["nums"]) and all(
        p["target"] <= 50 for p in test
    )


def test_the_shipped_split_is_what_drawing_gives(monkeypatch) -> None:
    """The default config's split is read from the shipped file, without drawing, and the file
    holds exactly the draw (rerun scripts/countdown_split.py after changing the generator)."""
    drawn, ids = Countdown()._draw_test_split()
    monkeypatch.setattr(cd, "_SPLITS", {})

    def no_draw(self):
        raise AssertionError("drew the default split instead of reading the shipped file")

    monkeypatch.setattr(Countdown, "_draw_test_split", no_draw)
    for pools in ({}, {"pool": 8}, {"train_pool": 3}):  # the pools do not change the split
        read = Countdown(CountdownConfig(**pools))
        assert read.problems("test") == drawn and read._test_ids == ids
    other = Countdown(CountdownConfig(num_test=499))  # any other config is drawn
    with pytest.raises(AssertionError, match="drew the default split"):
        other.problems("test")


def test_sample_train_never_returns_test_problems() -> None:
    # A small problem space, so that raw draws hit the test split often.
    config = CountdownConfig(max_number=4, max_target=10, num_test=40)
    task = Countdown(config)
    test_ids = {(tuple(sorted(p["nums"])), p["target"]) for p in task.problems("test")}
    raw_rng = random.Random(5)
    raw = [task._draw(raw_rng) for _ in range(300)]
    assert sum((tuple(sorted(p["nums"])), p["target"]) in test_ids for p in raw) > 30
    train = task.sample_train(300, random.Random(5))
    assert len(train) == 300
    assert not any((tuple(sorted(p["nums"])), p["target"]) in test_ids for p in train)
    assert task.sample_train(20, random.Random(6)) == task.sample_train(20, random.Random(6))


def test_demonstrations_are_correct(task: Countdown) -> None:
    rng = random.Random(8)
    four = Countdown(CountdownConfig(num_numbers=[4], num_test=30))
    for t in (task, four):
        for problem in t.problems("test")[:60]:
            for _ in range(3):
                demo = t.demonstration(problem, rng)
                assert t.reward(problem, demo) == 1.0, (problem, demo)


def test_demonstrations_are_uniform_over_canonical_solutions(task: Countdown) -> None:
    problem = next(
        p
        for p in task.problems("test")
        if 4 <= len(enumerate_solutions(p["nums"], p["target"])) <= 8
    )
    solutions = enumerate_solutions(problem["nums"], problem["target"])
    k = len(solutions)
    rng = random.Random(9)
    demos = [task.demonstration(problem, rng) for _ in range(50 * k)]
    hits = Counter(task.solution_key(problem, d) for d in demos)
    assert set(hits) == solutions  # every solution shows up, nothing else does
    assert all(20 <= c <= 90 for c in hits.values()), hits  # expected 50 each (sd ~ 7)
