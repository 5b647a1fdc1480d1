"""The math and puzzle benchmarks (gsm8k, math500, minerva_math, countdown_d1, sudoku): loaders on
fixture files in each dataset's real field layout, d1's prompts, rewards on correct / wrong /
malformed completions, components reaching the trainer through ``safe_scores``, and the
offline error that names ``task.path``."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from trafl.core.config import ConfigError, from_dict
from trafl.run.rollouts import safe_scores
from trafl.tasks import TASKS
from trafl.tasks import countdown_d1 as countdown_d1_module
from trafl.tasks.base import ScoringTask, Task
from trafl.tasks.countdown_d1 import CountdownD1, CountdownD1Config
from trafl.tasks.data import DataError
from trafl.tasks.gsm8k import GSM8K, GSM8KConfig
from trafl.tasks.math500 import Math500, Math500Config
from trafl.tasks.math_common import D1_SYSTEM_PROMPT
from trafl.tasks.minerva_math import MinervaMathConfig
from trafl.tasks.sudoku import SUDOKU_SYSTEM_PROMPT, Sudoku, SudokuConfig

DATA = Path(__file__).parent / "fixtures" / "math"
NAMES = ("gsm8k", "math500", "minerva_math", "countdown_d1", "sudoku")


def d1(reasoning: str, answer: str) -> str:
    """A completion in d1's strict format."""
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer}\n</answer>\n"


MALFORMED = ["", "<answer>", "</answer><answer>", "\\boxed{", "}" * 50 + "{" * 50, "\x00\ufffd"]


def make(name: str, **fields: Any) -> Any:
    """A task built the way a run builds it: from its config section."""
    cls = TASKS.get(name)
    return cls(from_dict(cls.Config, {"name": name, **fields}))


@pytest.fixture(scope="module")
def gsm8k() -> GSM8K:
    return make("gsm8k", path=str(DATA / "gsm8k.jsonl"), train_path=str(DATA / "gsm8k.jsonl"))


@pytest.fixture(scope="module")
def math500() -> Math500:
    return make(
        "math500", path=str(DATA / "math500.jsonl"), train_path=str(DATA / "math_train.jsonl")
    )


@pytest.fixture(scope="module")
def countdown() -> CountdownD1:
    path, train = DATA / "countdown_cd3_test.jsonl", DATA / "countdown_hub.jsonl"
    return make("countdown_d1", path=str(path), train_path=str(train))


@pytest.fixture(scope="module")
def sudoku() -> Sudoku:
    return make("sudoku", path=str(DATA / "sudoku.jsonl"), train_path=str(DATA / "sudoku_d1.csv"))


def test_registered_and_protocols() -> None:
    for name in NAMES:
        task = TASKS.get(name)()
        assert isinstance(task, Task) and isinstance(task, ScoringTask)
        assert task.name == name


# --------------------------------------------------------------------------- gsm8k


def test_gsm8k_loads_prompts_and_demonstrates(gsm8k: GSM8K) -> None:
    problems = gsm8k.problems("test")
    assert [p["answer"] for p in problems] == ["18", "900", "150"]
    first = problems[0]
    assert gsm8k.prompt(first) == D1_SYSTEM_PROMPT + "\n\n" + first["question"]
    assert gsm8k.prompt(first).startswith("\nRespond in the following format:\n<reasoning>\n")
    demo = gsm8k.demonstration(first, random.Random(0))
    assert demo.endswith("<answer>\n18\n</answer>") and "<<" not in demo and "####" not in demo
    assert gsm8k.score([first], [demo])[0]["strict_format"] == 1.0
    draws = gsm8k.sample_train(5, random.Random(1))
    assert draws == gsm8k.sample_train(5, random.Random(1)) and all(d in problems for d in draws)


def test_gsm8k_rewards(gsm8k: GSM8K) -> None:
    p = gsm8k.problems("test")[0]  # 18 muffins
    texts = [
        d1("48 - 30 = 18", "18"),
        "so there are \\boxed{18.0} muffins",
        "48 - 30 leaves 18 muffins",  # last number
        d1("48 - 30 = 17", "17"),
        *MALFORMED,
    ]
    scores = gsm8k.score([p] * len(texts), texts)
    assert [s["correct"] for s in scores] == [1, 1, 1, 0] + [0] * len(MALFORMED)
    assert [s["reward"] for s in scores] == [s["correct"] for s in scores]  # default weights
    strict = scores[0]
    assert (strict["strict_format"], strict["soft_format"], strict["integer"]) == (1, 1, 1)
    assert strict["xml"] == pytest.approx(1.0)
    assert gsm8k.solution_key(p, texts[1]) == "18" and gsm8k.solution_key(p, texts[3]) is None


def test_gsm8k_d1_weights(gsm8k: GSM8K) -> None:
    weights = dict(correct_weight=2.0, xml_weight=0.5, soft_format_weight=0.5)
    task = make(
        "gsm8k",
        path=str(DATA / "gsm8k.jsonl"),
        strict_format_weight=0.5,
        integer_weight=0.5,
        **weights,
    )
    p = task.problems("test")[0]
    right, wrong = task.score([p, p], [d1("x", "18"), d1("x", "17")])
    assert right["reward"] == pytest.approx(4.0)  # d1's maximum: 2 + 4 * 0.5
    assert wrong["reward"] == pytest.approx(2.0)


# --------------------------------------------------------------------------- math500, minerva


def test_math500_loads_and_prompts(math500: Math500) -> None:
    problems = math500.problems("test")
    assert [p["answer"] for p in problems][:2] == [
        "\\frac{3}{4}",
        "\\left( 3, \\frac{\\pi}{2} \\right)",
    ]
    assert problems[0]["subject"] == "Prealgebra" and problems[0]["level"] == 1
    expected = (
        D1_SYSTEM_PROMPT + "\n\nYou are a math expert. You will be given a question to solve. "
        "Solve it step by step. Wrap the final answer in a \\boxed{}. \n\n"
        + problems[0]["question"]
    )
    assert math500.prompt(problems[0]) == expected
    train = math500.problems("train")  # ankner/math-500 layout: the answer is the solution's box
    assert [p["answer"] for p in train] == ["3\\sqrt{2}", "\\frac{1}{6}"]
    demo = math500.demonstration(problems[0], random.Random(0))
    assert demo.endswith("<answer>\n\\boxed{\\frac{3}{4}}\n</answer>")


def test_math500_rewards(math500: Math500) -> None:
    frac, polar, roots = math500.problems("test")
    cases = [
        (frac, d1("2/4 + 1/4", "\\boxed{0.75}"), 1),
        (polar, "so it is $\\boxed{(3, \\pi/2)}$", 1),
        (roots, d1("factor", "\\boxed{2, -2}"), 1),
        (polar, d1("hmm", "\\boxed{(3, \\pi)}"), 0),
        (frac, "the answer is 0.75", 0),  # no box and no answer block: no last-number fallback
        *[(frac, text, 0) for text in MALFORMED],
    ]
    scores = math500.score([c[0] for c in cases], [c[1] for c in cases])
    assert [s["correct"] for s in scores] == [c[2] for c in cases]
    assert scores[0]["boxed"] == 1.0 and scores[1]["boxed"] == 0.0


def test_minerva_scientific_answers() -> None:
    task = make("minerva_math", path=str(DATA / "minerva.jsonl"), checker={"num_workers": 1})
    parallax, light = task.problems("test")
    assert (parallax["answer"], light["answer"]) == ("10", "7.5e-7")
    texts = [
        "\\boxed{10 \\text{ pc}}",
        d1("c / f", "\\boxed{7.5 \\times 10^{-7}}"),
        "\\boxed{7 \\times 10^{-7}}",
    ]
    scores = task.score([parallax, light, light], texts)
    assert [s["correct"] for s in scores] == [1, 1, 0]
    with pytest.raises(ValueError, match="no worked solution"):
        task.demonstration(parallax, random.Random(0))


# --------------------------------------------------------------------------- countdown_d1


def test_countdown_d1_prompt_and_rewards(countdown: CountdownD1) -> None:
    p = countdown.problems("test")[0]
    assert p == {"nums": [30, 100, 93], "target": 23}
    prompt = countdown.prompt(p)
    assert prompt.startswith(D1_SYSTEM_PROMPT + "\nUsing only the numbers [30, 100, 93], create")
    assert "evaluates to exactly 23. You must use all numbers" in prompt
    assert prompt.endswith("a valid answer is: <answer>\n2*4-3\n</answer>")
    cases = [
        (d1("30 + 93 = 123", "30+93-100"), 1.0),
        ("<answer>\\boxed{(93 - 100) + 30} = 23</answer>", 1.0),  # d1's evaluation clean-up
        (d1("x", "30+93+100"), 0.1),  # wrong value: d1's format score
        (d1("x", "23"), 0.1),  # wrong numbers
        (d1("x", "-100+93+30"), 0.1),  # unary minus is not Countdown
        ("30+93-100", 0.0),  # no answer block
        *[(text, 0.0) for text in MALFORMED],  # none has a closed answer block
    ]
    scores = countdown.score([p] * len(cases), [c[0] for c in cases])
    assert [s["reward"] for s in scores] == pytest.approx([c[1] for c in cases])
    key = countdown.solution_key(p, cases[0][0])
    assert key is not None and key == countdown.solution_key(p, d1("", "93 - 100 + 30"))
    assert key in countdown.all_solutions(p)
    with pytest.raises(ValueError, match="no worked solutions"):
        countdown.demonstration(p, random.Random(0))


def test_countdown_d1_splits(countdown: CountdownD1, monkeypatch: pytest.MonkeyPatch) -> None:
    # train_path rows: 3-number problems only (d1's filter), never a test problem
    assert countdown.problems("train") == [
        {"nums": [4, 6, 1], "target": 24},
        {"nums": [3, 5, 2], "target": 17},
        {"nums": [44, 19, 35], "target": 98},
    ]
    # the hub default: the last num_test 3-number rows are held out as the test split
    hub_rows = countdown._read(str(DATA / "countdown_hub.jsonl"), None, "train", None)

    def fake_load(path: Any, dataset: Any, split: str, subset: Any, task: str) -> list[dict]:
        assert path is None and dataset == "Jiayi-Pan/Countdown-Tasks-3to4" and split == "train"
        return hub_rows

    monkeypatch.setattr(countdown_d1_module, "load_records", fake_load)
    task = CountdownD1(CountdownD1Config(num_test=1))
    assert task.problems("test") == [{"nums": [44, 19, 35], "target": 98}]
    assert len(task.problems("train")) == 2
    assert all(p["target"] != 98 for p in task.sample_train(20, random.Random(0)))


# --------------------------------------------------------------------------- sudoku


def test_sudoku_loads_prompts_and_rewards(sudoku: Sudoku) -> None:
    p = sudoku.problems("test")[0]
    assert (
        sudoku.prompt(p)
        == f"{SUDOKU_SYSTEM_PROMPT}\n\nSolve the following Sudoku puzzle: {p['puzzle']}\n"
    )
    assert [q["puzzle"] for q in sudoku.problems("train")][0] == "0300200010000004"  # d1's CSV
    solution = p["solution"]  # 3142423114232314; puzzle 0100003000230000 (12 empty cells)
    half = solution[:8] + "1111" + "1111"
    rows = "\n".join(solution[i : i + 4] for i in range(0, 16, 4))
    cases = [
        (d1("fill", solution), 1.0),
        (f"<answer>\n{rows}\n</answer>", 1.0),  # digits only: separators are ignored
        (d1("fill", solution + "1234"), 1.0),  # cut to 16
        (d1("fill", half), None),
        (solution, 0.0),  # no answer block
        *[(text, 0.0) for text in MALFORMED],
    ]
    scores = sudoku.score([p] * len(cases), [c[0] for c in cases])
    empty = [i for i, ch in enumerate(p["puzzle"]) if ch == "0"]
    expected_half = sum(half[i] == solution[i] for i in empty) / len(empty)
    assert [s["cells"] for s in scores] == pytest.approx(
        [c[1] if c[1] is not None else expected_half for c in cases]
    )
    assert [s["correct"] for s in scores][:4] == [1, 1, 1, 0]
    assert sudoku.solution_key(p, cases[0][0]) == solution and sudoku.all_solutions(p) == {solution}
    assert sudoku.score([p], [sudoku.demonstration(p, random.Random(0))])[0]["correct"] == 1.0


def test_sudoku_rejects_a_wrong_solution(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"puzzle": "0100003000230000", "solution": "3142423114232311"}\n')
    with pytest.raises(DataError, match="not a solved 4x4 grid"):
        Sudoku(SudokuConfig(path=str(bad))).problems("test")


# --------------------------------------------------------------------------- shared behaviour


@pytest.mark.parametrize("name", NAMES)
def test_offline_hub_error_names_both_options(name: str) -> None:
    task = make(name, dataset="trafl-tests/no-such-dataset")
    with pytest.raises(DataError, match="task.path") as err:
        task.problems("test")
    assert "trafl-tests/no-such-dataset" in str(err.value)
    with pytest.raises(DataError, match="task.train_path"):
        task.sample_train(1, random.Random(0))


@pytest.mark.parametrize(
    ("fixture", "components"),
    [
        ("gsm8k", {"correct", "xml", "soft_format", "strict_format", "integer"}),
        ("math500", {"correct", "xml", "soft_format", "strict_format", "boxed"}),
        ("countdown", {"correct", "format"}),
        ("sudoku", {"correct", "cells"}),
    ],
)
def test_components_reach_safe_scores(
    fixture: str, components: set[str], request: pytest.FixtureRequest
) -> None:
    task = request.getfixturevalue(fixture)
    problems = task.problems("test")[:2]
    scores, errors = safe_scores(task, problems, ["<answer>\n1\n</answer>", "garbage"])
    assert errors == 0 and len(scores) == 2
    assert all(set(s) == {"reward"} | components for s in scores)


def test_d1_eval_prompts() -> None:
    gsm = make("gsm8k", path=str(DATA / "gsm8k.jsonl"), prompt_style="d1_eval")
    q = gsm.problems("test")[0]
    assert gsm.prompt(q).startswith("You are a math expert. You will be given a question to solve.")
    assert gsm.prompt(q).endswith("<answer>\n\\boxed{...}\n</answer>\n\n" + q["question"])
    cd = make("countdown_d1", path=str(DATA / "countdown_cd3_test.jsonl"), prompt_style="d1_eval")
    prompt = cd.prompt(cd.problems("test")[0])
    assert "For example: \\boxed{a + b * c}Respond in the following format:" in prompt
    assert prompt.endswith("</answer>\n\nNumbers: [30, 100, 93]\nTarget: 23")
    with pytest.raises(ConfigError, match="d1_train"):
        make("math500", prompt_style="d1")


def test_config_errors_list_valid_keys() -> None:
    with pytest.raises(ConfigError, match="correct_weight"):
        from_dict(GSM8KConfig, {"name": "gsm8k", "corect_weight": 2})
    with pytest.raises(ConfigError, match="timeout_s"):
        from_dict(Math500Config, {"name": "math500", "checker": {"timeout_s": -1}})
    assert from_dict(MinervaMathConfig, {"name": "minerva_math"}).checker.float_rounding == 12
