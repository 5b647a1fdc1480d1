"""``sudoku``: 4x4 Sudoku as d1 trains and evaluates it.

A problem is ``{"puzzle": "0010000402400421", "solution": "4312213412433421"}``: 16 characters
read row by row, ``0`` for an empty cell; the solution is the puzzle's unique completion.

Data: d1 ships its puzzles as CSV files in its repository (``dataset/4x4_sudoku_unique_puzzles.csv``
to train, ``dataset/4x4_test_sudoku.csv`` to test; columns ``Puzzle``, ``Solution``). The hub
mirror ``Mayfull/sudoku`` (fields ``puzzle``, ``solution``; ``train`` 1M and ``test`` 500
puzzles), whose card says it is the set of d1, d2 and SPG, is the default. To compare with d1's
numbers exactly, point ``task.path`` (and ``task.train_path``) at d1's CSV files
(:func:`trafl.tasks.data.read_local` reads CSV; either column spelling works).

Prompt: d1's ``SUDOKU_SYSTEM_PROMPT + "\\n\\nSolve the following Sudoku puzzle: " + puzzle +
"\\n"`` (user turn).

Reward: d1's ``sudoku_reward_func``: the digits of the last closed ``<answer>`` block, padded
with 0 or cut to 16, scored by the fraction of the puzzle's empty cells filled correctly; 0
without an answer block (``cells_weight``). Components: ``cells`` (that fraction) and ``correct``
(every empty cell right; ``solved_weight``, 0 by default), so ``reward >= 1`` means solved.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from trafl.tasks.base import TASKS, Problem
from trafl.tasks.data import Record
from trafl.tasks.hub import HubDataConfig, HubTask, field_of

# d1's SUDOKU_SYSTEM_PROMPT (diffu-grpo/data_utils.py), byte for byte.
SUDOKU_SYSTEM_PROMPT = """
Please solve the following 4x4 Sudoku puzzle. The puzzle is provided as a 16-character string reading left-to-right, top-to-bottom, where '0' represents empty cells.

Rules:
- Fill empty cells with digits 1-4
- Each row must contain digits 1-4 exactly once
- Each column must contain digits 1-4 exactly once
- Each 2x2 box must contain digits 1-4 exactly once

Important: Your solution must be a COMPLETE 16-character string with only the digits 1-4, representing your final solved grid.

Respond in this exact format:
<reasoning>
Your step-by-step solving process
</reasoning>
<answer>
[16-character solution string with no spaces or separators]
</answer>
"""  # noqa: E501 - the prompt's lines are d1's

SIZE = 16
_ANSWER_BLOCKS = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# Every row, column and 2x2 box of the 4x4 grid, as cell indices.
_UNITS = (
    [[4 * r + c for c in range(4)] for r in range(4)]
    + [[4 * r + c for r in range(4)] for c in range(4)]
    + [
        [4 * (br + r) + bc + c for r in range(2) for c in range(2)]
        for br in (0, 2)
        for bc in (0, 2)
    ]
)


@dataclass
class SudokuConfig(HubDataConfig):
    name: str = "sudoku"
    dataset: str | None = "Mayfull/sudoku"
    split: str = "test"
    train_split: str = "train"
    cells_weight: float = 1.0
    solved_weight: float = 0.0


def is_valid_grid(grid: str) -> bool:
    """Whether ``grid`` is a complete 4x4 Sudoku (every unit holds 1-4 once)."""
    return len(grid) == SIZE and all(
        sorted(grid[i] for i in unit) == list("1234") for unit in _UNITS
    )


def answer_digits(completion: str) -> str | None:
    """d1's reading of an answer: the digits of the last closed ``<answer>`` block, or None."""
    blocks = _ANSWER_BLOCKS.findall(completion)
    return None if not blocks else "".join(ch for ch in blocks[-1] if ch.isascii() and ch.isdigit())


def cell_accuracy(puzzle: str, solution: str, answer: str | None) -> float:
    """The fraction of the puzzle's empty cells that ``answer`` fills as ``solution`` does
    (``answer`` padded with 0 or cut to 16 digits, as d1 does); 0 for no or empty answer."""
    empty = [i for i in range(SIZE) if puzzle[i] == "0"]
    if not answer or not empty:
        return 0.0
    answer = answer[:SIZE].ljust(SIZE, "0")
    return sum(answer[i] == solution[i] for i in empty) / len(empty)


@TASKS.register("sudoku")
class Sudoku(HubTask):
    """d1's 4x4 Sudoku (see the module docstring). Satisfies ``Task`` and ``ScoringTask``."""

    Config = SudokuConfig
    name = "sudoku"

    def __init__(self, config: SudokuConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else SudokuConfig()
        self._load_local_files()

    def to_problem(self, record: Record) -> Problem:
        puzzle = str(field_of(record, ("puzzle", "Puzzle"))).strip()
        solution = str(field_of(record, ("solution", "Solution"))).strip()
        if len(puzzle) != SIZE or any(ch not in "01234" for ch in puzzle):
            raise ValueError(f"puzzle {puzzle!r} is not 16 digits 0-4")
        if not is_valid_grid(solution):
            raise ValueError(f"solution {solution!r} is not a solved 4x4 grid")
        if any(p != "0" and p != s for p, s in zip(puzzle, solution, strict=True)):
            raise ValueError(f"solution {solution!r} contradicts the givens of {puzzle!r}")
        return {"puzzle": puzzle, "solution": solution}

    def prompt(self, problem: Problem) -> str:
        return f"{SUDOKU_SYSTEM_PROMPT}\n\nSolve the following Sudoku puzzle: {problem['puzzle']}\n"

    def demonstration(self, problem: Problem, rng: random.Random) -> str:
        """The solution grid in d1's format (the data has no reasoning, so that block is empty)."""
        return f"<reasoning>\n\n</reasoning>\n<answer>\n{problem['solution']}\n</answer>"

    def score(self, problems: list[Problem], completions: list[str]) -> list[dict[str, float]]:
        cfg = self.config
        out = []
        for problem, text in zip(problems, completions, strict=True):
            try:
                cells = cell_accuracy(problem["puzzle"], problem["solution"], answer_digits(text))
            except Exception:  # noqa: BLE001 - model text or a bad problem never raises
                cells = 0.0
            solved = float(cells == 1.0)
            reward = cfg.cells_weight * cells + cfg.solved_weight * solved
            out.append({"reward": reward, "cells": cells, "correct": solved})
        return out

    def reward(self, problem: Problem, completion: str) -> float:
        return self.score([problem], [completion])[0]["reward"]

    def solution_key(self, problem: Problem, completion: str) -> str | None:
        return problem["solution"] if self.score([problem], [completion])[0]["correct"] else None

    def all_solutions(self, problem: Problem) -> set[str] | None:
        return {problem["solution"]}
