"""Undo an optimiser update that leaves a weight non-finite.

A loss and gradient can be finite while the update is not (``optim.lr=inf``, an overflow in
AdamW's step): checking the gradient alone lets such an update into the weights, and from there
into every later checkpoint. :class:`UpdateGuard` copies the trainable weights and their
optimiser state before ``optimizer.step()`` and puts them back when any weight comes out
non-finite, so the rolled-back update is exactly a skipped one. The copy costs one more set of
trainable weights and moments (small under LoRA); ``guard_updates=false`` turns it off, and a
non-finite weight then stops the run.
"""

from __future__ import annotations

from typing import Any

import torch


def local(t: torch.Tensor) -> torch.Tensor:
    """The rank-local part of a sharded (DTensor) tensor, the tensor itself otherwise."""
    return t.to_local() if hasattr(t, "to_local") else t


class UpdateGuard:
    def __init__(self, optimizer: torch.optim.Optimizer, enabled: bool = True) -> None:
        self.optimizer = optimizer
        self.enabled = enabled
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self._saved: list[tuple[torch.Tensor, dict[str, Any] | None]] = []

    def snapshot(self) -> None:
        if not self.enabled:
            return
        state = self.optimizer.state
        self._saved = [
            (
                local(p).detach().clone(),
                {k: v.clone() if torch.is_tensor(v) else v for k, v in state[p].items()}
                if p in state
                else None,
            )
            for p in self.params
        ]

    def weights_finite(self) -> bool:
        """Whether every trainable weight on this rank is finite (one device sync)."""
        flags = [torch.isfinite(local(p)).all() for p in self.params if local(p).numel()]
        return bool(torch.stack(flags).all()) if flags else True

    def restore(self) -> None:
        """Put back the weights and optimiser state of the last :meth:`snapshot`."""
        if not self._saved:
            raise RuntimeError("UpdateGuard.restore without a snapshot")
        state = self.optimizer.state
        with torch.no_grad():
            for p, (weights, saved) in zip(self.params, self._saved, strict=True):
                local(p).copy_(weights)
                if saved is None:
                    state.pop(p, None)
                else:
                    state[p] = saved
        self._saved = []
