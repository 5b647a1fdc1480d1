"""Data-parallel training over several processes, launched by accelerate or torchrun.

    accelerate launch --config_file configs/accelerate/ddp.yaml -m trafl train CONFIG ...
    torchrun --nproc_per_node 2 -m trafl train CONFIG ...

What is split and what is not, so that W ranks compute the SAME update as one process:

* Every rank draws the same B prompts (same data seed); rank r samples only its B/W whole
  groups, so group statistics (advantages, group means) stay exact.
* Rollout noise is keyed by (seed, step, global row): a row's completion does not depend on
  which rank sampled it or what else shared its batch (``trafl.sampling.sampler.uniform``).
* The (small) rollout tensors are all-gathered, so the objective's batch-level statistics
  (``prepare``) and the estimator's random masks are computed on the global batch, identically
  on every rank, and each rank keeps its rows.
* Each rank backpropagates the mean loss of its rows; gradients are then averaged across ranks
  (an all-reduce, exactly what DDP does), so clipping and the optimizer step are identical.
* Only rank 0 writes logs, completions and checkpoints; every rank reads a checkpoint on resume.

By default every rank holds the whole model (LoRA keeps 8B models within one GPU);
``fsdp=true`` shards weights, gradients and optimizer state (trafl.run.sharding).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor


class Distributed:
    """Rank, world size and the few collectives the trainer needs (no-ops in one process)."""

    def __init__(self, device: torch.device) -> None:
        """``device``: the run's device type; under a launcher each rank takes its own GPU
        (``LOCAL_RANK``), available as ``self.device``."""
        if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import PartialState  # sets up the process group from the launcher

            PartialState(cpu=device.type == "cpu")
        self.enabled = dist.is_initialized() and dist.get_world_size() > 1
        self.rank = dist.get_rank() if self.enabled else 0
        self.world_size = dist.get_world_size() if self.enabled else 1
        if self.enabled and device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", self.rank)))
            torch.cuda.set_device(device)
        self.device = device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, num_groups: int) -> slice:
        """This rank's groups (whole groups; the count must divide evenly)."""
        if num_groups % self.world_size:
            raise ValueError(
                f"rollout.prompts_per_step={num_groups} must be a multiple of the number of "
                f"processes ({self.world_size}) so that every rank holds whole groups"
            )
        per = num_groups // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate the ranks' tensors along dim 0 (same shape on every rank)."""
        if not self.enabled:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Replace every gradient by its mean over ranks. A parameter with a gradient on some
        rank only gets zeros elsewhere (as DDP does); one with none on any rank keeps None, so
        the optimizer skips it exactly as one process would."""
        if not self.enabled:
            return
        params = [p for p in params if not isinstance(p, DTensor)]  # FSDP reduces its own
        has = torch.tensor(
            [p.grad is not None for p in params], dtype=torch.float32, device=self.device
        )
        dist.all_reduce(has)
        used = [p for p, h in zip(params, has.tolist(), strict=True) if h > 0]
        for p in used:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if not used:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in used])  # one bucket
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for p in used:
            p.grad.copy_(flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average scalar metrics over ranks (same keys everywhere)."""
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist(), strict=True)}

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def gather_objects(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (in rank order), None elsewhere; ``[obj]`` alone."""
        if not self.enabled:
            return [obj]
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def all_gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` on every rank (in rank order); ``[obj]`` alone."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]
