"""``trafl demo`` / ``make demo``: the main job on the embedded defaults.

For now it evaluates the shipped Countdown base model: greedy accuracy on the test split and
pass@k under temperature-1 sampling. (Post-training TraFL against the baselines joins it.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from trafl.generate import SampleConfig, run_sample
from trafl.runtime import console
from trafl.sampling import SamplerConfig


@dataclass
class DemoConfig:
    model: str = "models/countdown-base"
    gen_length: int = 16
    num_problems: int | None = None  # greedy accuracy on this many test problems (None: all)
    pass_k_problems: int = 100
    pass_k_samples: int = 16
    seed: int = 0
    device: str = "auto"


def run_demo(cfg: DemoConfig) -> None:
    base = SampleConfig(model=cfg.model, seed=cfg.seed, device=cfg.device, show=3)
    console.rule("greedy decoding (temperature 0)")
    greedy = SamplerConfig(gen_length=cfg.gen_length, temperature=0.0)
    run_sample(replace(base, sampler=greedy, num_problems=cfg.num_problems))
    console.rule(f"pass@k, {cfg.pass_k_samples} samples at temperature 1")
    hot = SamplerConfig(gen_length=cfg.gen_length, temperature=1.0)
    run_sample(replace(base, sampler=hot, num_problems=cfg.pass_k_problems,
                       num_samples=cfg.pass_k_samples))  # fmt: skip
