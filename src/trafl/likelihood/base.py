"""The likelihood-estimator interface and the pieces every estimator shares.

An estimator turns a rollout batch into an estimate of ``log pi(y | x)`` (or the surrogate its
method names). Its randomness (mask draws) lives in a :data:`Draw`, drawn ONCE per inner update
and handed unchanged to the policy, the old policy and the reference, so that differences such
as ``s_theta - s_ref`` cancel the mask noise (d1, SPG, ESPO and TraFL all share masks this way)::

    draw = estimator.draw(batch, generator)
    ref = estimator.estimate(ref_model, batch, draw)      # under torch.no_grad()
    policy = estimator.estimate(policy_model, batch, draw)  # with grad

Every tensor of a draw has the leading dimension N, so a micro-batch is ``slice_draw(draw, idx)``
next to ``batch.rows(idx)``. Letters: N rows, P prompt length, L completion length, K masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args, runtime_checkable

import torch

from trafl.core.batch import Estimate, Rollout
from trafl.core.config import ComponentConfig, check_choice
from trafl.core.registry import Registry
from trafl.likelihood.diffusion import masked_token_logp
from trafl.models.base import DiffusionLM

ESTIMATORS = Registry("estimator")  # each estimator module registers itself here


@dataclass
class EstimatorConfig(ComponentConfig):
    """The base of every estimator's ``Config`` (``TrainConfig.estimator`` holds the subclass
    that ``name`` picks)."""


Draw = dict[str, torch.Tensor]  # every tensor has leading dim N
Positions = Literal["all", "until_eos"]
POSITIONS: tuple[str, ...] = get_args(Positions)


@runtime_checkable
class Estimator(Protocol):
    """A likelihood estimator: all randomness in ``draw``, a differentiable ``estimate``."""

    Config: type[EstimatorConfig]  # with ``name: str = "<registered name>"``

    def __init__(self, config: Any) -> None: ...

    def draw(self, batch: Rollout, generator: torch.Generator) -> Draw:
        """Draw all the randomness of one (inner) update; shared by policy, old and ref."""
        ...

    def estimate(self, model: DiffusionLM, batch: Rollout, draw: Draw) -> Estimate:
        """Score ``batch`` under ``model`` with the drawn masks (differentiable)."""
        ...


def slice_draw(draw: Draw, index: torch.Tensor | slice) -> Draw:
    """The draw of a sub-batch: every tensor indexed along its leading (row) dimension."""
    return {key: value[index] for key, value in draw.items()}


def check_probability(field: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{field} must be in [0, 1], got {value}")


def check_positions(positions: str) -> None:
    check_choice("positions", positions, POSITIONS)


def valid_positions(batch: Rollout, positions: str) -> torch.Tensor:
    """(N, L) bool: the completion positions that count.

    ``"all"``: the L EOS-filled positions (LLaDA's convention, TraFL's reading);
    ``"until_eos"``: ``batch.completion_mask``, the tokens up to and including the first EOS.
    Every row has at least one valid position (the first token is always in either set)."""
    check_positions(positions)
    if positions == "all":
        return torch.ones_like(batch.completion_mask, dtype=torch.bool)  # (N, L)
    return batch.completion_mask.bool()  # (N, L)


def random_ranks(valid: torch.Tensor, num: int, generator: torch.Generator) -> torch.Tensor:
    """``num`` uniform random orders of each row's valid positions, (N, num, L) long.

    A valid position gets its rank 0..n-1 in the order (n = its row's number of valid
    positions); invalid positions rank after them. ``ranks < l`` is then a uniform random
    subset of l valid positions, and a prefix and a suffix of one order are an antithetic pair.
    """
    n, length = valid.shape
    keys = torch.rand((n, num, length), generator=generator, device=valid.device)  # (N, num, L)
    keys = keys.masked_fill(~valid[:, None, :], 2.0)  # invalid positions sort last
    return keys.argsort(dim=-1).argsort(dim=-1)  # (N, num, L)


def uniform_ints(
    low: torch.Tensor | int, high: torch.Tensor, num: int, generator: torch.Generator
) -> torch.Tensor:
    """Integers uniform on {low..high} per row, (N, num) long (needs low <= high)."""
    u = torch.rand((high.shape[0], num), generator=generator, device=high.device)  # (N, num)
    span = (high - low + 1)[:, None]  # (N, 1)
    return torch.minimum(low + (u * span).long(), high[:, None])  # (N, num)


def score_masks(
    model: DiffusionLM,
    batch: Rollout,
    masks: torch.Tensor,  # (N, K, L) bool, True = completion position hidden
    prompt_masks: torch.Tensor | None = None,  # (N, K, P) bool, True = prompt token hidden
) -> torch.Tensor:
    """log p_theta(y_i | y with ``masks[:, k]`` hidden, x) for every k, (N, K, L) float32.

    The K masks of every row go through ONE forward of N*K rows (rows repeat_interleaved,
    so row r's masks are rows r*K..r*K+K-1). Values at unmasked positions are computed but
    meaningless: callers keep only the masked ones."""
    n, k, length = masks.shape
    prompt_ids = batch.prompt_ids.repeat_interleave(k, dim=0)  # (N*K, P)
    if prompt_masks is not None:
        hidden = prompt_masks.reshape(n * k, -1)  # (N*K, P)
        prompt_ids = prompt_ids.masked_fill(hidden, model.mask_token_id)  # (N*K, P)
    logp = masked_token_logp(
        model,
        prompt_ids,
        batch.prompt_mask.repeat_interleave(k, dim=0),  # (N*K, P)
        batch.completion_ids.repeat_interleave(k, dim=0),  # (N*K, L)
        masks.reshape(n * k, length),  # (N*K, L)
    )  # (N*K, L)
    return logp.view(n, k, length)  # (N, K, L)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Mean of ``values`` over the True entries of ``mask`` along ``dim`` (float32)."""
    total = torch.where(mask, values, 0.0).sum(dim)
    return total / mask.sum(dim).clamp_min(1)


def masked_sum(values: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Sum of ``values`` over the True entries of ``mask`` along ``dim`` (float32)."""
    return torch.where(mask, values, 0.0).sum(dim)
