"""``trafl demo`` / ``make demo``: the main job on the embedded defaults.

From the shipped Countdown base, post-train TraFL and d1 (diffu-GRPO) on a fixed pool of
problems (``pool``: trained on and evaluated on the same problems, where the tilted target
pi_ref exp(b r) / Z is defined; docs/TARGET.md), evaluate ``points`` checkpoints of each with
the target instrument against the base's evaluation, and write ``OUT/report.md``: the frontier
(pass@n and distinct solutions against pass@1 over checkpoints: a comparison at equal progress),
how far each method got towards a tilt and whether it moved like one, and whether it stays
above the base at every k. ``pool=0`` trains on the task's generator and evaluates on held-out
test problems instead. Finished stages are reused on a second run (``fresh=true`` redoes
them), also from a result pack without weights (scripts/packs.py); an interrupted training
resumes from its last checkpoint. ``--quick`` is a tiny
end-to-end version for CI (minutes), not a measurement.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from trafl.commands.compare import CompareConfig, compare, load_eval
from trafl.commands.eval import EvalConfig, evaluate, llada_sampler
from trafl.commands.train import TrainConfig, train
from trafl.core.config import check_at_least, from_dict, layer, parse_overrides, to_dict
from trafl.core.config_files import load_config
from trafl.core.errors import UserError
from trafl.core.layout import due_steps
from trafl.evaluation.html import write_html
from trafl.evaluation.plots import plot_frontier
from trafl.evaluation.report import comparison_sections, target_verdicts
from trafl.evaluation.target import TargetConfig
from trafl.models import ModelConfig
from trafl.objectives import OBJECTIVES
from trafl.run.folder import changed_settings
from trafl.run.runtime import console
from trafl.tasks import TASKS


@dataclass
class DemoConfig:
    base: ModelConfig = field(default_factory=ModelConfig)  # base=PATH sets base.path
    methods: list[str] = field(default_factory=lambda: ["trafl", "diffu_grpo"])
    pool: int = 48  # train on and evaluate on the first `pool` test problems; 0: held out
    steps: int = 90  # RL steps of a method that uses each batch once (TraFL: mu = 1)
    reuse_steps: int = 24  # RL steps of a method that reuses each batch (d1: mu = 12 updates)
    points: int = 3  # checkpoints per method evaluated: the frontier
    prompts_per_step: int = 16
    group_size: int = 8
    lr: float = 1e-4
    # 1: rollouts from the distribution the evaluation and its tilted target are defined on
    # (the reproduction in docs/REPRODUCTION.md used the training default, 0.9)
    rollout_temperature: float = 1.0
    eval_problems: int = 64  # with pool=0: held-out test problems evaluated
    eval_samples: int = 32
    gen_lengths: list[int] = field(default_factory=lambda: [16])
    balance_masks: int = 2  # K of the target instrument's balance gap (trafl eval target.*)
    seed: int = 0
    out_dir: str | None = None  # default runs/demo (runs/demo-quick with quick)
    quick: bool = False
    fresh: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        self.base = ModelConfig.coerce(self.base)
        check_at_least(self, {"steps": 1, "reuse_steps": 1, "points": 1, "pool": 0})

    def resolved(self) -> DemoConfig:
        """Apply ``quick``: a tiny budget that exercises every stage."""
        if not self.quick:
            return self
        return replace(
            self,
            pool=min(self.pool, 8),
            steps=2,
            reuse_steps=2,
            points=2,
            prompts_per_step=4,
            group_size=4,
            eval_problems=8,
            eval_samples=4,
        )


def run_demo(cfg: DemoConfig) -> Path:
    cfg = cfg.resolved()
    out = Path(cfg.out_dir or ("runs/demo-quick" if cfg.quick else "runs/demo"))
    if cfg.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    evals = {"base": stage_eval(cfg, cfg.base, out / "base")}
    series: dict[str, list[Path]] = {}
    for method in cfg.methods:
        series[method] = method_series(cfg, method, out)
        evals[method] = series[method][-1]
    console.rule("comparison")
    summary = compare(
        CompareConfig(
            evals=[str(p) for p in evals.values()],
            names=list(evals),
            base="base",
            out_dir=str(out / "compare"),
        )
    )
    results = {name: load_eval(str(path)) for name, path in evals.items()}
    frontier = {m: [load_eval(str(p)) for p in paths] for m, paths in series.items()}
    plot_frontier(results["base"], frontier, out / "compare" / "frontier.png")
    write_report(cfg, out, results, summary["verdicts"])
    console.print(f"report: {out / 'report.md'}", style="bold")
    return out / "report.md"


def method_series(cfg: DemoConfig, method: str, out: Path) -> list[Path]:
    """The evaluations of ``method``'s scheduled points, oldest first (the last, the final
    model, in METHOD/eval, where scripts/reproduction_report.py looks): reused when all are
    there (also from a result pack, which holds no weights), else trained (or resumed) and
    evaluated. A run folder trained with other settings is refused, never mixed in."""
    run_dir = out / method
    training = train_config(cfg, method, run_dir)
    where = ("out_dir", "device", "fsdp")  # where and how it ran, not what
    changes = changed_settings(run_dir / "config.yaml", training, where)
    if changes:
        raise UserError(
            f"{run_dir} holds a {method} run with other settings ({', '.join(changes.values())}"
            "): run the demo with the settings it had, or fresh=true to redo it, or another "
            "out_dir"
        )
    points = evaluation_points(cfg, method, run_dir)
    done = [run_dir / folder / "eval.json" for folder, _ in points]
    if all(path.is_file() for path in done):
        for folder, model in points:
            check_reusable(
                eval_config(cfg, replace(cfg.base, path=str(model)), run_dir / folder, out)
            )
        console.print(f"reusing the evaluations of {run_dir}")
        return done
    if not (run_dir / "model" / "config.json").is_file():
        console.rule(f"post-training {method}")
        train(training)
    return [
        stage_eval(cfg, replace(cfg.base, path=str(model)), run_dir / folder, out)
        for folder, model in points
        if model.is_dir()  # a scheduled checkpoint that is missing is left out
    ]


def evaluation_points(cfg: DemoConfig, method: str, run_dir: Path) -> list[tuple[str, Path]]:
    """(evaluation folder, model) of each point of the schedule, oldest first: ``eval-STEP``
    for each scheduled checkpoint before the last step, then ``eval`` for the final model (a
    run of 100 steps checkpointed every 33 has points 33, 66, 99 and 100)."""
    steps = steps_of(cfg, method)
    due = due_steps(ckpt_every(cfg, steps), steps)
    return [(f"eval-{s}", run_dir / f"checkpoint-{s}" / "model") for s in due[:-1]] + [
        ("eval", run_dir / "model")
    ]


def steps_of(cfg: DemoConfig, method: str) -> int:
    """``steps`` for an objective that uses each batch once, ``reuse_steps`` otherwise."""
    return cfg.steps if OBJECTIVES.get(method).default_inner_updates == 1 else cfg.reuse_steps


def ckpt_every(cfg: DemoConfig, steps: int) -> int:
    """Checkpoint interval of a ``steps``-step run: ``points`` evenly spaced checkpoints."""
    return max(1, steps // cfg.points)


def train_config(
    cfg: DemoConfig, method: str, run_dir: Path, extra: Sequence[str] = ()
) -> TrainConfig:
    """The demo's training run for ``method``; ``extra`` overrides come last (ablations)."""
    steps = steps_of(cfg, method)
    overrides = [
        f"objective.name={method}",
        f"task.pool={cfg.pool}",
        f"steps={steps}",
        f"rollout.prompts_per_step={cfg.prompts_per_step}",
        f"rollout.group_size={cfg.group_size}",
        f"rollout.sampler.temperature={cfg.rollout_temperature}",
        f"optim.lr={cfg.lr}",
        f"seed={cfg.seed}",
        f"out_dir={run_dir}",
        f"device={cfg.device}",
        f"ckpt_every={ckpt_every(cfg, steps)}",
        "keep_checkpoints=0",
        "eval_every=0",
        "resume=true",
        *extra,
    ]
    model = {"model": to_dict(cfg.base)}
    return load_config(
        TrainConfig, None, layer(model, parse_overrides(overrides, TrainConfig), TrainConfig)
    )


def stage_eval(cfg: DemoConfig, model: ModelConfig, out: Path, demo: Path | None = None) -> Path:
    """Evaluate unless ``out/eval.json`` exists already (a second demo run, or one continued
    from a result pack, reuses it; one made with other settings is refused, never mixed in);
    with ``demo`` (the demo's folder), with the target instrument against its base evaluation."""
    settings = eval_config(cfg, model, out, demo)
    if (out / "eval.json").is_file():
        check_reusable(settings)
        console.print(f"reusing {out / 'eval.json'}")
        return out / "eval.json"
    console.rule(f"evaluating {model.path}")
    evaluate(settings)
    return out / "eval.json"


def check_reusable(settings: EvalConfig) -> None:
    """Refuse the eval.json in ``settings.out_dir`` if it was made with other settings (its
    own ``config``; the eval_config.yaml beside it for one without). Where it ran may differ (a
    pack moved to another folder), and a method's point is named by its folder, not by its
    model's path; the base's path is what it evaluated."""
    out = Path(settings.out_dir)
    made = load_eval(str(out / "eval.json")).get("config") or out / "eval_config.yaml"
    point = settings.target.base is not None
    free = ("out_dir", "device", "target.base", *(("model.path",) if point else ()))
    changes = changed_settings(made, settings, free)
    if changes:
        raise UserError(
            f"{out} holds an evaluation with other settings ({', '.join(changes.values())}"
            f"): run the demo with the settings it had, or delete {out} to evaluate it again"
        )


def eval_config(cfg: DemoConfig, model: ModelConfig, out: Path, demo: Path | None) -> EvalConfig:
    """The demo's evaluation of ``model`` into ``out``."""
    target = TargetConfig()
    if demo is not None:
        target = TargetConfig(
            base=str(demo / "base"), reference=cfg.base.path, balance_masks=cfg.balance_masks
        )
    return EvalConfig(
        model=model,
        task=from_dict(TASKS.get("countdown").Config, {"pool": cfg.pool}),
        num_problems=cfg.pool or cfg.eval_problems,
        num_samples=cfg.eval_samples,
        gen_lengths=list(cfg.gen_lengths),
        sampler=llada_sampler(max(cfg.gen_lengths)),  # one block, steps = L/2 at every L
        heatmap_problems=2,
        seed=cfg.seed,
        out_dir=str(out),
        device=cfg.device,
        bootstrap=500,
        target=target,
    )


def write_report(cfg: DemoConfig, out: Path, results: dict, verdicts: dict[str, str]) -> None:
    budget = ", ".join(
        f"{m} {steps_of(cfg, m)} steps" for m in cfg.methods
    )  # equal progress, not equal steps: the frontier compares at equal pass@1
    where = (
        f"the first {cfg.pool} test problems, trained on and evaluated on (a fixed pool)"
        if cfg.pool
        else f"the generator, evaluated on {cfg.eval_problems} held-out test problems"
    )
    lines = [
        "# trafl demo: TraFL vs reward maximisation on Countdown",
        "",
        f"Base model `{cfg.base.path}`, post-trained on {where}: {budget} of "
        f"{cfg.prompts_per_step} prompts x {cfg.group_size} rollouts at temperature 1 (seed "
        f"{cfg.seed}, lr {cfg.lr}); {cfg.points} checkpoints each evaluated with "
        f"{cfg.eval_samples} samples per problem at temperature 1, lengths {cfg.gen_lengths} "
        "(steps = L/2), with the target instrument against the base (docs/TARGET.md)."
        + (" **Quick mode: a smoke test, the numbers mean nothing.**" if cfg.quick else ""),
        "",
        "## How far did each method get towards a tilt of the base, and did it move like one?",
        "",
        *[f"- {s}" for s in target_verdicts(results).values()],
        "",
        "![the frontier: pass@n and distinct solutions against pass@1](compare/frontier.png)",
        "",
        *comparison_sections(results, "base", verdicts),
        "",
        "![pass@k](compare/pass_at_k.png)",
        "",
        "![coverage and locking](compare/coverage_locking.png)",
        "",
        "One seed and one problem set: docs/TARGET.md has the same comparison with three seeds",
        "and a longer budget. Confidence intervals: `*/eval*/eval.json` (bootstrap over",
        "problems). Regenerate: `trafl demo" + (" --quick" if cfg.quick else "") + " fresh=true`.",
    ]
    markdown = "\n".join(lines) + "\n"
    (out / "report.md").write_text(markdown)
    write_html(markdown, out, out / "report.html")  # the same, one file with its figures
