"""``dataset``: a task from any table of prompts, scored by reward functions written for TRL.

``task=dataset task.path=FILE task.rewards=[mylab.rewards:correct]``: each row of ``FILE``
(.json, .jsonl, .csv, each optionally .gz, or .parquet with ``pip install 'trafl[data]'``; a hub
id such as ``owner/name`` through ``datasets``, online or cached, ``task.split`` / ``subset``
picking the part) is a problem. Its prompt is the row's ``prompt_column`` (default ``prompt``):
a string, or a conversation of system messages and one user message (TRL's conversational
format). ``system_prompt`` (and a conversation's system messages) go before it in the same user
turn, separated by a blank line, as d1 does. The chat template is the model's business
(``model.chat_template``, on by default, wraps the prompt as one user turn for a tokenizer that
has a template; trafl's character tokenizer has none), as for every other task.

Rewards: ``task.rewards`` names functions with TRL's GRPOTrainer signature
``fn(completions, **kwargs) -> list[float]``, called once per batch with every column of the
rows by name (:mod:`trafl.tasks.trl_rewards` says exactly what is passed). ``reward`` is the
weighted sum (``task.reward_weights``, all 1.0 by default); each function's value is also
returned under its ``__name__``, so the trainer logs it as ``reward_<name>``. A function that
raises or returns the wrong number of values fails the batch with a one-line
:class:`~trafl.tasks.trl_rewards.RewardError` naming it; the trainer then scores the samples one
at a time, scores 0 each one that still fails, counts it, and stops the run when more than
``max_reward_error_rate`` of a step's rewards failed.

Correct (what ``trafl eval`` counts, pass@k): a reward function named ``correct`` scoring >= 1,
else a total reward >= 1. Distinct solutions (coverage) are distinct correct completions,
whitespace collapsed: for free text this over-counts equivalent answers.

Held-out problems: ``test_path`` (a file or hub id; ``test_split`` for a hub id), else a fixed
``test_fraction`` of the rows (default 0.1, at least one row), chosen by a seeded shuffle
(``split_seed``) and never trained on. ``test_fraction=0`` trains on every row and has no test
split. Pretraining demonstrations come from ``completion_column`` when set.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trafl.core.errors import UserError
from trafl.tasks.base import TASKS, Problem, TaskConfig
from trafl.tasks.data import DataError, Record, convert_records, read_hub, read_local
from trafl.tasks.trl_rewards import PASSED, check_columns, resolve_rewards, weighted_scores

# TRL passes every column but these to a reward function (the prompt goes as ``prompts``)
NOT_COLUMNS = ("prompt", "completion", "completion_ids")
DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")


@dataclass
class DatasetTaskConfig(TaskConfig):
    """See the module docstring."""

    name: str = "dataset"
    path: str | None = None  # the rows: a local file, or a hub id (needs `datasets`)
    split: str = "train"  # the hub split of `path`
    subset: str | None = None  # the hub subset (configuration) of `path` and `test_path`
    prompt_column: str = "prompt"
    system_prompt: str = ""  # put before every prompt, then a blank line
    completion_column: str | None = None  # reference completions, for `trafl pretrain`
    rewards: list[str] = field(default_factory=list)  # ["package.module:fn", "file.py:fn"]
    reward_weights: list[float] | None = None  # one per reward; None: all 1.0 (TRL's default)
    test_path: str | None = None  # held-out problems (wins over test_fraction)
    test_split: str = "test"  # the hub split of `test_path`
    test_fraction: float = 0.1  # else this share of `path`'s rows is held out; 0: none
    split_seed: int = 0  # which rows are held out

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError(
                f"reward_weights has {len(self.reward_weights)} values for {len(self.rewards)} "
                f"rewards; give one weight per reward, or none (all 1.0)"
            )


@TASKS.register("dataset")
class DatasetTask:
    """Rows of a data file as problems, scored by TRL-style reward functions (see the module
    docstring)."""

    Config = DatasetTaskConfig
    name = "dataset"

    def __init__(self, config: DatasetTaskConfig | None = None) -> None:
        self.config = config if config is not None else DatasetTaskConfig()
        cfg = self.config
        if not cfg.path:
            raise UserError(
                "task dataset needs task.path=FILE (.json/.jsonl/.csv/.parquet) or a hub id"
            )
        self.rewards = resolve_rewards(cfg.rewards, cfg.reward_weights)
        rows = self._read(cfg.path, cfg.split)
        train, test = self._held_out(rows)
        held_out = f"task.test_path {cfg.test_path}" if cfg.test_path else "held-out rows"
        self._splits = {
            "train": self._convert(train, f"task.path {cfg.path}"),
            "test": self._convert(test, held_out),
        }
        self.conversational = isinstance(self._splits["train"][0].get(cfg.prompt_column), list)
        every = list(dict.fromkeys(k for row in train + test for k in row))
        self.columns = self._columns(every)
        check_columns(self.rewards, self.columns, every, f"the data ({cfg.path})")
        self._correct: dict[tuple[str, str], bool] = {}  # (prompt, completion) -> correct

    # ------------------------------------------------------------------ data

    def _read(self, source: str, split: str) -> list[Record]:
        """A local file's rows, or a hub dataset's (a source that is neither an existing path nor
        named like a data file is a hub id)."""
        name = source.lower().removesuffix(".gz")
        if Path(source).exists() or name.endswith(DATA_SUFFIXES):
            rows = read_local(source)
        else:
            rows = read_hub(source, split, self.config.subset, task="dataset")
        if not rows:
            raise DataError(f"dataset: {source} has no rows")
        return rows

    def _held_out(self, rows: list[Record]) -> tuple[list[Record], list[Record]]:
        """(train, test) rows: ``test_path``'s rows, or a seeded ``test_fraction`` of ``rows``."""
        cfg = self.config
        if cfg.test_path:
            return rows, self._read(cfg.test_path, cfg.test_split)
        if cfg.test_fraction == 0.0:
            return rows, []
        num_test = max(1, round(cfg.test_fraction * len(rows)))
        if num_test >= len(rows):
            raise DataError(
                f"dataset: {cfg.path} has {len(rows)} rows; task.test_fraction="
                f"{cfg.test_fraction:g} holds out {num_test}, leaving none to train on (use more "
                f"rows, task.test_path=FILE, or task.test_fraction=0)"
            )
        order = list(range(len(rows)))
        random.Random(cfg.split_seed).shuffle(order)
        test = set(order[:num_test])
        return [r for i, r in enumerate(rows) if i not in test], [rows[i] for i in sorted(test)]

    def _convert(self, rows: list[Record], where: str) -> list[Problem]:
        return convert_records(rows, self._to_problem, f"dataset: {where}")

    def _to_problem(self, record: Record) -> Problem:
        """The row itself, its prompt checked (KeyError / ValueError name what is wrong)."""
        column = self.config.prompt_column
        if column not in record:
            raise KeyError(f"no column {column!r} (task.prompt_column); got {', '.join(record)}")
        prompt_text(record[column])
        return dict(record)

    def _columns(self, columns: list[str]) -> list[str]:
        """The columns that a reward function receives by name."""
        clash = [c for c in columns if c in PASSED]
        if clash:
            raise DataError(
                f"dataset: the column {clash[0]!r} would hide the {clash[0]} argument of the "
                f"reward functions; rename it"
            )
        return [c for c in columns if c not in NOT_COLUMNS]

    def problems(self, split: str) -> list[Problem]:
        """The rows of ``split`` (``train`` or ``test``), fresh copies."""
        if split not in self._splits:
            raise UserError(f"unknown split {split!r}; valid: {', '.join(self._splits)}")
        if not self._splits[split]:
            raise UserError(
                "dataset: no test split (task.test_fraction=0 and no task.test_path); set "
                "task.test_fraction in (0, 1) or task.test_path=FILE"
            )
        return [dict(p) for p in self._splits[split]]

    def sample_train(self, num: int, rng: random.Random) -> list[Problem]:
        """``num`` training rows drawn uniformly with replacement."""
        train = self._splits["train"]
        return [dict(train[rng.randrange(len(train))]) for _ in range(num)]

    # ------------------------------------------------------------------ text

    def prompt(self, problem: Problem) -> str:
        text = prompt_text(problem[self.config.prompt_column])
        return f"{self.config.system_prompt}\n\n{text}" if self.config.system_prompt else text

    def demonstration(self, problem: Problem, rng: random.Random) -> str:
        column = self.config.completion_column
        if column is None:
            raise ValueError(
                "dataset: no demonstrations; set task.completion_column=COLUMN (a column of "
                "reference completions) to pretrain on this data"
            )
        value = problem.get(column)
        return value[-1]["content"] if isinstance(value, list) else str(value)

    # ------------------------------------------------------------------ rewards

    def score(self, problems: list[Problem], completions: list[str]) -> list[dict[str, float]]:
        """``reward`` and each function's value per completion; a :class:`RewardError` (naming
        the function) when one raises or returns the wrong number of values."""
        arguments: dict[str, Any] = {
            "prompts": [p.get(self.config.prompt_column) for p in problems],
            "completions": [
                [{"role": "assistant", "content": c}] if self.conversational else c
                for c in completions
            ],
        }
        arguments |= {c: [p.get(c) for p in problems] for c in self.columns}
        scores = weighted_scores(self.rewards, len(completions), arguments)
        if len(self._correct) > 100_000:  # a cache for solution_key, not a record
            self._correct.clear()
        for p, c, s in zip(problems, completions, scores, strict=True):
            self._correct[(self.prompt(p), c)] = is_correct(s)
        return scores

    def reward(self, problem: Problem, completion: str) -> float:
        return self.score([problem], [completion])[0]["reward"]

    def solution_key(self, problem: Problem, completion: str) -> str | None:
        """The completion, whitespace collapsed, when it is correct (see the module docstring);
        else None. Reuses the scores of earlier batches; never raises."""
        key = (self.prompt(problem), completion)
        if key not in self._correct:
            try:
                self.score([problem], [completion])
            except UserError:  # a failing reward: already counted when the batch was scored
                return None
        return " ".join(completion.split()) if self._correct.get(key) else None

    def all_solutions(self, problem: Problem) -> set[str] | None:
        return None


def is_correct(score: dict[str, float]) -> bool:
    """A reward function named ``correct`` at >= 1, else a total reward >= 1 (the rule of
    :func:`trafl.run.rollouts.solved`)."""
    return score["correct"] >= 1.0 if "correct" in score else score["reward"] >= 1.0


def prompt_text(value: Any) -> str:
    """A prompt cell as text: a string, or system messages and one user message (joined by
    blank lines). ValueError for anything else (a multi-turn conversation, a number...)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value:
        raise ValueError(f"the prompt must be a string or a list of messages, got {value!r:.60}")
    roles = [m.get("role") if isinstance(m, dict) else None for m in value]
    if roles[-1] != "user" or any(r != "system" for r in roles[:-1]):
        raise ValueError(
            f"a conversational prompt must be system messages then one user message, got "
            f"roles {roles}"
        )
    return "\n\n".join(str(m.get("content", "")) for m in value)
