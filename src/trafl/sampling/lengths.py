"""Per-sequence generation lengths: what each row of a mixed batch is scheduled to do.

``sample(..., lengths=[...])`` gives every row its own completion length L_i <= gen_length.
Row i is sampled as if alone with the sampler config :func:`at_length` derives for L_i:

* the block length is kept (one block, ``block_length`` None or ``gen_length``: one block of
  L_i tokens);
* steps scale with the length: ``steps_i = round(L_i * steps / gen_length)`` for one block,
  and with blocks the steps per block are kept (``steps / num_blocks``), so that every row of
  a batch is in the same block at the same step.

This rule is our choice (LLaDA's evaluation scripts use steps = L/2 at every length, which it
reproduces with ``steps = gen_length / 2``). In the batch, positions at and after L_i are
excluded from attention, never revealed (``reveal_step`` -1) and filled with EOS.

It is the one rule for steps at a length: rows of a mixed batch, and ``trafl eval``, which
decodes each of its ``gen_lengths`` with ``at_length(sampler, L)`` (tests/test_sampler_settings.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from trafl.sampling.config import SamplerConfig


def reveal_schedule(num_tokens: int, steps: int) -> list[int]:
    """Tokens revealed at each step of a block: as even as possible, the remainder first
    (LLaDA's ``get_num_transfer_tokens``)."""
    base, extra = divmod(num_tokens, steps)
    return [base + (1 if i < extra else 0) for i in range(steps)]


def at_length(config: SamplerConfig, length: int) -> SamplerConfig:
    """The config row of length ``length`` is sampled with (see the module docstring)."""
    if length == config.gen_length:
        return config
    if not 1 <= length <= config.gen_length:
        raise ValueError(f"a row length must be in 1..gen_length={config.gen_length}, got {length}")
    block, steps = config.block_length, config.resolved_steps()
    if block is None or block >= config.gen_length:  # one block: of the row's own length
        steps = max(1, round(length * steps / config.gen_length))
        return replace(config, gen_length=length, block_length=None, steps=steps)
    if length % block:
        raise ValueError(
            f"row length {length} is not a multiple of block_length {block}: with blocks, every "
            f"length must be a multiple of the block length (or use block_length=None)"
        )
    per_block = steps // (config.gen_length // block)
    return replace(config, gen_length=length, steps=per_block * (length // block))


@dataclass(frozen=True)
class RowPlan:
    """One row's schedule: its length, block length and reveals per step within a block."""

    length: int
    block: int
    schedule: tuple[int, ...]  # tokens revealed at each step of a block

    @property
    def num_blocks(self) -> int:
        return self.length // self.block

    def span(self, b: int) -> tuple[int, int] | None:
        """Completion positions of the row's block ``b``; None once the row has no block b."""
        return (b * self.block, (b + 1) * self.block) if b < self.num_blocks else None


def row_plans(
    config: SamplerConfig, lengths: Sequence[int] | torch.Tensor | None, n: int
) -> list[RowPlan]:
    """Plans of ``n`` rows: all at ``config.gen_length`` when ``lengths`` is None."""
    if lengths is None:
        lengths = [config.gen_length] * n
    values = [int(v) for v in (lengths.tolist() if isinstance(lengths, torch.Tensor) else lengths)]
    if len(values) != n:
        raise ValueError(f"{len(values)} lengths for {n} rows")

    @cache
    def plan(length: int) -> RowPlan:
        cfg = at_length(config, length)
        block = cfg.resolved_block_length()
        per_block = cfg.resolved_steps() // (length // block)
        return RowPlan(length, block, tuple(reveal_schedule(block, per_block)))

    return [plan(v) for v in values]
