"""Group statistics over the G samples of each prompt.

Rows are problem-major (rows g*G..g*G+G-1 share prompt g), so ``x.view(-1, G)`` is the
(B, G) table of a batch and every function here returns a per-row (N,) tensor.
"""

from __future__ import annotations

from typing import Literal

import torch

Baseline = Literal["mean", "leave_one_out", "none"]
BASELINES: tuple[str, ...] = ("mean", "leave_one_out", "none")
STD_EPS = 1e-4  # as TRL / d1: advantages / (std + 1e-4)


def grouped(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) -> (B, G) float32."""
    return x.float().view(-1, group_size)


def group_mean(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) mean of each row's group, repeated on its rows."""
    return grouped(x, group_size).mean(1, keepdim=True).expand(-1, group_size).reshape(-1)


def group_std(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) sample std (unbiased, as ``torch.std`` in TRL/d1) of each row's group; 0 if G = 1."""
    if group_size < 2:
        return torch.zeros_like(x, dtype=torch.float32)
    return grouped(x, group_size).std(1, keepdim=True).expand(-1, group_size).reshape(-1)


def group_sum(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) sum over each row's group, repeated on its rows."""
    return grouped(x, group_size).sum(1, keepdim=True).expand(-1, group_size).reshape(-1)


def advantages(
    rewards: torch.Tensor,
    group_size: int,
    baseline: Baseline = "mean",
    scale: bool = False,
) -> torch.Tensor:
    """(N,) group-relative advantages.

    ``mean``: A_i = r_i - mean_G(r) (GRPO, d1, wd1, SPG). ``leave_one_out``:
    A_i = r_i - mean_{j != i} r_j = G/(G-1) (r_i - mean_G r) (RLOO; ESPO). ``none``: A_i = r_i.
    ``scale`` divides by std_G(r) + 1e-4 (GRPO's ``scale_rewards``).
    """
    if baseline not in BASELINES:
        raise ValueError(f"invalid baseline {baseline!r}; valid: {', '.join(BASELINES)}")
    r = rewards.float()  # (N,)
    if baseline == "mean":
        adv = r - group_mean(r, group_size)
    elif baseline == "leave_one_out":
        if group_size < 2:
            raise ValueError("a leave-one-out baseline needs group_size >= 2")
        others = (group_sum(r, group_size) - r) / (group_size - 1)  # (N,)
        adv = r - others
    else:
        adv = r.clone()
    if scale:
        adv = adv / (group_std(r, group_size) + STD_EPS)
    return adv


def group_softmax(x: torch.Tensor, group_size: int, temperature: float = 1.0) -> torch.Tensor:
    """(N,) softmax of x / temperature within each group (each group's entries sum to 1)."""
    if temperature <= 0:
        raise ValueError(f"softmax temperature must be > 0, got {temperature}")
    return torch.softmax(grouped(x, group_size) / temperature, dim=1).reshape(-1)
