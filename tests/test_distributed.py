"""Two gloo ranks compute the same training as one process (trafl.run.distributed).

The ranks are started with ``torch.multiprocessing.spawn`` and a ``file://`` rendezvous (what
ENVIRONMENT.md lists as really starting two processes on a CPU machine); `accelerate launch` /
`torchrun` set up the same process group from the environment instead."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from trafl.commands.train import TrainConfig, train
from trafl.core.config_files import load_config


def overrides(model: Path, out: Path, objective: str, steps: int, **extra) -> list[str]:
    """A small run. ``optim.eps=1e-3``: with Adam's default 1e-8 a parameter whose gradient is
    near 0 moves by lr * g / |g|, so the last-bit rounding difference between summing the batch
    in one process and averaging two halves turns into a visible weight difference; a larger
    eps keeps the update proportional to the gradient, so the comparison checks the math."""
    args = {
        "model": str(model),
        "objective.name": objective,
        "steps": steps,
        "out_dir": str(out),
        "rollout.prompts_per_step": 4,
        "rollout.group_size": 4,
        "rollout.sampler.gen_length": 12,
        "rollout.sampler.steps": 6,
        "optim.lr": 3e-3,
        "ckpt_every": 0,
        "eval_every": 0,
        "save_completions_every": 0,
        "device": "cpu",
        "seed": 5,
        "optim.eps": 1e-3,
        "inner_updates": 2,
        **extra,
    }
    return [f"{k}={v}" for k, v in args.items()]


SAYS = ("out_dir=", "steps=", "resume=", "fsdp=")


def _rank(rank: int, world: int, rendezvous: str, phases: list[list[str]]) -> None:
    torch.set_num_threads(1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=world)
    try:
        for args in phases:  # which case and phase a failure comes from (one start for all)
            print(f"rank {rank}:", *(a for a in args if a.startswith(SAYS)), file=sys.stderr)
            train(load_config(TrainConfig, None, args))
        # both ranks done before either tears gloo down: a rank that destroyed its group while
        # the other still had its last collective's threads up aborted the other (SIGABRT,
        # "terminate called without an active exception", about 1 run in 8)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # every phase finished: leave without the interpreter's teardown, where a gloo thread still
    # joinable when C++ objects are destroyed aborted a rank after the barrier (SIGABRT,
    # "terminate called without an active exception", once in a fresh-clone CI run)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


# replay: two pool problems drawn for four groups a step, so prompts recur within and across
# steps and across ranks; min_reward 0 stores every row, so rows are replaced from step 2 on
REPLAY = {"rollout.replay_share": 0.5, "rollout.replay_min_reward": 0.0, "task.pool": 2}


# objective, fsdp, extra overrides of each case
CASES = {
    "trafl": ("trafl", False, {}),
    "diffu_grpo": ("diffu_grpo", False, {}),
    "trafl-fsdp": ("trafl", True, {}),
    "trafl-replay": ("trafl", False, REPLAY),
}
MODEL = Path("models/countdown-base")  # the shipped base earns rewards: gradients are real


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """Every case's two-rank run (2 steps with a checkpoint, then resumed to 3; constant lr:
    the same schedule), all in one start of two ranks: each start costs both ranks their
    imports, seconds of the suite per case. So ``-k CASE`` runs them all, and one failing
    phase fails every case (the ranks' stderr names the phase)."""
    root = tmp_path_factory.mktemp("ranks")
    phases = []
    for name, (objective, fsdp, extra) in CASES.items():
        double, sharding = root / name, {"fsdp": "true"} if fsdp else {}
        phases += [
            overrides(MODEL, double, objective, 2, ckpt_every=2, **sharding, **extra),
            overrides(MODEL, double, objective, 3, resume="true", **sharding, **extra),
        ]
    mp.spawn(_rank, args=(2, f"file://{root / 'rendezvous'}", phases), nprocs=2)
    return root


def one_process(root: Path, case: str) -> Path:
    """The case's run in this process, in micro-batches of the 2 groups each rank holds (4
    groups a step), so that it adds the same numbers in the same order as the two ranks until
    their all-reduce; fsdp changes nothing in one process: trafl's run. That the whole batch
    gives the same gradient up to rounding is tests/test_train.py's micro-batch test."""
    objective, _, extra = CASES[case]
    single = root / "single" / ("trafl" if case == "trafl-fsdp" else case)
    if not (single / "model").is_dir():
        args = overrides(MODEL, single, objective, 3, micro_batch_groups=2, **extra)
        train(load_config(TrainConfig, None, args))
    return single


def largest_gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[str, float]:
    worst = max(a, key=lambda k: float((a[k] - b[k]).abs().max()))
    return worst, float((a[worst] - b[worst]).abs().max())


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_equal_one_process_and_resume(two_ranks, case):
    """Plain data parallelism, and with fsdp=true the weights, gradients and Adam moments
    sharded over the two ranks (trafl keeps a sharded frozen reference and an unsharded log Z
    head beside the sharded policy); with replay, every rank holds the one-process buffer."""
    _, fsdp, extra = CASES[case]
    single, double, model = one_process(two_ranks, case), two_ranks / case, MODEL
    a, b = weights(single), weights(double)
    base = load_file(str(model / "model.safetensors"))
    moved = max(float((a[k] - base[k]).abs().max()) for k in a)
    assert moved > 1e-3  # training changed the weights, so equality below means something
    # the same sums as one process but for the all-reduce, which adds (and, sharded,
    # scatters) the two halves' gradients in another order: one rounding an update, 3 updates
    # of weights below 2 in size (the base's largest is 1.49), so a few float32 ulps (2.4e-7
    # each). Bit for bit in plain data parallelism here, one ulp sharded; a wrong reduction (a
    # half's gradient alone, a rank's own replay buffer) is off by a share of the move
    worst, gap = largest_gap(a, b)
    assert gap <= 8 * 2.4e-7, f"{worst}: |2 ranks - 1 process| = {gap:.2e}, moved {moved:.2e}"
    assert (double / "checkpoint-2").is_dir()
    shards = sorted(p.name for p in (double / "checkpoint-2").glob("optimizer.rank*.pt"))
    assert shards == (["optimizer.rank0.pt", "optimizer.rank1.pt"] if fsdp else [])
    if fsdp:  # each rank kept about half of the Adam moments: the state really was sharded
        shard = torch.load(double / "checkpoint-2" / shards[0], weights_only=False)
        held = sum(e["exp_avg"].numel() for e in shard["state"].values())
        assert 0.45 < held / sum(t.numel() for t in base.values()) < 0.55
    rows = (double / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 3  # rank 0 alone logs, and the resumed run continued its log
    assert (single / "metrics.jsonl").read_text().count("\n") == 3
    if extra:  # the same rows replaced, and the same buffer, in both
        logged = [
            [(m["replay_rows"], m["replay_stored"]) for m in map(json.loads, text)]
            for text in (rows, (single / "metrics.jsonl").read_text().splitlines())
        ]
        assert logged[0] == logged[1] and logged[0][-1][0] > 0, logged


def test_groups_must_divide_across_ranks():
    from trafl.run.distributed import Distributed

    d = Distributed(torch.device("cpu"))
    d.world_size, d.rank = 4, 1  # as if launched with 4 processes
    assert d.shard(8) == slice(2, 4)
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        d.shard(6)


def test_fsdp_settings_it_cannot_run_with_are_errors(tmp_path):
    from trafl.run.sharding import check_fsdp, transformer_blocks

    def cfg(*extra):
        return load_config(TrainConfig, None, [*overrides(Path("m"), tmp_path, "trafl", 1), *extra])

    check_fsdp(cfg(), 2)
    with pytest.raises(ValueError, match="several processes"):
        check_fsdp(cfg(), 1)
    with pytest.raises(ValueError, match="with LoRA"):
        check_fsdp(cfg("model.lora.rank=8"), 2)
    with pytest.raises(ValueError, match="plain sampler schedule"):
        check_fsdp(cfg("rollout.sampler.parallel_threshold=0.9"), 2)
    with pytest.raises(ValueError, match="plain sampler schedule"):
        check_fsdp(cfg("rollout.sampler.cache=prefix"), 2)
    from tests.conftest import make_tiny

    tiny = make_tiny(num_layers=3)
    assert transformer_blocks(tiny) == list(tiny.blocks)
