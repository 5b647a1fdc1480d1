"""One run state for every trainer: what a checkpoint holds besides the model's weights.

The optimizer, the learning-rate schedule, the data and mask generators, every global RNG
(Python, NumPy, torch, CUDA), the step, the trainer's counters and the state of extra modules
(TraFL's log Z head) are saved and restored together by :meth:`RunState.state_dict` /
:meth:`RunState.load_state_dict`, so a resumed run continues bit for bit. A run resumed on
another kind of device (``device`` may change on resume: started on a GPU, continued on the
CPU) cannot take its mask generator's state (a CUDA generator's Philox seed and offset are
not a CPU generator's Mersenne Twister state): the generator is then seeded from the saved
state and the step, and the run continues in law, not bit for bit, with a warning.
``trafl train`` and ``trafl pretrain`` both use it; a sharded optimizer (FSDP) leaves ``optimizer`` out and saves
its per-rank shards beside the state (trafl.commands.train).

The state file's keys are flat (``step``, ``optimizer``, ``objective``, a counter's name, ...)
so checkpoints written before this class existed still load.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from typing import Any

import torch

from trafl.run.checkpoint import rng_state, set_rng_state
from trafl.run.runtime import console


class RunState:
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        data_rng: random.Random,
        mask_gen: torch.Generator,
        modules: dict[str, Any] | None = None,
        counters: Iterable[str] = (),
    ) -> None:
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.data_rng = data_rng
        self.mask_gen = mask_gen
        self.modules = dict(modules or {})  # name -> object with state_dict / load_state_dict
        self.step = 0
        self.counters = dict.fromkeys(counters, 0)
        # the settings the run's config gave each parameter group (lr, betas, weight decay,
        # ...): a resume keeps them, not the saved ones, which differ only where the config
        # was changed on purpose (``allow_changes``, e.g. a smaller lr to continue with)
        self.configured = [
            {k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups
        ]

    def state_dict(self, with_optimizer: bool = True) -> dict[str, Any]:
        """Everything to resume from; ``with_optimizer=False`` when the optimizer is sharded
        and saved per rank (its entry is then None, which the loader checks)."""
        return {
            **{name: module.state_dict() for name, module in self.modules.items()},
            "optimizer": self.optimizer.state_dict() if with_optimizer else None,
            "scheduler": self.scheduler.state_dict(),
            "data_rng": self.data_rng.getstate(),
            "mask_gen": self.mask_gen.get_state(),
            "rng": rng_state(),
            "step": self.step,
            **self.counters,
        }

    def load_state_dict(self, state: dict[str, Any], with_optimizer: bool = True) -> None:
        """Restore :meth:`state_dict`'s output (``with_optimizer=False``: the caller loads the
        optimizer's shards itself)."""
        for name, module in self.modules.items():
            module.load_state_dict(state[name])
        if with_optimizer:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.keep_configured()
        self.data_rng.setstate(state["data_rng"])
        self.step = state["step"]
        self.restore_mask_gen(state["mask_gen"])
        set_rng_state(state["rng"])
        self.counters.update({name: state[name] for name in self.counters})  # in place: shared

    def restore_mask_gen(self, saved: torch.Tensor) -> None:
        """The mask generator's saved state; one of another device kind's layout (its size
        differs) is replaced by a seed drawn from its bytes and the step, so that the same
        checkpoint always continues the same way."""
        if saved.numel() == self.mask_gen.get_state().numel():
            self.mask_gen.set_state(saved)
            return
        digest = hashlib.sha256(saved.numpy().tobytes() + self.step.to_bytes(8, "little"))
        self.mask_gen.manual_seed(int.from_bytes(digest.digest()[:8], "little"))
        console.print(
            f"the mask generator's state ({saved.numel()} bytes) was written on another kind "
            f"of device than {self.mask_gen.device.type}; reseeded from it and step "
            f"{self.step}: this run continues in law, not bit for bit",
            style="yellow",
        )

    def keep_configured(self) -> None:
        """Put the config's group settings back after a load (the optimizer's and the
        schedule's state dicts carry the saved ones), then the lr of the restored step:
        base * factor(step), LambdaLR's own expression, so an unchanged run resumes bit for
        bit and a changed lr takes effect from the next update."""
        groups = self.optimizer.param_groups
        for group, configured in zip(groups, self.configured, strict=True):
            group.update({k: v for k, v in configured.items() if k != "lr"})
        lambdas = getattr(self.scheduler, "lr_lambdas", None)
        if lambdas is None:  # not a LambdaLR: its own state decides
            return
        self.scheduler.base_lrs = [g["initial_lr"] for g in groups]
        epoch = self.scheduler.last_epoch
        for group, base, factor in zip(groups, self.scheduler.base_lrs, lambdas, strict=True):
            group["lr"] = base * factor(epoch)
