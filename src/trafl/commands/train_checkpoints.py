"""Checkpoints of a training run (:class:`CheckpointSteps`, mixed into
:class:`trafl.commands.train.Trainer`): the final model, a checkpoint with everything an exact
resume needs (weights, optimiser, schedule, RNGs, counters; sharded optimiser state per rank),
and the resume itself."""

from __future__ import annotations

from pathlib import Path

import torch

from trafl.commands.train_config import RESUME_FREE
from trafl.models.saving import save_policy
from trafl.run.checkpoint import restore_policy, resume_run, save_atomic
from trafl.run.runtime import console
from trafl.run.sharding import full_state_dict, load_local_optimizer_state, local_optimizer_state


class CheckpointSteps:
    """The Trainer's saving and resuming; reads its ``cfg``, ``out``, ``policy``, ``optimizer``,
    ``state``, ``dist``, ``bad_updates`` and ``metrics_log``."""

    def save_final(self) -> Path:
        final = self.out / "model"
        weights = self.gathered_weights()  # collective when sharded
        if self.dist.is_main:
            final = save_atomic(
                self.out, "model", lambda f: self.save_model(f, weights), update_latest=False
            )
            console.print(f"saved {final}", markup=False)
        self.dist.barrier()
        return final

    def gathered_weights(self) -> dict[str, torch.Tensor] | None:
        """Sharded: the whole weights on rank 0 (collective); else None (use the live model)."""
        return full_state_dict(self.policy) if self.cfg.fsdp else None

    def save_model(self, folder: Path, weights: dict[str, torch.Tensor] | None = None) -> None:
        """The policy's weights: only the adapter under LoRA (trafl export merges it)."""
        save_policy(self.policy, folder, self.cfg.model, state_dict=weights)

    def save_checkpoint(self) -> None:
        if (
            self.bad_updates.in_a_row > 0
        ):  # the same on every rank: loss and weights checks are shared
            console.print(
                f"step {self.step}: no checkpoint during a run of bad updates",
                style="yellow",
                markup=False,
            )
            return
        weights = self.gathered_weights()  # collective when sharded, like the optimizer shards
        shards = (
            self.dist.gather_objects(local_optimizer_state(self.optimizer))
            if self.cfg.fsdp
            else None
        )
        if not self.dist.is_main:  # rank 0 writes; the others wait until it is complete
            self.dist.barrier()
            return

        def write(folder: Path) -> None:
            self.save_model(folder / "model", weights)
            for rank, shard in enumerate(shards or []):
                torch.save(shard, folder / f"optimizer.rank{rank}.pt")
            torch.save(self.state.state_dict(with_optimizer=not shards), folder / "state.pt")

        save_atomic(self.out, f"checkpoint-{self.step}", write, self.cfg.keep_checkpoints)
        self.dist.barrier()

    def try_resume(self) -> None:
        """Continue from the newest checkpoint of ``out_dir`` that verifies and loads, with the
        settings the run was started with (``allow_changes`` names exceptions)."""
        resume_run(self.out, self.cfg, RESUME_FREE, self.load_checkpoint, self.metrics_log)

    def load_checkpoint(self, ckpt: Path) -> None:
        """Every piece of the run's state from ``ckpt`` (raises if any piece cannot load)."""
        restore_policy(self.policy, ckpt / "model", self.cfg.model, sharded=self.cfg.fsdp)
        # on the CPU: RNG states must stay CPU ByteTensors; the optimizer moves its own state
        state = torch.load(ckpt / "state.pt", weights_only=False, map_location="cpu")
        if self.cfg.fsdp:
            shard_file = ckpt / f"optimizer.rank{self.dist.rank}.pt"
            if state["optimizer"] is not None or not shard_file.is_file():
                raise ValueError(
                    f"{ckpt} was not written by a sharded run with {self.dist.world_size} ranks; "
                    "resume it with the same fsdp setting and number of processes"
                )
            shard = torch.load(shard_file, weights_only=False, map_location=self.device)
            load_local_optimizer_state(self.optimizer, shard)
        elif state["optimizer"] is None:
            raise ValueError(f"{ckpt} holds sharded optimizer state; resume it with fsdp=true")
        self.state.load_state_dict(state, with_optimizer=not self.cfg.fsdp)
