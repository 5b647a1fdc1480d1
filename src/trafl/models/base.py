"""The model interface every sampler, estimator and trainer talks to.

A diffusion LM here is a *denoiser*: given token ids (some of them the mask id) it returns
logits ALIGNED so that ``logits[:, i]`` predicts token ``i`` (adapters for right-shifted models
such as Dream realign inside the adapter). It attends bidirectionally, honours a key padding
mask for left-padded prompts, and exposes its hidden states so an objective can pool the
prompt (TraFL's log Z head).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch


@dataclass
class DenoiserOutput:
    logits: torch.Tensor  # (N, T, V), position i predicts token i
    hidden_states: torch.Tensor | None = None  # (N, T, H), last layer after the final norm


@runtime_checkable
class TextTokenizer(Protocol):
    """The part of a tokenizer trafl uses; special ids come from here, never from constants."""

    mask_token_id: int
    eos_token_id: int
    pad_token_id: int

    def encode(self, text: str) -> list[int]: ...

    def encode_prompt(self, text: str) -> list[int]:
        """A prompt as the model expects it (an instruct model's chat template applied)."""
        ...

    def decode(self, ids: list[int]) -> str: ...


class TokenIdsFromTokenizer:
    """The special ids of :class:`DiffusionLM`, read from ``self.tokenizer`` (a mixin)."""

    tokenizer: TextTokenizer

    @property
    def mask_token_id(self) -> int:
        return self.tokenizer.mask_token_id

    @property
    def eos_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def pad_token_id(self) -> int:
        return self.tokenizer.pad_token_id


@runtime_checkable
class DiffusionLM(Protocol):
    """A masked diffusion language model (a torch module plus its token conventions)."""

    tokenizer: TextTokenizer
    hidden_size: int

    @property
    def mask_token_id(self) -> int: ...

    @property
    def eos_token_id(self) -> int: ...

    @property
    def pad_token_id(self) -> int: ...

    def __call__(
        self,
        input_ids: torch.Tensor,  # (N, T)
        attention_mask: torch.Tensor | None = None,  # (N, T) bool, False = padding
        output_hidden_states: bool = False,
    ) -> DenoiserOutput: ...

    def save_pretrained(self, path: str | Path) -> None: ...


def denoiser_logits(
    model: DiffusionLM,
    input_ids: torch.Tensor,  # (N, T)
    attention_mask: torch.Tensor | None,  # (N, T) bool
    start: int = 0,
    end: int | None = None,
) -> torch.Tensor:
    """Float32 logits of positions ``start:end`` with the mask token suppressed, (N, S, V).

    A denoiser never predicts the mask itself (MDLM's "zero masking probabilities"
    parametrisation); the sampler, the ELBO and every likelihood estimator go through this one
    function so that they agree on the distribution exactly."""
    logits = model(input_ids, attention_mask=attention_mask).logits[:, start:end].float()
    logits[..., model.mask_token_id] = float("-inf")
    return logits
