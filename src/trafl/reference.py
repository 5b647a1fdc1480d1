"""The frozen reference model pi_ref: computed only when an objective needs it.

For a full-weight policy it is a frozen copy taken before training. (A LoRA policy will use the
same weights with the adapter disabled, so no second copy is held.)
"""

from __future__ import annotations

import copy
from typing import Any

import torch


def frozen_copy(model: Any) -> Any:
    """A deep copy with gradients off and in eval mode."""
    ref = copy.deepcopy(model)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def prompt_hidden(model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
    """Mean-pooled last hidden states of the prompt tokens, (N, H) float32 (TraFL's log Z input).

    The prompt is encoded alone (no completion), so the representation depends on x only, as
    a prompt-dependent log Z(x) must."""
    out = model(prompt_ids, attention_mask=prompt_mask, output_hidden_states=True)
    hidden = out.hidden_states.float()  # (N, P, H)
    weights = prompt_mask.float()[..., None]  # (N, P, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)  # (N, H)
