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

from trafl.core.batch import Rollout, completion_mask_from_eos
from trafl.core.config import (
    ConfigError,
    check_at_least,
    check_lengths,
    component,
    to_dict,
)
from trafl.core.config_files import load_saved_config, save_config
from trafl.core.errors import UserError
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
from trafl.evaluation.report import TARGET_LEGEND, target_rows
from trafl.evaluation.target import TargetConfig, balance_gap, target_report
from trafl.likelihood import ESTIMATORS, slice_draw
from trafl.models import ModelConfig, load_model, resolve_model_path
from trafl.objectives import TraFLConfig, sequence_tilt
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
    if cfg.out_dir:
        return Path(cfg.out_dir)
    if model_path.name == "model" and (model_path.parent / "config.yaml").is_file():
        return model_path.parent / "eval"
    return Path("runs") / "eval" / model_path.name


@dataclass
class Target:
    """What the target instrument needs beyond the evaluation: the base's eval.json, the tilt
    b (None: only the fitted shift) and where it came from, and pi_ref for the balance gap."""

    base: dict[str, Any]
    b: float | None
    source: str
    reference: Any | None = None


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate at every length of ``cfg.gen_lengths``; writes eval.json and the plots."""
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    model_path = Path(resolve_model_path(cfg.model.path))
    task = build_task(cfg.task)  # bad data fails here, before the model loads
    problems = subset(task.problems(cfg.split), cfg.num_problems)
    result: dict[str, Any] = {
        "model": str(model_path),
        "model_name": model_path.parent.name if model_path.name == "model" else model_path.name,
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
    (out / "eval.json").write_text(json.dumps(result, indent=1))
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


# the target instrument ----------------------------------------------------------------------


def load_base_eval(path: str) -> dict[str, Any]:
    """The base's eval.json: the file, or an eval.json in the folder (or its ``eval/``)."""
    p = Path(path)
    for candidate in (p, p / "eval.json", p / "eval" / "eval.json"):
        if candidate.is_file():
            return json.loads(candidate.read_text())
    raise UserError(
        f"target.base: no eval.json at {path!r} (give the base's eval.json or its folder)"
    )


def check_same_problems(base: dict[str, Any], result: dict[str, Any], cfg: EvalConfig) -> None:
    """One-line error unless the base's eval.json scored the same problems (task and its
    settings, pool, split, number, fingerprint) at every length evaluated here."""
    mine = {"task": cfg.task.name, "split": cfg.split, "num_problems": result["num_problems"]}
    theirs = {key: base.get(key) for key in mine}
    task_mine, task_theirs = to_dict(cfg.task), dict(base.get("config", {}).get("task", {}))
    task_theirs.setdefault("pool", 0)  # an eval.json from before task.pool
    shared = sorted(set(task_mine) & set(task_theirs))
    differ = [f"{k}={theirs[k]!r} (here {v!r})" for k, v in mine.items() if theirs[k] != v]
    differ += [
        f"task.{k}={task_theirs[k]!r} (here {task_mine[k]!r})"
        for k in shared
        if task_mine[k] != task_theirs[k]
    ]
    if not differ and base.get("problems_sha1") not in (None, result["problems_sha1"]):
        differ.append("different problems (problems_sha1)")
    missing = [
        str(n)
        for n in cfg.gen_lengths
        if "correct_counts" not in base.get("lengths", {}).get(str(n), {})
    ]
    if missing:
        has = ",".join(base.get("lengths", {}))
        differ.append(f"no correct_counts at L={','.join(missing)} (it has L={has})")
    if differ:
        raise UserError(
            f"target.base was evaluated on other problems: {'; '.join(differ)}; evaluate the "
            "base with the same task, split, num_problems and gen_lengths"
        )


def prepare_target(cfg: EvalConfig, model_path: Path, result: dict[str, Any]) -> Target | None:
    """The base's eval.json (checked against these problems) and the tilt b, or None when
    ``target.base`` is not set."""
    if cfg.target.base is None:
        return None
    base = load_base_eval(cfg.target.base)
    check_same_problems(base, result, cfg)
    if cfg.target.tilt is not None:
        return Target(base, float(cfg.target.tilt), "given (target.tilt)")
    b, source = run_tilt(Path(cfg.model.path), model_path)
    return Target(base, b, source)


def run_tilt(given: Path, model_path: Path) -> tuple[float | None, str]:
    """b from the evaluated run folder's config.yaml (a TraFL run: :func:`sequence_tilt` at the
    run's group size and rollout length); None, with the reason, where there is none."""
    folders = [given, model_path.parent, model_path.parent.parent]  # run, RUN/model, checkpoint
    config = next((f / "config.yaml" for f in folders if (f / "config.yaml").is_file()), None)
    if config is None:
        return None, "no run config.yaml and no target.tilt: b_hat only"
    from trafl.commands.train_config import TrainConfig  # a run's config, as train wrote it

    try:
        run = load_saved_config(TrainConfig, config)
    except ValueError as err:  # ConfigError too: a config from another version of trafl
        raise UserError(
            f"target.tilt is not set and {config} is not a readable run config "
            f"({err}); set target.tilt"
        ) from None
    if not isinstance(run.objective, TraFLConfig):
        name = run.objective.name
        return None, f"objective {name!r} has no tilt target: b_hat only (set target.tilt)"
    g, length = run.rollout.group_size, run.rollout.sampler.gen_length
    b = sequence_tilt(run.objective, g, length)
    if b is None:
        return None, f"reward_norm={run.objective.reward_norm} is not a tilt: b_hat only"
    o = run.objective
    setting = f"beta={o.beta:g} ({o.beta_units}), reward_norm={o.reward_norm}, log_z={o.log_z}"
    return b, f"{config}: trafl {setting}, G={g}, L={length}"


def target_entry(
    cfg: EvalConfig,
    target: Target,
    res: dict[str, Any],
    model: Any,
    scored: Rollout,
    is_correct: np.ndarray,
    length: int,
) -> dict[str, Any]:
    """``lengths.<L>.target``: :func:`target_report` against the base's entry at this length,
    with the balance gap when a reference is loaded."""
    balance = None
    if target.reference is not None:
        k = cfg.target.balance_masks
        log_ratio = log_ratios(model, target.reference, scored, k, cfg.seed, cfg.sampler.batch_size)
        group = np.repeat(np.arange(is_correct.shape[0]), is_correct.shape[1])  # (N,)
        balance = {**balance_gap(log_ratio, is_correct.reshape(-1), group), "num_masks": k}
    base = target.base
    report = target_report(
        base["lengths"][str(length)],
        base["num_samples"],
        res,
        cfg.num_samples,
        target.b,
        cfg.seed,
        balance,
    )
    return {"tilt_source": target.source, "base": base.get("model", ""), **report}


@torch.no_grad()
def log_ratios(
    model: Any, reference: Any, scored: Rollout, num_masks: int, seed: int, batch_size: int
) -> np.ndarray:
    """(N,) D = log pi_theta(y|x) - log pi_ref(y|x) in sequence nats, estimated by
    ``mask_mean`` over all L positions (its per-token ``seq`` times its ``length``) with the
    same K masks for both models, so the mask noise largely cancels in the difference."""
    estimator_cls = ESTIMATORS.get("mask_mean")
    estimator = estimator_cls(estimator_cls.Config(num_masks=num_masks, positions="all"))
    device = scored.completion_ids.device
    scored.completion_mask = completion_mask_from_eos(scored.completion_ids, model.eos_token_id)
    draw = estimator.draw(scored, torch.Generator(device=device).manual_seed(seed))
    chunk = max(1, batch_size // num_masks)  # rows per forward: N*K rows in all
    out = []
    for start in range(0, scored.num_rows, chunk):
        rows = slice(start, start + chunk)
        batch, d = scored.rows(rows), slice_draw(draw, rows)
        mine, ref = estimator.estimate(model, batch, d), estimator.estimate(reference, batch, d)
        out.append((mine.seq * mine.length - ref.seq * ref.length).float().cpu())  # (chunk,)
    return torch.cat(out).numpy()  # (N,)


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


def print_target_table(result: dict[str, Any]) -> None:
    """The target instrument, one row per length (:func:`trafl.evaluation.report.target_rows`)."""
    header, rows = target_rows({result["model_name"]: result})
    first = result["lengths"][rows[0][1]]["target"]
    table = Table(title=Text(f"target: the base tilted by b ({first['tilt_source']})"))
    for h in header[1:]:
        table.add_column(h, justify="left" if h == "L" else "right")
    for row in rows:
        table.add_row(*row[1:])
    console.print(table)
    console.print(TARGET_LEGEND, markup=False, emoji=False)
