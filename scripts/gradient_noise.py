"""The training gradient's signal and noise at a run's checkpoints (docs/TARGET.md, issue 12).

    python scripts/gradient_noise.py /tmp/target/long2000/trafl-b4-s0 --steps 200 1000 2000

Why does TraFL at b = 4 stall near half its tilt? If the plateau is a stationary point of the
loss as the run estimates it, the expected gradient there is zero and the fault is in the
objective or its estimate; if the expected gradient is still clearly non-zero, the run is held
back by its optimiser (noise, step size, weight decay), not by where the loss points.

At each checkpoint the run's own Trainer (its config, weights, optimiser state and data order)
draws ``--batches`` independent training batches (fresh rollouts from the checkpoint's policy),
and scores each with two independent mask draws, exactly as a training step would
(``Trainer.backward``; the first batch and draw are the run's own next step); nothing is
updated. Per parameter set (the policy; the objective's own
parameters, TraFL's log Z head) it reports, from the batch gradients g_ij (batch i, draw j):

- ``signal`` ||E g||^2: the mean of <gbar_2k, gbar_2k+1> over disjoint pairs of batches (gbar:
  a batch's two draws averaged). The pairs are independent, so the mean is unbiased and its
  standard error (``signal_se``) is the products' sd / sqrt(pairs);
- ``noise`` tr Cov(g) of one single-draw batch gradient: mean ||g_ij||^2 - signal, and the part
  of it the mask draw adds, ``mask_noise`` = mean ||g_i1 - g_i2||^2 / 2 (the rest comes from the
  rollouts); ``snr`` = signal / noise (one batch's squared signal-to-noise);
- the same three after AdamW's preconditioning by the checkpoint's second moments
  (g / (sqrt(v_hat) + eps): what an update applies, in units of lr), and ``decay``
  ||wd theta||^2 on that scale: decoupled weight decay's pull towards 0. If ``decay`` is much
  smaller than ``signal`` (preconditioned), the decay cannot cancel the expected step.

Writes ``gradient_noise.json`` (and prints a table) in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import torch

from trafl.commands.train import Trainer
from trafl.commands.train_config import TrainConfig
from trafl.core.config_files import load_config
from trafl.run.runtime import make_progress


def signal_noise(draws: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Signal, noise and mask noise from per-batch pairs of single-draw gradients (module
    docstring); at least two batches, an odd last one left out of the signal's pairs."""
    if len(draws) < 2:
        raise ValueError(f"need at least 2 batches, got {len(draws)}")
    means = [(a + b) / 2 for a, b in draws]
    products = torch.stack(
        [means[2 * k].double() @ means[2 * k + 1].double() for k in range(len(means) // 2)]
    )
    signal = float(products.mean())
    pairs = len(products)
    se = float(products.std(unbiased=True)) / math.sqrt(pairs) if pairs > 1 else math.nan
    second = sum(float(g.double() @ g.double()) for pair in draws for g in pair) / (2 * len(draws))
    mask = sum(float((a - b).double().square().sum()) / 2 for a, b in draws) / len(draws)
    noise = second - signal
    return {
        "signal": signal,
        "signal_se": se,
        "noise": noise,
        "mask_noise": mask,
        "snr": signal / noise if noise > 0 else math.nan,
        "pairs": pairs,
    }


def parameter_sets(trainer: Trainer) -> dict[str, list[torch.nn.Parameter]]:
    """The policy's trainable parameters and the objective's own (log Z), in optimiser order."""
    own = {id(p) for p in trainer.objective_params}
    params = [p for g in trainer.optimizer.param_groups for p in g["params"] if p.requires_grad]
    sets = {"policy": [p for p in params if id(p) not in own]}
    if trainer.objective_params:
        sets["objective"] = [p for p in params if id(p) in own]
    return sets


def preconditioner(trainer: Trainer, params: list[torch.nn.Parameter]) -> tuple[torch.Tensor, ...]:
    """Flat 1 / (sqrt(v_hat) + eps) and flat wd * theta for ``params`` (AdamW's update scale),
    in the order of ``params``."""
    per: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for group in trainer.optimizer.param_groups:
        beta2, eps, wd = group["betas"][1], group["eps"], group["weight_decay"]
        for p in group["params"]:
            state = trainer.optimizer.state.get(p, {})
            if "exp_avg_sq" in state:
                v_hat = state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))
                per[id(p)] = ((1 / (v_hat.sqrt() + eps)).flatten(), (wd * p.detach()).flatten())
    if any(id(p) not in per for p in params):
        raise ValueError("the checkpoint holds no optimiser state for a parameter")
    return torch.cat([per[id(p)][0] for p in params]), torch.cat([per[id(p)][1] for p in params])


def batch_gradients(
    trainer: Trainer, sets: dict[str, list[Any]]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """One fresh training batch scored with two mask draws: per set, two flat gradients."""
    g = trainer.cfg.rollout.group_size
    step = trainer.rollouts()
    batch = step.full  # one process: the whole batch
    prepared = trainer.objective.prepare(
        batch.rewards, batch.group, g, lengths=batch.completion_mask.sum(1)
    )
    out: dict[str, list[torch.Tensor]] = {name: [] for name in sets}
    for _ in range(2):  # the same rollouts, two independent mask draws
        draw = trainer.estimator.draw(batch, trainer.mask_gen)
        with torch.no_grad():
            ref = trainer.estimate(trainer.reference, batch, draw) if trainer.reference else None
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.backward(batch, prepared, draw, None, ref)
        for name, params in sets.items():
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            out[name].append(torch.cat([x.detach().flatten() for x in grads]))
    return {name: (a, b) for name, (a, b) in out.items()}


def checkpoint_trainer(run: Path, step: int, scratch: Path) -> Trainer:
    """The run's Trainer (its saved config, on the CPU) at ``run/checkpoint-STEP``; its
    ``out_dir`` is ``scratch``, where nothing is written (no ``train()``)."""
    cfg = load_config(TrainConfig, run / "config.yaml", [f"out_dir={scratch}", "device=cpu"])
    trainer = Trainer(cfg)
    trainer.load_checkpoint(run / f"checkpoint-{step}")
    return trainer


def at_checkpoint(run: Path, step: int, batches: int, progress: Any) -> dict[str, Any]:
    """The statistics of the module docstring at ``run/checkpoint-STEP``."""
    with tempfile.TemporaryDirectory() as scratch:
        trainer = checkpoint_trainer(run, step, Path(scratch))
        sets = parameter_sets(trainer)
        draws: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {name: [] for name in sets}
        task = progress.add_task(f"checkpoint-{step}", total=batches)
        for i in range(batches):
            trainer.step = step + i  # rollout noise is keyed by the step: batch 0 is the run's next
            for name, pair in batch_gradients(trainer, sets).items():
                draws[name].append(pair)
            progress.advance(task)
    result: dict[str, Any] = {"step": step, "batches": batches}
    for name, params in sets.items():
        scale, decay = preconditioner(trainer, params)
        adam = [(a * scale, b * scale) for a, b in draws[name]]
        result[name] = signal_noise(draws[name])
        result[f"{name}_adam"] = signal_noise(adam) | {
            "decay": float(decay.double() @ decay.double())
        }
    return result


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: per checkpoint and parameter set, signal +- se, noise, mask share, SNR."""
    lines = [
        "| step | parameters | signal ± se | noise | mask share | snr | decay |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for name in [k for k in r if isinstance(r[k], dict)]:
            s = r[name]
            decay = f"{s['decay']:.3g}" if "decay" in s else ""
            lines.append(
                f"| {r['step']} | {name} | {s['signal']:.3g} ± {s['signal_se']:.2g} | "
                f"{s['noise']:.3g} | {s['mask_noise'] / s['noise']:.2f} | {s['snr']:.3g} | "
                f"{decay} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder with checkpoint-STEP folders")
    parser.add_argument("--steps", type=int, nargs="+", required=True, help="checkpoints")
    parser.add_argument("--batches", type=int, default=32, help="batches per checkpoint")
    parser.add_argument("--out", type=Path, default=None, help="folder (default: the run)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    results = []
    with make_progress() as progress:
        for step in args.steps:
            results.append(at_checkpoint(args.run, step, args.batches, progress))
    out = args.out or args.run
    out.mkdir(parents=True, exist_ok=True)
    (out / "gradient_noise.json").write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
