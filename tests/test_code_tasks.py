"""Code rewards and tasks: extraction and format rules, the loaders on small fixture files in the
real datasets' layouts, scoring through the sandbox, and tiny_code's generator and family."""

from __future__ import annotations

import base64
import json
import pickle
import random
import zlib
from collections import OrderedDict
from pathlib import Path

import pytest

from trafl.rewards.code import CodeRewardConfig, extract_code, format_score, normalise
from trafl.tasks import TASKS
from trafl.tasks.data import DataError
from trafl.tasks.humaneval import HumanEval, HumanEvalConfig
from trafl.tasks.livecodebench import LiveCodeBench, LiveCodeBenchConfig, decode_tests
from trafl.tasks.mbpp import MBPP, MBPPConfig
from trafl.tasks.tiny_code import TinyCode
from trafl.tasks.tiny_code_family import evaluate, key, parse, render

FIXTURES = Path(__file__).parent / "fixtures" / "code"


def fenced(code: str, lead: str = "Here is my solution:\n") -> str:
    return f"{lead}```python\n{code}\n```"


# --------------------------------------------------------------------------- rewards/code.py


def test_extract_code_follows_the_fence_conventions() -> None:
    two = "```python\na = 1\n```\ntext\n```python\nb = 2\n```"
    assert extract_code(two, "first") == "a = 1\n" and extract_code(two, "last") == "b = 2\n"
    assert extract_code("```\nbare = 1\n```") == "bare = 1\n"
    assert extract_code("```bash\nls\n```\n```py\nx = 1\n```") == "x = 1\n"  # python wins
    assert extract_code("sure\n```python\ndef f():\n    return 1") == "def f():\n    return 1"
    assert extract_code("    return x") == "    return x"  # no fence: a continuation
    assert extract_code("```bash\nrm -rf /\n```") == ""  # never run another language


def test_format_score_is_diffucoders() -> None:
    assert format_score(fenced("x = 1")) == 1.0
    assert format_score(fenced("x = (")) == 0.5
    assert format_score("x = 1") == 0.0
    assert format_score(fenced("x = 1") + "\n```python\ny = 2\n```") == 0.0  # two blocks
    assert format_score("```python\nx = 1") == 0.0  # never closed


def test_normalise_ignores_formatting_comments_docstrings_and_stubs() -> None:
    a = 'def f(x):\n    """Doc."""\n    return x+1  # add\n'
    b = "def f(x):\n    pass\n\ndef f( x ):\n    return (x + 1)\n"
    assert normalise(a) == normalise(b) == "def f(x):\n    return x + 1"
    assert normalise("def f(:") is None


def test_weights_keep_the_evaluation_threshold_meaningful() -> None:
    with pytest.raises(ValueError, match="format_weight"):
        CodeRewardConfig(format_weight=1.0)


# --------------------------------------------------------------------------- humaneval


@pytest.fixture(scope="module")
def humaneval() -> HumanEval:
    return HumanEval()


def test_humaneval_loads_offline_from_the_package(humaneval: HumanEval) -> None:
    problems = humaneval.problems("test")
    assert len(problems) == 164 and problems[0]["task_id"] == "HumanEval/0"
    assert humaneval.prompt(problems[0]).startswith("Write a solution to the following problem")
    with pytest.raises(ValueError, match="valid: 'test'"):
        humaneval.problems("train")


def test_humaneval_scores_full_definitions_bodies_and_wrong_code(humaneval: HumanEval) -> None:
    p = humaneval.problems("test")[2]  # truncate_number
    full = fenced(p["prompt"] + p["canonical_solution"])
    body = fenced(p["canonical_solution"].rstrip("\n"))
    restyled = fenced(
        "def truncate_number(number):\n    # the fractional part\n    return number % 1"
    )
    wrong = fenced("def truncate_number(number: float) -> float:\n    return number")
    scores = humaneval.score([p] * 5, [full, body, restyled, wrong, "no code at all"])
    assert [s["correct"] for s in scores] == [1, 1, 1, 0, 0]
    assert [s["format"] for s in scores] == [1, 1, 1, 1, 0]
    assert scores[0]["reward"] == 2.5 and scores[3]["reward"] == 0.5
    keys = [humaneval.solution_key(p, c) for c in (full, restyled, wrong)]
    assert keys[0] is not None and keys[2] is None and keys[0] != keys[1]


def test_humaneval_completion_style_and_local_file(tmp_path: Path, humaneval: HumanEval) -> None:
    rows = humaneval.problems("test")[:2]
    path = tmp_path / "he.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = HumanEval(HumanEvalConfig(path=str(path), prompt_style="completion"))
    local = task.problems("test")
    assert [r["task_id"] for r in local] == ["HumanEval/0", "HumanEval/1"]
    p = local[0]
    assert task.prompt(p) == p["prompt"]
    extra = p["canonical_solution"] + "\ndef unrelated():\n    raise SystemExit\n"
    assert [s["correct"] for s in task.score([p, p], [extra, "    return None\n"])] == [1, 0]


# --------------------------------------------------------------------------- mbpp


@pytest.fixture(scope="module")
def mbpp() -> MBPP:
    return MBPP(MBPPConfig(path=str(FIXTURES / "mbpp.jsonl")))


def test_mbpp_loads_the_fixture_and_prompts_like_lm_eval(mbpp: MBPP) -> None:
    problems = mbpp.problems("test")
    assert [p["task_id"] for p in problems] == ["11", "12", "901"]
    prompt = mbpp.prompt(problems[0])
    assert prompt.startswith("You are an expert Python programmer, and here is your task:\n")
    assert prompt.endswith('assert remove_Occ("PHP","P") == "H"')
    with pytest.raises(DataError, match="train_path"):
        mbpp.problems("train")


def test_mbpp_reference_solutions_pass_and_partial_credit_counts(mbpp: MBPP) -> None:
    problems = mbpp.problems("test")
    rng = random.Random(0)
    demos = [mbpp.demonstration(p, rng) for p in problems]  # uses the setup code (sqrt)
    assert [s["correct"] for s in mbpp.score(problems, demos)] == [1, 1, 1]
    one_of_three = fenced("def sort_matrix(M):\n    return [[1, 1, 1], [1, 2, 3], [2, 4, 5]]")
    [strict] = mbpp.score([problems[1]], [one_of_three])
    assert strict["correct"] == 0 and strict["pass_rate"] == pytest.approx(1 / 3)
    partial = MBPP(
        MBPPConfig(
            path=str(FIXTURES / "mbpp.jsonl"),
            reward=CodeRewardConfig(partial_credit=True, format_weight=0.0),
        )
    )
    assert partial.score([problems[1]], [one_of_three])[0]["reward"] == pytest.approx(2 / 3)


def test_mbpp_begin_done_style_and_challenge_tests() -> None:
    cfg = MBPPConfig(path=str(FIXTURES / "mbpp.jsonl"), prompt_style="begin_done")
    task = MBPP(cfg)
    p = task.problems("test")[1]
    assert task.prompt(p).endswith("[BEGIN]\n")
    code = "def sort_matrix(M):\n    return sorted(M, key=sum)\n[DONE] trailing text"
    assert task.score([p], [code])[0] == {"reward": 2.5, "correct": 1, "pass_rate": 1, "format": 1}
    hard = MBPP(MBPPConfig(path=str(FIXTURES / "mbpp.jsonl"), challenge_tests=True))
    assert len(hard.problems("test")[0]["tests"]) == 5


def test_hub_tasks_offline_name_both_options(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="task.path"):
        MBPP().problems("test")
    with pytest.raises(DataError, match="task.path"):
        LiveCodeBench(LiveCodeBenchConfig(dataset="no-such/dataset-xyz")).problems("test")


# --------------------------------------------------------------------------- livecodebench


@pytest.fixture(scope="module")
def lcb() -> LiveCodeBench:
    return LiveCodeBench(LiveCodeBenchConfig(path=str(FIXTURES / "livecodebench.jsonl")))


def test_livecodebench_loader_decodes_private_tests_and_filters(lcb: LiveCodeBench) -> None:
    problems = lcb.problems("test")
    assert [p["question_id"] for p in problems] == ["abc900_a", "9001", "2090Z"]
    assert len(problems[0]["tests"]) == 3  # 1 public + 2 compressed private
    assert problems[1]["func_name"] == "largestElement"
    assert "### Format: You will use the following starter code" in lcb.prompt(problems[1])
    assert "# YOUR CODE HERE" in lcb.prompt(problems[0])
    path = str(FIXTURES / "livecodebench.jsonl")
    hard = LiveCodeBench(LiveCodeBenchConfig(path=path, difficulties=["hard"]))
    assert [p["question_id"] for p in hard.problems("test")] == ["2090Z"]
    window = LiveCodeBench(
        LiveCodeBenchConfig(path=path, start_date="2024-10-01", end_date="2024-12-31")
    )
    assert [p["question_id"] for p in window.problems("test")] == ["9001"]
    with pytest.raises(ValueError, match="valid: \\['easy', 'medium', 'hard'\\]"):
        LiveCodeBenchConfig(difficulties=["extreme"])


def test_livecodebench_test_data_is_never_unpickled_with_globals() -> None:
    evil = base64.b64encode(zlib.compress(pickle.dumps(OrderedDict(a=1)))).decode()
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        decode_tests(evil)


def test_livecodebench_stdin_and_functional_scoring(lcb: LiveCodeBench) -> None:
    add, largest, mean = lcb.problems("test")
    completions = [
        fenced("a, b = map(int, input().split())\nprint(a + b)"),
        fenced("print(sum(map(int, input().split())) + 1)"),
        fenced(
            "class Solution:\n    def largestElement(self, nums: List[int]) -> int:\n"
            "        return max(nums)"
        ),
        fenced("class Solution:\n    def largestElement(self, nums):\n        return nums[0]"),
        fenced(
            "import sys\nn, *xs = map(int, sys.stdin.read().split())\nprint(f'{sum(xs)/n:.3f}')"
        ),
    ]
    scores = lcb.score([add, add, largest, largest, mean], completions)
    assert [s["correct"] for s in scores] == [1, 0, 1, 0, 1]
    assert scores[3]["pass_rate"] == pytest.approx(1 / 3)  # only [-7] starts with the max


# --------------------------------------------------------------------------- tiny_code


@pytest.fixture(scope="module")
def tiny() -> TinyCode:
    return TinyCode()


def test_tiny_code_is_registered_and_its_split_is_deterministic(tiny: TinyCode) -> None:
    assert TASKS.get("tiny_code") is TinyCode
    again = TinyCode()
    assert tiny.problems("test") == again.problems("test")
    assert tiny.sample_train(20, random.Random(5)) == again.sample_train(20, random.Random(5))
    other = TinyCode(TinyCode.Config(split_seed=99))
    assert other.problems("test") != tiny.problems("test")


def test_tiny_code_splits_are_disjoint_and_examples_identify_problems(tiny: TinyCode) -> None:
    def ident(p: dict) -> tuple:
        return tuple(y for _, y in p["tests"])

    test = {ident(p) for p in tiny.problems("test")}
    train = {ident(p) for p in tiny.problems("train")}
    assert len(test) == tiny.config.num_test == 100 and not test & train
    assert all(ident(p) not in test for p in tiny.sample_train(500, random.Random(0)))
    shown = [tiny.prompt(p) for p in tiny.problems("test") + tiny.problems("train")]
    assert len(set(shown)) == len(shown)  # no two problems look alike


def test_tiny_code_demonstrations_pass_the_hidden_tests(tiny: TinyCode) -> None:
    rng = random.Random(0)
    problems = tiny.sample_train(30, rng) + tiny.problems("test")[:30]
    demos = [tiny.demonstration(p, rng) for p in problems]
    assert all(s["correct"] == 1.0 for s in tiny.score(problems, demos))
    assert all(key(parse(d)) in tiny.all_solutions(p) for p, d in zip(problems, demos, strict=True))
    for p, demo in zip(problems, demos, strict=True):  # and in the trainer's own evaluator
        assert [evaluate(parse(demo), x) for x, _ in p["tests"]] == [y for _, y in p["tests"]]


def test_tiny_code_many_programs_solve_a_problem(tiny: TinyCode) -> None:
    p = tiny.problems("test")[0]
    solutions = sorted(tiny.all_solutions(p))
    assert len(solutions) >= 3
    scores = tiny.score([p] * len(solutions), solutions)
    assert all(s["correct"] == 1.0 for s in scores)
    assert {tiny.solution_key(p, s) for s in solutions} == set(solutions)
    rng = random.Random(1)
    for solution in solutions:  # every spelling has the same canonical key
        assert {key(parse(render(parse(solution), rng))) for _ in range(5)} == {solution}


def test_tiny_code_rewards_match_the_programs_behaviour(tiny: TinyCode) -> None:
    rng = random.Random(2)
    problems = tiny.problems("test")[:40]
    candidates = [tiny.demonstration(q, rng) for q in tiny.sample_train(40, rng)]
    target = problems[0]
    scores = tiny.score([target] * len(candidates), candidates)
    for candidate, s in zip(candidates, scores, strict=True):
        want = all(evaluate(parse(candidate), x) == y for x, y in target["tests"])
        assert s["correct"] == float(want) and s["reward"] == float(want) and s["format"] == 1.0
    double = {
        "examples": [[x, 2 * x] for x in tiny.config.example_inputs],
        "tests": [[x, 2 * x] for x in tiny.inputs],
    }
    odd = ["x<<1", "x*2==x*2", "x*2/1", "x+", "1)\nimport os\nos._exit(0)\n(1"]
    shift, true, div, broken, escape = tiny.score([double] * 5, odd)
    assert shift["correct"] == 1  # outside the grammar, still a solution
    assert tiny.solution_key(double, "x<<1") == "py:x << 1"
    assert "py:x << 1" not in tiny.all_solutions(double) and "2*x" in tiny.all_solutions(double)
    assert true["correct"] == div["correct"] == 0  # a bool or a float is not the int answer
    assert broken["format"] == 0 and escape["correct"] == 0


def test_tiny_code_family_keys_round_trip(tiny: TinyCode) -> None:
    """Canonical keys parse back to themselves, compute their group's behaviour, and every
    random spelling parses to the same key (a bug here makes demonstrations wrong)."""
    rng = random.Random(3)
    groups = list(tiny.groups.items())
    for behaviour, keys in rng.sample(groups, 1500):
        k = rng.choice(keys)
        tree = parse(k)
        assert key(tree) == k
        assert tuple(evaluate(tree, x) for x in tiny.inputs) == behaviour
        assert key(parse(render(tree, rng))) == k


def test_tiny_code_config_errors_list_valid_choices() -> None:
    with pytest.raises(ValueError, match="valid: \\+, -, \\*"):
        TinyCode.Config(ops=["+", "**"])
    with pytest.raises(ValueError, match="lower num_test"):
        TinyCode(TinyCode.Config(max_nodes=3, num_test=200))
