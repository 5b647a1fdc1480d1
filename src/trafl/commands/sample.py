"""``trafl sample``: completions from a model on a task's problems, with rewards and accuracy."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.table import Table
from rich.text import Text

from trafl.core.batch import Rollout
from trafl.core.config import check_at_least, component
from trafl.core.errors import UserError
from trafl.evaluation.passk import mean_pass_at_k, power_of_two_ks
from trafl.models import ModelConfig, load_model
from trafl.run.rollouts import rollout_task, subset
from trafl.run.runtime import console, make_progress, resolve_device, seed_everything
from trafl.sampling import SamplerConfig
from trafl.tasks import TASKS, TaskConfig, build_task


@dataclass
class SampleConfig:
    model: ModelConfig = field(default_factory=ModelConfig)  # a model, run or adapter folder
    task: TaskConfig = component(TASKS, "countdown")
    split: str = "test"
    num_problems: int | None = None  # None: the whole split
    num_samples: int = 1  # completions per problem; > 1 also reports pass@k
    sampler: SamplerConfig = field(
        default_factory=lambda: SamplerConfig(gen_length=16, steps=16, temperature=0.0)
    )
    seed: int = 0
    output: str | None = None  # JSONL file with one line per completion
    show: int = 5  # completions printed to the terminal
    device: str = "auto"

    def __post_init__(self) -> None:
        self.model = ModelConfig.coerce(self.model)
        check_at_least(self, {"num_problems": 1, "num_samples": 1, "show": 0})


def run_sample(cfg: SampleConfig) -> dict[str, Any]:
    """Sample, score, print a summary; returns the summary (accuracy, pass@k)."""
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    task = build_task(cfg.task)  # bad data fails here, before the model loads
    problems = subset(task.problems(cfg.split), cfg.num_problems)
    model: Any = load_model(cfg.model)
    model = model if cfg.model.load_in_4bit else model.to(device)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    with make_progress() as progress:
        scored = rollout_task(
            model,
            task,
            problems,
            cfg.num_samples,
            cfg.sampler,
            generator,
            progress,
            f"sampling {len(problems)}x{cfg.num_samples}",
        )
    summary = summarize(scored, len(problems), cfg.num_samples)
    if cfg.output:
        write_jsonl(scored, task, Path(cfg.output))
    print_summary(scored, summary, cfg)
    return summary


def summarize(scored: Rollout, num_problems: int, num_samples: int) -> dict[str, Any]:
    correct = (scored.rewards >= 1.0).view(num_problems, num_samples).sum(dim=1).tolist()
    summary: dict[str, Any] = {
        "num_problems": num_problems,
        "num_samples": num_samples,
        "mean_reward": float(scored.rewards.mean()),
        "reward_errors": scored.num_reward_errors,
    }
    if num_samples > 1:
        summary["pass_at_k"] = {
            k: mean_pass_at_k(correct, num_samples, k) for k in power_of_two_ks(num_samples)
        }
    return summary


def write_jsonl(scored: Rollout, task: Any, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = path.open("w", encoding="utf-8")
    except OSError as err:
        raise UserError(f"cannot write output {str(path)!r}: {err.strerror}") from err
    traj = scored.trajectory
    with f:
        for i, (problem, text) in enumerate(zip(scored.problems, scored.texts, strict=True)):
            row = {
                "problem": problem,
                "prompt": task.prompt(problem),
                "completion": text,
                "completion_ids": scored.completion_ids[i].tolist(),  # as sampled
                "reward": float(scored.rewards[i]),
                "reveal_step": traj.reveal_step[i].tolist(),
                "token_logp": [round(x, 5) for x in traj.token_logp[i].tolist()],
            }
            f.write(json.dumps(row) + "\n")
    console.print(f"wrote {path}", markup=False, emoji=False)


def print_summary(scored: Rollout, summary: dict[str, Any], cfg: SampleConfig) -> None:
    for i in range(min(cfg.show, len(scored.texts))):
        mark = ("✓", "green") if scored.rewards[i] >= 1 else ("✗", "red")
        # problems and completions are user text: a Text is never read as markup ("[/INST]")
        console.print(Text.assemble(mark, f" {scored.problems[i]} -> {scored.texts[i]!r}"))
    table = Table(title=Text(f"{cfg.model.path} on {cfg.task.name}/{cfg.split}"))
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("problems x samples", f"{summary['num_problems']} x {summary['num_samples']}")
    table.add_row("accuracy (mean reward)", f"{summary['mean_reward']:.3f}")
    for k, v in summary.get("pass_at_k", {}).items():
        table.add_row(f"pass@{k}", f"{v:.3f}")
    if summary["reward_errors"]:
        table.add_row("reward errors (scored 0)", str(summary["reward_errors"]))
    console.print(table)
