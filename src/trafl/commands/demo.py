"""``trafl demo`` / ``make demo``: the main job on the embedded defaults.

From the shipped Countdown base, post-train TraFL and the reward-maximising baselines with the
same rollout budget and seed, evaluate every model and the base at three generation lengths,
and write ``OUT/report.md`` with the table, the plots and one sentence per method on whether it
stays above the base at every k and length. Finished stages are reused on a second run
(``fresh=true`` redoes them); an interrupted training resumes from its last checkpoint.
``--quick`` is a tiny end-to-end version for CI (minutes), not a measurement.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from trafl.commands.compare import CompareConfig, compare, load_eval
from trafl.commands.eval import EvalConfig, evaluate, llada_sampler
from trafl.commands.train import TrainConfig, train
from trafl.core.config import layer, parse_overrides, to_dict
from trafl.core.config_files import load_config
from trafl.evaluation.report import comparison_sections
from trafl.models import ModelConfig
from trafl.run.runtime import console


@dataclass
class DemoConfig:
    base: ModelConfig = field(default_factory=ModelConfig)  # base=PATH sets base.path
    methods: list[str] = field(default_factory=lambda: ["trafl", "diffu_grpo"])
    steps: int = 30  # RL steps per method (same rollout budget for all)
    prompts_per_step: int = 16
    group_size: int = 8
    lr: float = 1e-4
    eval_problems: int = 64
    eval_samples: int = 32
    gen_lengths: list[int] = field(default_factory=lambda: [16, 24, 32])
    seed: int = 0
    out_dir: str | None = None  # default runs/demo (runs/demo-quick with quick)
    quick: bool = False
    fresh: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        self.base = ModelConfig.coerce(self.base)

    def resolved(self) -> DemoConfig:
        """Apply ``quick``: a tiny budget that exercises every stage."""
        if not self.quick:
            return self
        return replace(
            self, steps=2, prompts_per_step=4, group_size=4, eval_problems=8, eval_samples=4
        )


def run_demo(cfg: DemoConfig) -> Path:
    cfg = cfg.resolved()
    out = Path(cfg.out_dir or ("runs/demo-quick" if cfg.quick else "runs/demo"))
    if cfg.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    evals = {"base": stage_eval(cfg, cfg.base, out / "base")}
    for method in cfg.methods:
        run_dir = out / method
        if not (run_dir / "model" / "config.json").is_file():
            console.rule(f"post-training {method}")
            train(train_config(cfg, method, run_dir))
        trained = replace(cfg.base, path=str(run_dir / "model"))
        evals[method] = stage_eval(cfg, trained, run_dir / "eval")
    console.rule("comparison")
    names = list(evals)
    summary = compare(
        CompareConfig(
            evals=[str(p) for p in evals.values()],
            names=names,
            base="base",
            out_dir=str(out / "compare"),
        )
    )
    results = {name: load_eval(str(path)) for name, path in evals.items()}
    write_report(cfg, out, results, summary["verdicts"])
    console.print(f"report: {out / 'report.md'}", style="bold")
    return out / "report.md"


def train_config(
    cfg: DemoConfig, method: str, run_dir: Path, extra: Sequence[str] = ()
) -> TrainConfig:
    """The demo's training run for ``method``; ``extra`` overrides come last (ablations)."""
    overrides = [
        f"objective.name={method}",
        f"steps={cfg.steps}",
        f"rollout.prompts_per_step={cfg.prompts_per_step}",
        f"rollout.group_size={cfg.group_size}",
        f"optim.lr={cfg.lr}",
        f"seed={cfg.seed}",
        f"out_dir={run_dir}",
        f"device={cfg.device}",
        f"ckpt_every={max(1, cfg.steps // 3)}",
        "resume=true",
        *extra,
    ]
    model = {"model": to_dict(cfg.base)}
    return load_config(
        TrainConfig, None, layer(model, parse_overrides(overrides, TrainConfig), TrainConfig)
    )


def stage_eval(cfg: DemoConfig, model: ModelConfig, out: Path) -> Path:
    """Evaluate unless ``out/eval.json`` exists already (a second demo run reuses it)."""
    if (out / "eval.json").is_file():
        console.print(f"reusing {out / 'eval.json'}")
        return out / "eval.json"
    console.rule(f"evaluating {model.path}")
    sampler = llada_sampler(max(cfg.gen_lengths))  # one block, steps = L/2 at every length
    evaluate(
        EvalConfig(
            model=model,
            num_problems=cfg.eval_problems,
            num_samples=cfg.eval_samples,
            gen_lengths=list(cfg.gen_lengths),
            sampler=sampler,
            seed=cfg.seed,
            out_dir=str(out),
            device=cfg.device,
            bootstrap=500,
        )
    )
    return out / "eval.json"


def write_report(cfg: DemoConfig, out: Path, results: dict, verdicts: dict[str, str]) -> None:
    lines = [
        "# trafl demo: TraFL vs reward maximisation on Countdown",
        "",
        f"Base model `{cfg.base.path}`; methods {', '.join(cfg.methods)}, each post-trained for "
        f"{cfg.steps} steps of {cfg.prompts_per_step} prompts x {cfg.group_size} rollouts "
        f"(seed {cfg.seed}, lr {cfg.lr}); evaluated on {cfg.eval_problems} test problems x "
        f"{cfg.eval_samples} samples at temperature 1, lengths {cfg.gen_lengths} (steps = L/2)."
        + (" **Quick mode: a smoke test, the numbers mean nothing.**" if cfg.quick else ""),
        "",
        *comparison_sections(results, "base", verdicts),
        "",
        "![pass@k](compare/pass_at_k.png)",
        "",
        "![coverage and locking](compare/coverage_locking.png)",
        "",
        "Reveal orders (samples x positions, coloured by reveal step) for a few problems:",
        "",
        *[
            f"- {name}: `{'base' if name == 'base' else name + '/eval'}/reveal_orders_L{cfg.gen_lengths[0]}.png`"
            for name in results
        ],
        "",
        "Confidence intervals: `*/eval.json` (bootstrap over problems). Regenerate: `trafl demo"
        + (" --quick" if cfg.quick else "")
        + " fresh=true`.",
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
