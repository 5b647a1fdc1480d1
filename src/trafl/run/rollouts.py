"""Task-level sampling: prompts -> completions -> rewards, shared by sample, eval and train."""

from __future__ import annotations

import logging
import random

import torch
from rich.progress import Progress

from trafl.core.errors import RunStopped
from trafl.models.base import DiffusionLM
from trafl.sampling import Generators, Rollout, SamplerConfig, concat_rollouts, generate
from trafl.tasks.base import Problem, Task

log = logging.getLogger(__name__)


def safe_rewards(task: Task, problems: list[Problem], texts: list[str]) -> tuple[list[float], int]:
    """Score each completion; a reward function that raises scores that sample 0 (counted)."""
    scores, errors = safe_scores(task, problems, texts)
    return [s["reward"] for s in scores], errors


def safe_scores(
    task: Task, problems: list[Problem], texts: list[str]
) -> tuple[list[dict[str, float]], int]:
    """Score a batch: one dict per completion with ``"reward"`` (the weighted total) and, for
    tasks with several reward components (correctness, format, ...), each component.

    Tasks that implement ``score(problems, completions)`` (see :class:`trafl.tasks.base.
    ScoringTask`; those that check answers or run code in worker pools) are called once per
    batch; the others once per sample through ``reward``. Whatever raises scores 0 (counted)."""
    scores, errors = score_all(task, problems, texts)
    return scores, len(errors)


def score_all(
    task: Task, problems: list[Problem], texts: list[str]
) -> tuple[list[dict[str, float]], list[str]]:
    """:func:`safe_scores` with the repr of each error instead of their count."""
    if hasattr(task, "score"):
        try:
            scores = [{k: float(v) for k, v in s.items()} for s in task.score(problems, texts)]
            if len(scores) != len(texts) or any("reward" not in s for s in scores):
                raise ValueError("score() must return one dict with a 'reward' key per completion")
            return scores, []
        except Exception as err:  # noqa: BLE001 - fall back to per-sample scoring
            log.warning("batch scoring raised %r; scoring one sample at a time", err)
    scores, errors = [], []
    for problem, text in zip(problems, texts, strict=True):
        try:
            scores.append({"reward": float(task.reward(problem, text))})
        except Exception as err:  # noqa: BLE001 - one bad sample must not stop a run
            errors.append(repr(err))
            log.warning("reward raised on %r: %r (scored 0)", text[:80], err)
            scores.append({"reward": 0.0})
    return scores, errors


def check_reward_errors(
    num_errors: float, num_rewards: int, max_rate: float, step: int, example: str = ""
) -> None:
    """Stop the run (:class:`RunStopped`) when more than ``max_rate`` of a step's rewards
    raised: each scored 0, so a reward function that always raises would train on nothing.
    Call it before the step's update. In a multi-process run pass the whole batch's counts
    (the same on every rank), so that every rank stops together."""
    if num_rewards <= 0 or num_errors / num_rewards <= max_rate:
        return
    first = f"; the first: {example}" if example else ""
    raise RunStopped(
        f"step {step}: {num_errors:g} of {num_rewards} rewards raised (more than "
        f"max_reward_error_rate={max_rate:g}){first}. Fix the task's reward function, or "
        "raise max_reward_error_rate"
    )


def rollout_task(
    model: DiffusionLM,
    task: Task,
    problems: list[Problem],
    num_samples: int,
    sampler: SamplerConfig,
    generator: Generators = None,
    progress: Progress | None = None,
    description: str = "sampling",
    pad_to: int | None = None,
    lengths: list[int] | None = None,
) -> Rollout:
    """Sample ``num_samples`` completions per problem (rows grouped: problem-major) and score
    them: the sampler's :class:`Rollout` with its problems, texts, rewards, components and
    groups filled in. ``generator``: one, or one per row (problem-major); ``lengths``: a
    completion length per row (problem-major), each <= ``sampler.gen_length``."""
    rows = [p for p in problems for _ in range(num_samples)]
    prompts = [task.prompt(p) for p in rows]
    rollout, texts = generate(
        model, prompts, sampler, generator, progress, description, pad_to, lengths
    )
    rollout.texts = texts
    return score_rollout(rollout, task, rows, num_samples)


def score_rollout(rollout: Rollout, task: Task, rows: list[Problem], group_size: int) -> Rollout:
    """``rollout`` (its ``texts`` decoded; rows problem-major, ``group_size`` a problem) with
    its problems, rewards, reward components, errors and groups filled in by the task."""
    scores, errors = score_all(task, rows, rollout.texts)
    names = sorted({k for s in scores for k in s} - {"reward"})
    rollout.problems = rows
    rollout.group = torch.arange(len(rows) // group_size).repeat_interleave(group_size)  # (N,)
    rollout.rewards = torch.tensor([s["reward"] for s in scores])  # (N,)
    rollout.components = {k: torch.tensor([s.get(k, 0.0) for s in scores]) for k in names}
    rollout.num_reward_errors, rollout.reward_error = len(errors), errors[0] if errors else ""
    return rollout


def interleave_groups(first: Rollout, second: Rollout, per_first: int) -> Rollout:
    """Two scored rollouts over the same problems (problem-major; ``per_first`` rows per
    problem in ``first``, the rest of each group in ``second``) as one problem-major rollout
    whose every group holds its ``first`` rows, then its ``second`` rows."""
    num = first.num_rows // per_first
    per_second = second.num_rows // num
    both = concat_rollouts([first, second])
    both.problems, both.texts = first.problems + second.problems, first.texts + second.texts
    both.rewards = torch.cat([first.rewards, second.rewards])  # (N,)
    names = sorted(set(first.components) | set(second.components))
    both.components = {
        k: torch.cat([r.components.get(k, torch.zeros(r.num_rows)) for r in (first, second)])
        for k in names
    }
    both.num_reward_errors = first.num_reward_errors + second.num_reward_errors
    both.reward_error = first.reward_error or second.reward_error
    order = [
        index
        for p in range(num)
        for index in [
            *range(p * per_first, (p + 1) * per_first),
            *range(first.num_rows + p * per_second, first.num_rows + (p + 1) * per_second),
        ]
    ]
    out = both.rows(torch.tensor(order))
    out.group = torch.arange(num).repeat_interleave(per_first + per_second)  # (N,)
    return out


def solved(scored: Rollout) -> torch.Tensor:
    """(N,) bool: the sample is a correct solution. The task's ``correct`` component when it
    reports one (weighted totals such as 2 * correct + 0.5 * format are not correctness),
    else a total reward of at least 1."""
    if "correct" in scored.components:
        return scored.components["correct"] >= 1.0
    return scored.rewards >= 1.0


def subset(problems: list[Problem], num: int | None, seed: int | None = None) -> list[Problem]:
    """The first ``num`` problems (or a seeded random subset when ``seed`` is given)."""
    if num is None or num >= len(problems):
        return list(problems)
    if seed is None:
        return list(problems[:num])
    return random.Random(seed).sample(list(problems), num)


def greedy_accuracy(model: DiffusionLM, task: Task, num: int, sampler: SamplerConfig) -> float:
    """Mean reward of one sample per problem on the first ``num`` test problems (the sampler
    is normally at temperature 0); the periodic check of pretraining and training."""
    scored = rollout_task(model, task, subset(task.problems("test"), num), 1, sampler)
    return float(scored.rewards.mean())
