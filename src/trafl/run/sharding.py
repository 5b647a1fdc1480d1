"""Sharded weights over the data-parallel ranks (``fsdp=true``): FSDP2's ``fully_shard``.

With data parallelism alone (trafl.run.distributed) every rank holds the whole model, its
gradients and its Adam moments. ``fsdp=true`` shards all three over the ranks, as ZeRO-3 does:
each transformer block (the elements of the model's longest ``nn.ModuleList``) and then the
root are wrapped with ``torch.distributed.fsdp.fully_shard``; a block's weights are gathered
for its forward and backward and freed after, and gradients are reduce-scattered (averaged
over ranks, as DDP's all-reduce does). Everything else in the trainer is unchanged: the same
rollouts, batch statistics and masks on every rank, so W sharded ranks still compute the update
one process would (tested on two gloo ranks, resume included).

What it needs, and checks: several processes; a full-weight policy (LoRA already keeps 8B
models on one GPU, and peft + fully_shard is not wired yet); the plain sampler schedule (every
rank must call the model the same number of times, which confidence-threshold decoding does not
guarantee, and the KV-cache path bypasses the hooks that gather the weights).

Checkpoints: the model is gathered to rank 0 and saved as an ordinary model folder (loadable
without any process group); each rank's optimizer shard is gathered to rank 0 and written as
``optimizer.rank{r}.pt`` (resume needs the same number of ranks). Fine at the sizes trafl's CI
runs; for 8B full-weight runs, torch.distributed.checkpoint would write shards in parallel.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.tensor import DTensor


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated layers: the elements of the longest ``nn.ModuleList`` in ``model``."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    return list(max(lists, key=len)) if lists else []


def shard_model(model: nn.Module, device: torch.device, world_size: int) -> None:
    """Shard ``model`` in place over ``world_size`` ranks: every block, then the root."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world_size,))
    for block in transformer_blocks(model):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def check_fsdp(cfg: Any, world_size: int) -> None:
    """ValueErrors for the settings ``fsdp=true`` cannot run with (see the module doc)."""
    if world_size < 2:
        raise ValueError(
            "fsdp=true shards the weights over several processes; launch with torchrun or "
            "accelerate (in one process leave fsdp=false)"
        )
    if cfg.model.lora.enabled or cfg.model.load_in_4bit:
        raise ValueError(
            "fsdp=true shards full-weight training; with LoRA (or 4-bit weights) use plain data "
            "parallelism (fsdp=false): the base weights are frozen and fit on one device"
        )
    sampler = cfg.rollout.sampler
    if sampler.cache != "none" or sampler.parallel_threshold is not None:
        raise ValueError(
            "fsdp=true needs the plain sampler schedule (rollout.sampler.cache=none, "
            "rollout.sampler.parallel_threshold=null): every rank must call the model equally often"
        )


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights on rank 0's CPU (empty elsewhere). Collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def load_full_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load whole weights (every rank holds ``state``) into a sharded model. Collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` over a mix of sharded (DTensor) and ordinary
    parameters (the log Z head is not sharded): the norm of all gradients together."""
    with_grad = [p for p in params if p.grad is not None]
    sharded = [p for p in with_grad if isinstance(p.grad, DTensor)]
    plain = [p for p in with_grad if not isinstance(p.grad, DTensor)]
    squares = torch.zeros((), dtype=torch.float32)
    for group in (sharded, plain):
        if group:
            norm = torch.nn.utils.clip_grad_norm_(group, float("inf"))  # the norm, no scaling
            norm = norm.full_tensor() if isinstance(norm, DTensor) else norm
            squares = squares + norm.detach().float().cpu() ** 2
    total = squares.sqrt()
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    if bool(torch.isfinite(total)) and float(coef) < 1.0:
        for p in with_grad:
            p.grad.mul_(coef.to(p.grad.device))
    return total


def local_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """This rank's optimizer state with its shards as plain tensors (picklable)."""
    state = optimizer.state_dict()
    local = {
        index: {k: v.to_local() if isinstance(v, DTensor) else v for k, v in entry.items()}
        for index, entry in state["state"].items()
    }
    return {"state": local, "param_groups": state["param_groups"]}


def load_local_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Inverse of :func:`local_optimizer_state` on the same sharding (same number of ranks)."""
    optimizer.load_state_dict(state)
    for group in optimizer.param_groups:
        for p in group["params"]:
            if not isinstance(p, DTensor):
                continue
            entry = optimizer.state.get(p, {})
            for key, value in entry.items():
                if isinstance(value, torch.Tensor) and not isinstance(value, DTensor):
                    if value.shape == p.to_local().shape and value.dim() > 0:
                        entry[key] = DTensor.from_local(
                            value,
                            p.device_mesh,
                            p.placements,
                            run_check=False,
                            shape=p.shape,
                            stride=p.stride(),
                        )
