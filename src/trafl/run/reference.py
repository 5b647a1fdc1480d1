"""The frozen reference model pi_ref: computed only when an objective needs it.

:func:`reference_model` is the one place that decides what pi_ref is. For a LoRA policy it is
the same module with the adapter disabled (:class:`AdapterDisabled`): the base weights never
train, so this *is* the initial policy, and no second copy of a 7-8B model is held. For a
full-weight policy it is a frozen copy taken before training. Either way the trainer calls it
like any :class:`trafl.models.base.DiffusionLM`.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from trafl.models.lora import is_lora


def reference_model(policy: Any) -> Any:
    """pi_ref for ``policy``, taken before its first update."""
    return AdapterDisabled(policy) if is_lora(policy) else frozen_copy(policy)


def frozen_copy(model: Any) -> Any:
    """A deep copy with gradients off and in eval mode."""
    ref = copy.deepcopy(model)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


class AdapterDisabled:
    """A LoRA policy seen with its adapter disabled: calls run under ``disable_adapter()`` and
    without gradients; every other attribute (ids, tokenizer, ``eval``/``train``, parameters)
    is the policy's own, so the trainer's train/eval switching restores the policy's mode."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.policy.disable_adapter(), torch.no_grad():
            return self.policy(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "policy":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        found = getattr(self.policy, name)
        if name == "forward_cached":  # the sampler's cached forward: the adapter disabled too
            return self._disabled(found)
        return found

    def _disabled(self, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            with self.policy.disable_adapter(), torch.no_grad():
                return method(*args, **kwargs)

        return call


def prompt_hidden(model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
    """Mean-pooled last hidden states of the prompt tokens, (N, H) float32 (TraFL's log Z input).

    The prompt is encoded alone (no completion), so the representation depends on x only, as
    a prompt-dependent log Z(x) must."""
    out = model(prompt_ids, attention_mask=prompt_mask, output_hidden_states=True)
    hidden = out.hidden_states.float()  # (N, P, H)
    weights = prompt_mask.float()[..., None]  # (N, P, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)  # (N, H)
