"""The base of tasks whose problems are rows of a hub dataset or a local data file (the math
tasks, Sudoku, d1's Countdown, MBPP, LiveCodeBench)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

from trafl.core.errors import UserError
from trafl.tasks.base import Problem, TaskConfig
from trafl.tasks.data import DataError, Record, convert_records, load_records

SPLITS = ("test", "train")


@dataclass
class HubDataConfig(TaskConfig):
    """Where a hub task's problems come from. ``path`` (a local .json/.jsonl/.csv/.parquet file)
    wins over ``dataset``/``subset``/``split`` (a hub id, the default). Training problems come
    from ``train_path``, else from ``train_dataset`` (``dataset`` when None) at ``train_split``."""

    name: str = ""
    path: str | None = None
    dataset: str | None = None
    subset: str | None = None
    split: str = "test"
    train_path: str | None = None
    train_dataset: str | None = None
    train_subset: str | None = None
    train_split: str = "train"


class HubTask:
    """Loading and sampling for tasks whose problems are rows of a hub dataset or local file."""

    name: ClassVar[str]
    splits = SPLITS
    config: HubDataConfig

    def __init__(self) -> None:
        self._cache: dict[str, list[Problem]] = {}

    def to_problem(self, record: Record) -> Problem:
        """One dataset row as a JSON-able problem; ValueError when the row lacks a field."""
        raise NotImplementedError

    def _read(self, split: str) -> list[Record]:
        cfg = self.config
        if split == "test":
            return load_records(cfg.path, cfg.dataset, cfg.split, cfg.subset, task=self.name)
        try:
            return load_records(
                cfg.train_path,
                cfg.train_dataset or cfg.dataset,
                cfg.train_split,
                cfg.train_subset if cfg.train_dataset else cfg.subset,
                task=self.name,
            )
        except DataError as err:
            if cfg.train_path:
                raise
            raise DataError(
                f"{err} (for training problems the option is task.train_path=FILE)"
            ) from err

    def _convert(self, records: list[Record], where: str) -> list[Problem]:
        return convert_records(records, self.to_problem, f"{self.name}: {where}")

    def _load_local_files(self) -> None:
        """Read the splits that come from local files now (at construction, before a model
        loads), so that a bad file fails at once; hub splits stay lazy."""
        if self.config.path:
            self._load("test")
        if self.config.train_path:
            self._load("train")

    def _build(self, split: str) -> list[Problem]:
        """The problems of ``split``, read from the configured source (uncached)."""
        file = self.config.path if split == "test" else self.config.train_path
        return self._convert(self._read(split), f"{split} data {file}" if file else split)

    def _load(self, split: str) -> list[Problem]:
        if split not in self.splits:
            raise UserError(f"unknown split {split!r}; valid: {', '.join(self.splits)}")
        if split not in self._cache:
            problems = self._build(split)
            if not problems:
                raise DataError(f"{self.name}: the {split} data has no records")
            self._cache[split] = problems
        return self._cache[split]

    def problems(self, split: str) -> list[Problem]:
        """The problems of ``split`` (fresh copies: callers may mutate them)."""
        return [dict(p) for p in self._load(split)]

    def sample_train(self, num: int, rng: random.Random) -> list[Problem]:
        """``num`` training problems drawn uniformly with replacement."""
        train = self._load("train")
        return [dict(train[rng.randrange(len(train))]) for _ in range(num)]


def field_of(record: Record, names: tuple[str, ...]) -> Any:
    """The first of ``names`` present (not None) in ``record``; KeyError listing them if none."""
    for name in names:
        if record.get(name) is not None:
            return record[name]
    raise KeyError(f"expected one of the fields {', '.join(names)}; got {', '.join(record)}")
