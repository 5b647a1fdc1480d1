"""``countdown_d1``: Countdown as d1 trains and evaluates it (our embedded ``countdown`` is a
different, generated task with a bare-expression format).

Data: the hub dataset ``Jiayi-Pan/Countdown-Tasks-3to4`` (fields ``nums``, ``target``; one
``train`` split of about 490k problems), kept to problems with 3 numbers as d1's
``get_countdown_questions`` does (``num_numbers``). The hub has no test split, so by default
the last ``num_test`` (256) of those rows are held out as the test split and never drawn for
training. d1 reports numbers on its own file of 256 problems, ``dataset/countdown_cd3_test.jsonl``
in the d1 repository (``{"input": "30,100,93", "output": "23"}``): point ``task.path`` at it to
compare with d1 (both layouts are read; a file given by ``path`` is used as is).

Prompt: d1's training prompt, ``SYSTEM_PROMPT + "\\nUsing only the numbers [a, b, c], create
an arithmetic expression that evaluates to exactly T. ..."`` (in the user turn);
``prompt_style=d1_eval`` gives d1's evaluation prompt (``\\boxed{}`` in the answer block,
then ``"Numbers: [a, b, c]\\nTarget: T"``).

Reward: d1's ``countdown_reward_func``: 1.0 when the last closed ``<answer>...</answer>`` block
holds an expression that uses exactly the given numbers and equals the target, 0.1 when there is
such a block but the expression is wrong or malformed, 0 without one (``correct_weight``,
``format_weight``). Components: ``correct`` and ``format`` (a closed answer block). Expressions
are read by the embedded task's safe parser (never ``eval``) in exact rational arithmetic, after
d1's evaluation-time clean-up (a ``\\boxed{}`` in the block, ``\\times``/``\\div``/``\\cdot``,
a trailing ``= target``). Unlike d1 a unary minus is not accepted (it would negate a number).
Solution keys are the embedded task's canonical keys, so ``all_solutions`` enumerates them.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from dataclasses import dataclass, field

from trafl.core.config import check_choice
from trafl.core.errors import UserError
from trafl.rewards.answers import last_boxed
from trafl.tasks.base import TASKS, Problem
from trafl.tasks.countdown_expr import Parsed, enumerate_solutions, parse
from trafl.tasks.data import DataError, Record, convert_records, load_records
from trafl.tasks.hub import HubDataConfig
from trafl.tasks.math_common import D1_SYSTEM_PROMPT, PROMPT_STYLES

log = logging.getLogger(__name__)

# d1's evaluation prompt for Countdown (eval/countdown.py, CTD_SYSTEM_PROMPT), byte for byte
# (no space before "Respond": d1 concatenates the pieces so).
D1_EVAL_PROMPT = (
    "Using only the provided numbers, create an arithmetic expression that evaluates to exactly "
    "the provided target number. You may use the operations +, -, *, and / as needed, but each "
    "number must be used exactly once. Think step-by-step. After reasoning, provide only your "
    "final expression inside \\boxed{} tags without including an equals sign or the target "
    "number. For example: \\boxed{a + b * c}Respond in the following format:\n<reasoning>\n"
    "Your reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>"
)

_ANSWER_BLOCKS = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_TRAILING_EQUALS = re.compile(r"\s*=\s*-?[\d.]+\s*$")
_LATEX_OPS = (("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"), ("×", "*"), ("÷", "/"))


@dataclass
class CountdownD1Config(HubDataConfig):
    name: str = "countdown_d1"
    dataset: str | None = "Jiayi-Pan/Countdown-Tasks-3to4"
    split: str = "train"  # the hub dataset's only split; the test problems are held out of it
    train_split: str = "train"
    num_numbers: list[int] = field(default_factory=lambda: [3])
    num_test: int = 256
    prompt_style: str = "d1_train"  # or "d1_eval" (see trafl.tasks.math_common.PROMPT_STYLES)
    correct_weight: float = 1.0
    format_weight: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.num_numbers or any(n < 2 for n in self.num_numbers):
            raise ValueError(
                f"num_numbers must be a nonempty list of sizes >= 2, got {self.num_numbers!r}"
            )
        check_choice("prompt_style", self.prompt_style, PROMPT_STYLES)
        if self.num_test < 1:
            raise ValueError(f"num_test must be >= 1, got {self.num_test}")


def _problem_id(problem: Problem) -> tuple[tuple[int, ...], int]:
    return tuple(sorted(problem["nums"])), int(problem["target"])


def answer_expression(completion: str) -> str | None:
    """The expression in the last closed ``<answer>`` block, cleaned up; None without a block."""
    blocks = _ANSWER_BLOCKS.findall(completion)
    if not blocks:
        return None
    expr = blocks[-1].strip()
    boxed = last_boxed(expr)
    if boxed is not None:
        expr = boxed
    for latex, op in _LATEX_OPS:
        expr = expr.replace(latex, op)
    expr = _TRAILING_EQUALS.sub("", expr)
    return " ".join(expr.split())  # newlines inside the block are spaces to the parser


@TASKS.register("countdown_d1")
class CountdownD1:
    """d1's Countdown (see the module docstring). Satisfies ``Task`` and ``ScoringTask``."""

    Config = CountdownD1Config
    name = "countdown_d1"
    splits = ("test", "train")

    def __init__(self, config: CountdownD1Config | None = None) -> None:
        self.config = config if config is not None else CountdownD1Config()
        self._cache: dict[str, list[Problem]] = {}
        self._hub: list[Problem] | None = None
        for split, path in (("test", self.config.path), ("train", self.config.train_path)):
            if path:  # a bad local file fails now, before a model loads
                self._load(split)

    # ----------------------------------------------------------------- data

    def to_problem(self, record: Record) -> Problem:
        if "input" in record and "output" in record:  # d1's countdown_cd3_test.jsonl
            nums = [int(x) for x in str(record["input"]).split(",")]
            target = int(record["output"])
        else:
            nums = [int(x) for x in (record["nums"] if "nums" in record else record["numbers"])]
            target = int(record["target"])
        return {"nums": nums, "target": target}

    def _read(
        self, path: str | None, dataset: str | None, split: str, subset: str | None
    ) -> list[Problem]:
        rows = load_records(path, dataset, split, subset, task=self.name)
        return convert_records(rows, self.to_problem, f"{self.name}: {path or dataset}")

    def _hub_rows(self) -> list[Problem]:
        """The default source's problems with the configured sizes, in the dataset's order."""
        if self._hub is None:
            cfg = self.config
            rows = self._read(None, cfg.dataset, cfg.split, cfg.subset)
            self._hub = [p for p in rows if len(p["nums"]) in cfg.num_numbers]
        return self._hub

    def _load(self, split: str) -> list[Problem]:
        if split not in self.splits:
            raise UserError(f"unknown split {split!r}; valid: {', '.join(self.splits)}")
        if split not in self._cache:
            problems = self._test() if split == "test" else self._train()
            if not problems:
                raise DataError(
                    f"{self.name}: no {split} problems (check num_numbers and the data)"
                )
            self._cache[split] = problems
        return self._cache[split]

    def _test(self) -> list[Problem]:
        cfg = self.config
        if cfg.path:
            return self._read(cfg.path, None, cfg.split, None)
        return self._hub_rows()[-cfg.num_test :]

    def _train(self) -> list[Problem]:
        """Training rows with the configured sizes, never a test problem."""
        cfg = self.config
        source = cfg.train_dataset or cfg.dataset
        try:
            if cfg.train_path:
                rows = self._read(cfg.train_path, None, cfg.train_split, None)
            elif source == cfg.dataset and cfg.train_split == cfg.split:
                rows = self._hub_rows()[: None if cfg.path else -cfg.num_test]
            else:
                rows = self._read(None, source, cfg.train_split, cfg.train_subset)
        except DataError as err:
            if cfg.train_path:
                raise
            raise DataError(
                f"{err} (for training problems the option is task.train_path=FILE)"
            ) from err
        try:
            test_ids = {_problem_id(p) for p in self._load("test")}
        except DataError as err:  # training from a file alone must not need the test data
            log.warning("%s: test problems unavailable (%s); not excluding them", self.name, err)
            test_ids = set()
        keep = set(cfg.num_numbers)
        return [p for p in rows if len(p["nums"]) in keep and _problem_id(p) not in test_ids]

    def problems(self, split: str) -> list[Problem]:
        return [{"nums": list(p["nums"]), "target": p["target"]} for p in self._load(split)]

    def sample_train(self, num: int, rng: random.Random) -> list[Problem]:
        """``num`` training problems drawn uniformly with replacement (never a test problem)."""
        train = self._load("train")
        picks = [train[rng.randrange(len(train))] for _ in range(num)]
        return [{"nums": list(p["nums"]), "target": p["target"]} for p in picks]

    # ----------------------------------------------------------------- text

    def prompt(self, problem: Problem) -> str:
        nums, target = problem["nums"], problem["target"]
        if self.config.prompt_style == "d1_eval":
            return f"{D1_EVAL_PROMPT}\n\nNumbers: {list(nums)}\nTarget: {target}"
        return (
            f"{D1_SYSTEM_PROMPT}\nUsing only the numbers {list(nums)}, create an arithmetic "
            f"expression that evaluates to exactly {target}. You must use all numbers from the "
            f"list, and each number must be used exactly once. You may use the operations +, -, "
            f"*, and / as needed. After reasoning, provide only your final expression inside "
            f"<answer></answer> tags without including an equals sign or the target number. For "
            f"example, if the numbers are [2, 3, 4] and the target is 5, a valid answer is: "
            f"<answer>\n2*4-3\n</answer>"
        )

    def demonstration(self, problem: Problem, rng: random.Random) -> str:
        raise UserError(
            f"{self.name}: the dataset has no worked solutions, so there is no demonstration "
            f"(the embedded 'countdown' task renders solutions for pretraining)"
        )

    # ----------------------------------------------------------------- scoring

    def _check(self, problem: Problem, completion: str) -> tuple[Parsed | None, bool]:
        """(the parsed correct expression or None, whether a closed answer block exists)."""
        expr = answer_expression(completion)
        if expr is None:
            return None, False
        parsed = parse(expr)
        if parsed is None or Counter(parsed.literals) != Counter(problem["nums"]):
            return None, True
        return (parsed if parsed.value == problem["target"] else None), True

    def score(self, problems: list[Problem], completions: list[str]) -> list[dict[str, float]]:
        cfg = self.config
        out = []
        for problem, text in zip(problems, completions, strict=True):
            try:
                parsed, has_block = self._check(problem, text)
            except Exception:  # noqa: BLE001 - model text or a bad problem never raises
                parsed, has_block = None, False
            correct, fmt = float(parsed is not None), float(has_block)
            reward = cfg.correct_weight * correct + cfg.format_weight * fmt * (1.0 - correct)
            out.append({"reward": reward, "correct": correct, "format": fmt})
        return out

    def reward(self, problem: Problem, completion: str) -> float:
        return self.score([problem], [completion])[0]["reward"]

    def solution_key(self, problem: Problem, completion: str) -> str | None:
        try:
            parsed, _ = self._check(problem, completion)
        except Exception:  # noqa: BLE001
            return None
        return None if parsed is None else parsed.node.key

    def all_solutions(self, problem: Problem) -> set[str] | None:
        """Every canonical solution (enumerated exactly); None if the problem is outside what
        the enumerator handles (non-positive numbers)."""
        try:
            return enumerate_solutions(problem["nums"], problem["target"])
        except ValueError:
            return None
