"""The objective interface: tensors in, ``(loss, metrics)`` out.

An objective never sees a model or an estimator. The trainer scores rollouts with the
estimator the objective names (``estimator_name``), and hands the loss a :class:`LossInputs`
of plain tensors. Its contract with the trainer:

1. ``prepare(rewards, group, group_size, lengths)`` runs once on the FULL batch, without
   grad, and returns per-row tensors (advantages, centred rewards, batch-level normalisers
   broadcast to every row) so they can be sliced into micro-batches with the rows.
2. ``loss(inputs)`` runs on a micro-batch of WHOLE groups and returns the MEAN over its rows.
   The trainer backpropagates ``loss_mb * n_mb / N``, so every loss here is a mean of per-row
   terms (or of per-group terms, groups being of equal size): the summed gradient does not
   depend on how the batch was split. ``tests/test_objectives.py`` checks this for every
   registered objective.

Letters: N rows (B prompts x G samples, problem-major), G, L completion length, K mask draws,
H hidden size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

import torch

from trafl.core.batch import Estimate
from trafl.core.config import (
    ComponentConfig,
    check_choice,  # noqa: F401  (re-exported for objectives)
)
from trafl.core.registry import Registry

OBJECTIVES = Registry("objective")

TokenReduction = Literal["group", "batch", "sequence"]  # see token_mean_weights
TOKEN_REDUCTIONS: tuple[str, ...] = get_args(TokenReduction)


@dataclass
class ObjectiveConfig(ComponentConfig):
    """The base of every objective's ``Config`` (``TrainConfig.objective`` holds the subclass
    that ``name`` picks)."""


@dataclass
class LossInputs:
    """Everything a loss may read, for one micro-batch of whole groups (n rows)."""

    policy: Estimate  # current policy, WITH grad
    old: Estimate | None  # detached; the rollout policy (for ratios); None: same as policy
    ref: Estimate | None  # detached; the frozen reference; None if not needed
    rewards: torch.Tensor  # (n,) float32
    prepared: dict[str, torch.Tensor]  # per-row outputs of prepare(), sliced to these rows
    group: torch.Tensor  # (n,) long, prompt index
    group_size: int  # G
    gen_length: int  # L
    prompt_hidden: torch.Tensor | None = None  # (n, H) mean-pooled prompt hidden states

    @property
    def num_rows(self) -> int:
        return int(self.rewards.shape[0])


def check_groups(group: torch.Tensor, group_size: int) -> None:
    """Rows must be problem-major whole groups: ``group.view(-1, G)`` constant along G."""
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    n = group.shape[0]
    if n == 0 or n % group_size:
        raise ValueError(f"{n} rows are not whole groups of group_size={group_size}")
    blocks = group.view(-1, group_size)  # (B, G)
    if not bool((blocks == blocks[:, :1]).all()):
        raise ValueError("rows must be problem-major: rows g*G..g*G+G-1 must share one prompt")


def token_mask_of(estimate: Estimate, gen_length: int) -> torch.Tensor:
    """(n, L) float32: the estimate's token mask, or all ones where it has none."""
    if estimate.token_mask is not None:
        return estimate.token_mask.float()
    n = estimate.seq.shape[0]
    return torch.ones(n, gen_length, device=estimate.seq.device)


def completion_lengths(inputs: LossInputs) -> torch.Tensor:
    """(n,) float32 |o_i|: from prepare()'s ``lengths`` if given, else the policy's token mask,
    else the full generation length L."""
    if "lengths" in inputs.prepared:
        return inputs.prepared["lengths"].float()
    return token_mask_of(inputs.policy, inputs.gen_length).sum(1)


def prepare_token_mean(reduction: str, lengths: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """prepare()'s share of :func:`token_mean_weights`: for ``"batch"``, N / sum_i |o_i| on
    every row, the one number a micro-batch cannot compute from its own rows."""
    if reduction != "batch":
        return {}
    if lengths is None:
        raise ValueError("token_reduction='batch' needs prepare(..., lengths=...)")
    total = lengths.float().sum().clamp(min=1.0)
    return {"token_weight": torch.full_like(lengths, len(lengths), dtype=torch.float32) / total}


def token_mean_weights(
    inputs: LossInputs, tokens: torch.Tensor, reduction: str, objective: str
) -> torch.Tensor:
    """(n,) w_i such that mean_rows(w_i * S_i) is the token-mean that ``reduction`` (an
    objective's ``token_reduction``) names, S_i being row i's sum of per-token terms over its
    ``tokens[i]`` tokens:

    - ``group``: w_i = G / sum_{j in group} tokens_j: a token-mean per group, then the mean
      over groups. d1 and SPG as run: their loss is a token-mean over a device micro-batch,
      which their configs make one group (per_device_train_batch_size = num_generations).
    - ``batch``: w_i = N / sum_j |o_j|: one token-mean over the whole batch (TRL's later
      default; the weight comes from :func:`prepare_token_mean`).
    - ``sequence``: w_i = 1 / tokens_i: each row's token-mean, then the mean over rows.
    """
    if reduction == "sequence":
        return 1.0 / tokens.clamp(min=1.0)
    if reduction == "group":
        g = inputs.group_size
        per_group = tokens.view(-1, g).sum(1, keepdim=True).clamp(min=1.0)  # (b, 1)
        return (g / per_group).expand(-1, g).reshape(-1)  # (n,)
    return prepared_field(inputs, "token_weight", objective)


class Objective(torch.nn.Module):
    """Base class: declarations the trainer reads, plus shared validation.

    Subclasses set ``Config`` (a dataclass whose first field is ``name``), the class-level
    declarations below (instances may refine them from their config, e.g. no reference when
    the KL coefficient is 0), and implement :meth:`loss`.
    """

    Config: ClassVar[type[ObjectiveConfig]]
    needs_reference: bool = False  # the trainer computes `ref` (same masks as the policy)
    needs_old: bool = False  # the trainer computes `old` when rollouts are reused (mu > 1)
    needs_prompt_hidden: bool = False  # the trainer passes mean-pooled prompt hidden states
    # ... with a graph to backpropagate through (False: computed without one, e.g. TraFL's
    # log Z head on a detached backbone)
    prompt_hidden_grad: bool = False
    estimator_name: str = "mask_mean"  # the likelihood estimator this objective is defined on
    default_inner_updates: int = 1  # mu: optimiser steps per rollout batch
    # its learning signal compares the G samples of a prompt (advantages against the group's
    # mean): a group of one has no signal, so the config refuses rollout.group_size < 2
    group_relative: ClassVar[bool] = False
    # its fixed point does not depend on which distribution drew the rollouts (trajectory
    # balance: any full-support behaviour policy), so rows drawn from pi_ref may be mixed in
    # (rollout.reference_share); a policy-gradient objective assumes on-policy rows
    off_policy: ClassVar[bool] = False

    @classmethod
    def min_group_size(cls, config: Any) -> int:
        """The smallest G that ``config`` learns from: 2 when group-relative, else 1."""
        return 2 if cls.group_relative else 1

    def __init__(self, config: Any, hidden_size: int) -> None:
        super().__init__()
        self.config = config
        self.hidden_size = hidden_size

    def prepare(
        self,
        rewards: torch.Tensor,
        group: torch.Tensor,
        group_size: int,
        lengths: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Group statistics on the full batch (no grad). ``lengths`` (N,) are the completion
        lengths |o_i| (tokens up to and including EOS) for objectives that weight by them."""
        check_groups(group, group_size)
        if rewards.shape != group.shape:
            shapes = f"{tuple(rewards.shape)} and {tuple(group.shape)}"
            raise ValueError(f"rewards and group must both be (N,), got {shapes}")
        out: dict[str, torch.Tensor] = {}
        if lengths is not None:
            out["lengths"] = lengths.detach().float()  # (N,)
        return out

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """Extra optimizer groups (e.g. the log Z head) with their own lr; [] if none."""
        return []

    def check_inputs(self, inputs: LossInputs) -> None:
        """Validate what this objective declared it needs (a trainer bug, or a user's own
        trainer, should fail with a message rather than a shape error)."""
        check_groups(inputs.group, inputs.group_size)
        if self.needs_reference and inputs.ref is None:
            raise ValueError(f"{type(self).__name__} needs reference estimates (inputs.ref)")
        if self.needs_prompt_hidden and inputs.prompt_hidden is None:
            raise ValueError(f"{type(self).__name__} needs inputs.prompt_hidden (n, H)")


def prepared_field(inputs: LossInputs, key: str, objective: str) -> torch.Tensor:
    """A per-row tensor from prepare(), with an error that says what to call."""
    if key not in inputs.prepared:
        raise ValueError(
            f"{objective}: inputs.prepared lacks {key!r}; call objective.prepare() on the full "
            f"batch and slice its outputs with the rows (got keys {sorted(inputs.prepared)})"
        )
    return inputs.prepared[key].float()
