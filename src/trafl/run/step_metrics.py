"""The metrics of one RL step: micro-batch metrics combined, and rollout statistics."""

from __future__ import annotations

from typing import Any

import torch

from trafl.core.batch import Rollout


def average_parts(parts: list[tuple[float, torch.Tensor, dict[str, float]]]) -> dict[str, float]:
    """Micro-batch metrics weighted by their share of rows; a NaN (a mean over no rows, e.g.
    no successes in that micro-batch) is left out with its weight."""
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    for share, _, m in parts:
        for key, value in m.items():
            value = float(value)
            sums.setdefault(key, 0.0)
            weights.setdefault(key, 0.0)
            if value == value:  # not NaN
                sums[key] += share * value
                weights[key] += share
    return {k: sums[k] / weights[k] if weights[k] > 0 else float("nan") for k in sums}


def rollout_metrics(batch: Rollout, cfg: Any = None) -> dict[str, float]:
    """Rollout statistics; with rows from pi_ref (``reference_share``), the policy's rows'
    and the reference's rows' mean rewards apart."""
    r = batch.rewards
    mixed = {}
    k = cfg.reference_rows() if cfg is not None else 0
    if k:
        from_ref = (torch.arange(batch.num_rows, device=r.device) % cfg.group_size) >= (
            cfg.group_size - k
        )  # (N,)
        mixed = {
            "reward_policy_rows": float(r[~from_ref].mean()),
            "reward_reference_rows": float(r[from_ref].mean()),
        }
    return mixed | {
        "reward": float(r.mean()),
        "reward_std": float(r.std()) if r.numel() > 1 else 0.0,
        "rollout_length": float(batch.completion_mask.sum(1).float().mean()),
        "rollout_reward_errors": batch.num_reward_errors,
        **{f"reward_{name}": float(v.mean()) for name, v in batch.components.items()},
    }
