"""``trafl eval``: pass@k across budgets and generation lengths, coverage, trajectory locking.

For a model (a model folder, or a run folder: its final model or latest checkpoint) and a task,
draw ``num_samples`` completions per test problem at each generation length, then write
``eval.json`` (schema in docs/EVAL.md), print a table, and save PNG plots. With a ``target``
section, each length also gets the target instrument (:mod:`trafl.evaluation.target`): the
model against the reward tilt pi_ref exp(b r) / Z of a base evaluated on the same problems. Each length is decoded
with the ``sampler`` section carried to it by the one length rule (:func:`trafl.sampling.
at_length`), the rule rollouts, the in-training evaluation and ``trafl sample`` follow.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.table import Table
from rich.text import Text

from trafl.commands.eval_target import Target, prepare_target, print_target_table, target_entry
from trafl.core.config import (
    ConfigError,
    check_at_least,
    check_lengths,
    component,
    to_dict,
)
from trafl.core.config_files import save_config
from trafl.core.files import write_text_atomic
from trafl.core.layout import run_of
from trafl.evaluation import (
    bootstrap_ci,
    coverage_at_k,
    coverage_summary,
    locking_summary,
    pass_at_k_curve,
    power_of_two_ks,
    solution_counts,
)
from trafl.evaluation.plots import (
    plot_coverage,
    plot_pass_at_k,
    plot_reveal_heatmaps,
    plot_target,
)
from trafl.evaluation.target import TargetConfig
from trafl.models import ModelConfig, load_model, resolve_model_path
from trafl.run.rollouts import rollout_task, solved, subset
from trafl.run.runtime import console, make_progress, resolve_device, seed_everything
from trafl.sampling import SamplerConfig, at_length
from trafl.tasks import TASKS, TaskConfig, build_task

# keys of the flattened sampler settings trafl eval had, and where they went
MOVED = {
    "temperature": "sampler.temperature",
    "block_length": "sampler.block_length",
    "remasking": "sampler.remasking",
    "batch_size": "sampler.batch_size",
    "steps_per_token": "sampler.steps (stated at sampler.gen_length; L/2 is "
    "sampler.steps = sampler.gen_length / 2)",
}


def llada_sampler(longest: int = 32) -> SamplerConfig:
    """LLaDA's evaluation setting at every length L <= ``longest``: one block, steps = L/2
    (temperature 1). Stated at an even reference length, so that the length rule's
    ``round(L * steps / gen_length)`` is exactly ``round(L / 2)``."""
    reference = longest + longest % 2
    return SamplerConfig(
        gen_length=reference, steps=reference // 2, temperature=1.0, batch_size=512
    )


@dataclass
class EvalConfig:
    model: ModelConfig = field(default_factory=ModelConfig)  # a model, run or adapter folder
    task: TaskConfig = component(TASKS, "countdown")
    split: str = "test"
    num_problems: int | None = 100
    num_samples: int = 64  # n per problem; pass@k for k = 1, 2, 4, ..., n
    gen_lengths: list[int] = field(default_factory=lambda: [16, 24, 32])  # each <= sampler's
    # The one sampler config (temperature, top_p, block_length, steps, remasking, the fast modes,
    # batch_size), stated at sampler.gen_length and carried to each L of gen_lengths by the one
    # length rule (trafl.sampling.at_length): one block: steps scale with L; blocks: the steps
    # per block are kept. Default: 16 steps at 32 tokens in one block, LLaDA's steps = L/2 at
    # every length (before this section, steps_per_token=0.5).
    sampler: SamplerConfig = field(default_factory=llada_sampler)
    greedy: bool = True  # also report greedy accuracy: the same schedule at temperature 0
    bootstrap: int = 1000  # resamples over problems for the pass@k confidence intervals
    heatmap_problems: int = 4
    # the target instrument: this model against the tilt of a base's evaluation (off by default)
    target: TargetConfig = field(default_factory=TargetConfig)
    seed: int = 0
    out_dir: str | None = None  # default: RUN/eval for a run folder, runs/eval/NAME otherwise
    device: str = "auto"

    def __post_init__(self) -> None:
        self.model = ModelConfig.coerce(self.model)
        check_at_least(
            self, {"num_problems": 1, "num_samples": 1, "bootstrap": 1, "heatmap_problems": 0}
        )
        check_lengths("gen_lengths", self.gen_lengths)
        longest = max(self.gen_lengths)
        if longest > self.sampler.gen_length:
            raise ValueError(
                f"gen_lengths has {longest} > sampler.gen_length={self.sampler.gen_length}: "
                "sampler.steps and block_length are stated at sampler.gen_length and carried "
                "down to each length; set sampler.gen_length (and sampler.steps) for the longest"
            )
        for length in self.gen_lengths:  # a length the rule cannot carry fails before any work
            at_length(self.sampler, length)

    @staticmethod
    def fill_defaults(data: dict[str, Any]) -> dict[str, Any]:
        """Name where an old flattened sampler key went (before the generic unknown-key error)."""
        old = [key for key in MOVED if key in data]
        if old:
            moved = "; ".join(f"{key!r} is now {MOVED[key]}" for key in old)
            raise ConfigError(f"trafl eval reads one sampler section: {moved}")
        return data

    def sampler_at(self, length: int, greedy: bool = False) -> SamplerConfig:
        """The config length ``length`` is decoded with (``greedy``: at temperature 0)."""
        config = at_length(self.sampler, length)
        return config.greedy() if greedy else config


def default_out_dir(cfg: EvalConfig, model_path: Path) -> Path:
    """``out_dir``; else RUN/eval for a run's final model and RUN/eval-checkpoint-N for its
    checkpoint N (not RUN/eval-N, where the demo and scripts/target_study.py keep their own
    evaluations and reuse what they find); else runs/eval/NAME."""
    if cfg.out_dir:
        return Path(cfg.out_dir)
    run = run_of(model_path)
    if run is not None:
        folder, step = run
        return folder / ("eval" if step is None else f"eval-checkpoint-{step}")
    return Path("runs") / "eval" / model_path.name


def model_name(model_path: Path) -> str:
    """What results and plots call the model: the run's name for its final model, RUN/checkpoint-N
    for a checkpoint, else the folder's (or hub id's) name."""
    if model_path.exists():
        model_path = model_path.resolve()  # `model=.` inside a run folder: the folder's name
    run = run_of(model_path)
    if run is None:
        return model_path.parent.name if model_path.name == "model" else model_path.name
    folder, step = run
    return folder.name if step is None else f"{folder.name}/checkpoint-{step}"


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate at every length of ``cfg.gen_lengths``; writes eval.json and the plots."""
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    model_path = Path(resolve_model_path(cfg.model.path))
    task = build_task(cfg.task)  # bad data fails here, before the model loads
    problems = subset(task.problems(cfg.split), cfg.num_problems)
    result: dict[str, Any] = {
        "model": str(model_path),
        "model_name": model_name(model_path),
        "task": cfg.task.name,
        "split": cfg.split,
        "num_problems": len(problems),
        "problems_sha1": problems_sha1(task, problems),
        "num_samples": cfg.num_samples,
        "config": to_dict(cfg),
        "lengths": {},
    }
    target = prepare_target(cfg, model_path, result)  # a mismatched base fails before loading
    model = load_on(cfg, str(model_path), device)
    if target is not None and cfg.target.reference is not None:
        target.reference = load_on(cfg, str(resolve_model_path(cfg.target.reference)), device)
    out = default_out_dir(cfg, model_path)  # made once the inputs are known to be good
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "eval_config.yaml")
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    heat: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    start = time.time()
    with make_progress() as progress:
        for length in cfg.gen_lengths:
            res, heat[str(length)] = evaluate_length(
                cfg, model, task, problems, length, generator, progress, target
            )
            result["lengths"][str(length)] = res
    result["seconds"] = round(time.time() - start, 1)
    # whole or not there: a demo, a study or `trafl compare` takes an eval.json found as done
    write_text_atomic(out / "eval.json", json.dumps(result, indent=1))
    plot_pass_at_k(result, out / "pass_at_k.png")
    plot_coverage(result, out / "coverage.png")
    for length, (steps_list, rewards_list) in heat.items():
        if not steps_list:  # heatmap_problems=0
            continue
        titles = [task.prompt(p) for p in problems[: len(steps_list)]]
        plot_reveal_heatmaps(steps_list, rewards_list, titles, out / f"reveal_orders_L{length}.png")
    print_table(result)
    if target is not None:
        for length, res in result["lengths"].items():
            plot_target(
                res["target"], f"{result['model_name']}, L={length}", out / f"target_L{length}.png"
            )
        print_target_table(result)
    console.print(f"wrote {out / 'eval.json'} and plots in {out}", markup=False, emoji=False)
    return result


def load_on(cfg: EvalConfig, path: str, device: torch.device | str) -> Any:
    """The model at ``path``, loaded with the ``model`` section's settings, on ``device``
    (a 4-bit model stays where bitsandbytes put it)."""
    model = load_model(replace(cfg.model, path=path))
    return model if cfg.model.load_in_4bit else model.to(device)


def problems_sha1(task: Any, problems: list[Any]) -> str:
    """A fingerprint of the evaluated problems (their prompts, in order): two eval.json files
    with equal fingerprints scored the same problems."""
    text = "\n\x00".join(task.prompt(p) for p in problems)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def evaluate_length(
    cfg: EvalConfig,
    model: Any,
    task: Any,
    problems: list[Any],
    length: int,
    generator: torch.Generator,
    progress: Any,
    target: Target | None = None,
) -> tuple[dict[str, Any], tuple[list[np.ndarray], list[np.ndarray]]]:
    """One length's entry of eval.json (greedy accuracy, pass@k with intervals, coverage,
    locking, and the target instrument when ``target`` is given) and the reveal orders and
    outcomes of the first problems for the heatmaps."""
    n, ks, b = cfg.num_samples, power_of_two_ks(cfg.num_samples), len(problems)
    sampler = cfg.sampler_at(length)
    res: dict[str, Any] = {"steps": sampler.resolved_steps()}
    if cfg.greedy:
        greedy_sampler = cfg.sampler_at(length, greedy=True)
        greedy = rollout_task(
            model, task, problems, 1, greedy_sampler, generator, progress, f"greedy L={length}"
        )
        res["greedy_accuracy"] = float(solved(greedy).float().mean())
    scored = rollout_task(
        model, task, problems, n, sampler, generator, progress, f"{n} samples L={length}"
    )
    is_correct = solved(scored).view(b, n).numpy()  # (B, n) bool
    correct = is_correct.sum(axis=1).tolist()
    ci = bootstrap_ci(correct, n, ks, num_resamples=cfg.bootstrap, seed=cfg.seed)
    curve = pass_at_k_curve(correct, n, ks)
    res["mean_reward"] = float(scored.rewards.view(b, n).numpy().mean())  # as numpy sums it
    res["correct_counts"] = correct  # per problem, in problem order (paired comparisons)
    res["pass_at_k"] = {str(k): {"mean": curve[k], "ci": list(ci[k])} for k in ks}
    keys = [
        [
            task.solution_key(p, t)
            for p, t in zip(
                scored.problems[i * n : (i + 1) * n], scored.texts[i * n : (i + 1) * n], strict=True
            )
        ]
        for i in range(b)
    ]
    solutions = [task.all_solutions(p) for p in problems]
    res["coverage"] = dict(coverage_summary(keys, solutions))
    res["coverage_at_k"] = jsonable(coverage_at_k(keys, solutions, ks))
    res["solution_counts"] = solution_counts(keys)  # per problem {key: count} (the target's q_c)
    res["solution_set_sizes"] = [None if s is None else len(s) for s in solutions]
    steps = scored.trajectory.reveal_step.view(b, n, length).cpu().numpy()  # (B, n, L)
    res["locking"] = dict(locking_summary(list(steps), list(is_correct)))
    if target is not None:
        res["target"] = target_entry(cfg, target, res, model, scored, is_correct, length)
    m = min(cfg.heatmap_problems, b)
    return res, ([steps[i] for i in range(m)], [is_correct[i] * 1.0 for i in range(m)])


def jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def print_table(result: dict[str, Any]) -> None:
    lengths = list(result["lengths"])
    ks = list(result["lengths"][lengths[0]]["pass_at_k"])
    table = Table(
        title=Text(
            f"{result['model_name']} on {result['task']} ({result['num_problems']} "
            f"problems x {result['num_samples']} samples)"
        )
    )
    table.add_column("metric")
    for length in lengths:
        table.add_column(f"L={length}", justify="right")

    def row(name: str, get: Any, fmt: str = "{:.3f}") -> None:
        values = [get(result["lengths"][x]) for x in lengths]
        table.add_row(name, *("-" if v is None else fmt.format(v) for v in values))

    row("greedy accuracy", lambda r: r.get("greedy_accuracy"))
    for k in ks:
        row(f"pass@{k}", lambda r, k=k: r["pass_at_k"][k]["mean"])
    row("distinct correct / problem", lambda r: r["coverage"]["mean_distinct_correct"], "{:.2f}")
    row("solution-set coverage", lambda r: r["coverage"]["mean_coverage"])
    row("share of modal reveal order", lambda r: r["locking"]["order_share_of_mode"])
    row("reveal-order entropy (norm.)", lambda r: r["locking"]["order_entropy_normalized"])
    row("pairwise rank distance", lambda r: r["locking"]["mean_pairwise_rank_distance"])
    row(
        "  same, correct samples only",
        lambda r: r["locking"]["correct_mean_pairwise_rank_distance"],
    )
    console.print(table)
