"""AdamW with linear warm-up and cosine decay: the one optimiser recipe trafl uses."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    warmup_steps: int = 100  # linear warm-up over this many optimiser updates (RL: steps x mu)
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at the last step
    grad_clip: float = 1.0  # max global grad norm; <= 0 disables clipping
    # OUR choice: the objective's own parameters (TraFL's log Z head) are clipped as their own
    # group, so a large log Z gradient (2 delta per row) cannot shrink the policy's step
    clip_objective_separately: bool = True

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")

    @property
    def length_independent(self) -> bool:
        """No warm-up and no decay: the lr at a step does not depend on the run's length, so a
        finished run continued to more steps is the longer run (``target_study --extend``)."""
        return self.warmup_steps == 0 and self.min_lr_ratio == 1


def build_optimizer(
    groups: Iterable[dict[str, Any]], config: OptimConfig, total_steps: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over parameter groups (a group may carry its own ``lr``) and its schedule."""
    optimizer = torch.optim.AdamW(
        list(groups),
        lr=config.lr,
        betas=config.betas,
        eps=config.eps,
        weight_decay=config.weight_decay,
    )

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        span = max(1, total_steps - config.warmup_steps)
        progress = min(1.0, (step - config.warmup_steps) / span)
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def decay_groups(module: torch.nn.Module, lr: float | None = None) -> list[dict[str, Any]]:
    """Weight decay on matrices only (not norms, not embeddings' tied copies twice)."""
    decay, no_decay, seen = [], [], set()
    for _, p in module.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.ndim >= 2 else no_decay).append(p)
    extra = {} if lr is None else {"lr": lr}
    return [{"params": decay, **extra}, {"params": no_decay, "weight_decay": 0.0, **extra}]
