"""The base of tasks whose completions are programs: run them in the sandbox, score them."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from trafl.rewards.code import CodeRewardConfig, extract_code, format_score, normalise
from trafl.rewards.sandbox import Job, Sandbox, SandboxResult
from trafl.tasks.base import Problem


class CodeTask:
    """Shared scoring of tasks whose completions are programs (a base class because four tasks
    share it). A subclass provides ``build_job``, ``problem_id``, and, where results are not
    assert-style pass flags, ``passed``; the batch ``score`` runs every job through one sandbox
    pool. ``solution_key`` reuses the outcome of ``score`` for the same completion (evaluation
    asks for keys right after scoring) and otherwise runs the program once."""

    config: Any  # the task's Config, with a ``reward: CodeRewardConfig``
    _CACHE_SIZE = 65_536

    def build_job(self, problem: Problem, completion: str) -> Job | None:
        raise NotImplementedError

    def problem_id(self, problem: Problem) -> str:
        raise NotImplementedError

    def format_of(self, problem: Problem, completion: str) -> float:
        return format_score(completion)

    def passed(self, problem: Problem, result: SandboxResult) -> list[bool]:
        """Per-test outcomes of a finished run (assert mode: the harness's pass flags)."""
        return [bool(r[0] is True) for r in result.results]

    def canonical(self, problem: Problem, completion: str) -> str | None:
        """The key of a correct completion; by default its normalised extracted program."""
        return normalise(extract_code(completion, self.config.reward.block))

    @property
    def sandbox(self) -> Sandbox:
        if getattr(self, "_sandbox", None) is None:
            self._sandbox = Sandbox(self.config.reward.sandbox)
        return self._sandbox

    def score(self, problems: list[Problem], completions: list[str]) -> list[dict[str, float]]:
        cfg: CodeRewardConfig = self.config.reward
        jobs: list[Job | None] = []
        for problem, completion in zip(problems, completions, strict=True):
            try:
                jobs.append(self.build_job(problem, completion))
            except Exception:  # a malformed problem or completion: no program to run
                jobs.append(None)
        ran = iter(self.sandbox.run([j for j in jobs if j is not None]))
        out = []
        for problem, completion, job in zip(problems, completions, jobs, strict=True):
            flags: list[bool] = []
            if job is not None:
                result = next(ran)
                try:
                    flags = self.passed(problem, result) if result.finished else []
                except Exception:
                    flags = []
            correct = float(bool(flags) and all(flags))
            rate = sum(flags) / len(flags) if flags else 0.0
            try:
                fmt = float(self.format_of(problem, completion))
            except Exception:
                fmt = 0.0
            self._remember(problem, completion, correct == 1.0)
            total = cfg.correct_weight * (rate if cfg.partial_credit else correct)
            out.append(
                {
                    "reward": total + cfg.format_weight * fmt,
                    "correct": correct,
                    "pass_rate": rate,
                    "format": fmt,
                }
            )
        return out

    def reward(self, problem: Problem, completion: str) -> float:
        return self.score([problem], [completion])[0]["reward"]

    def solution_key(self, problem: Problem, completion: str) -> str | None:
        try:
            known = self._outcomes().get((self.problem_id(problem), completion))
            if known is None:
                known = self.score([problem], [completion])[0]["correct"] == 1.0
            return self.canonical(problem, completion) if known else None
        except Exception:
            return None

    def all_solutions(self, problem: Problem) -> set[str] | None:
        return None

    def _outcomes(self) -> OrderedDict[tuple[str, str], bool]:
        if getattr(self, "_outcome_cache", None) is None:
            self._outcome_cache: OrderedDict[tuple[str, str], bool] = OrderedDict()
        return self._outcome_cache

    def _remember(self, problem: Problem, completion: str, correct: bool) -> None:
        try:
            cache = self._outcomes()
            cache[(self.problem_id(problem), completion)] = correct
            while len(cache) > self._CACHE_SIZE:
                cache.popitem(last=False)
        except Exception:
            pass
