"""The training gradient's signal and noise at a run's checkpoints (docs/TARGET.md, issue 12).

    python scripts/gradient_noise.py runs/long2000/trafl-b4-s0 --steps 2000 200 1000
    python scripts/gradient_noise.py - --table results/target/gradient/long2000-s0.json

Why does TraFL at b = 4 stall near half its tilt? If the plateau is a stationary point of the
loss as the run estimates it, the expected update there does not move the balance gap and the
fault is in the objective, its estimate or the model; if the expected update still widens the
gap clearly, the run is held back by something else (the gradient's noise, mostly the mask
draws', acting through the loss's curvature).

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
- ``drift``: how much the balance gap D(success) - D(failure) (sequence nats of s_theta -
  s_ref, the training monitor's) moves per update, to first order, under AdamW's long-run
  step: x_i = -lr gbar_i / (sqrt(s) + eps), with s the mean squared gradient per coordinate
  (Adam's second moment once it has settled), taken from the other half of the batches so
  that it does not depend on the gradient it divides; drift = mean over (i, j) of <x_i, h_j>,
  h_j the gradient of the gap on the rows of another fresh batch (``--gap-batches``; batches
  without both kinds of row are skipped). x and h are independent, so the mean is unbiased
  for the product of their expectations; its standard error adds the spread of the means
  over i and over j. ``drift_decay``: the same for the decoupled decay -lr wd theta;
  ``sgd``: mean <-gbar_i, h_j> (does the loss's own gradient widen the gap?). A clearly
  positive drift at a plateau says the expected update still widens the gap, and what holds
  it back is not where the loss points (the noise, through the loss's curvature, or the
  momentum's lag); a drift near 0 there, a fixed point of the expected update short of b.
  Momentum averages the gradients, so the long-run step is the mean of the x_i.

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
from trafl.core.files import write_text_atomic
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


def update_settings(trainer: Trainer, params: list[torch.nn.Parameter]) -> tuple[float, float]:
    """(lr, eps) of the optimiser groups holding ``params`` (one of each)."""
    own = {id(p) for p in params}
    groups = [g for g in trainer.optimizer.param_groups if any(id(p) in own for p in g["params"])]
    settings = {(g["lr"], g["eps"]) for g in groups}
    if len(settings) != 1:
        raise ValueError(f"the parameters' groups have several (lr, eps): {settings}")
    return settings.pop()


def decay_step(trainer: Trainer, params: list[torch.nn.Parameter]) -> torch.Tensor:
    """Flat -lr wd theta over ``params``: AdamW's decoupled decay in one update."""
    rate = {
        id(p): g["lr"] * g["weight_decay"]
        for g in trainer.optimizer.param_groups
        for p in g["params"]
    }
    return torch.cat([(-rate[id(p)] * p.detach().double()).flatten() for p in params])


def cross_fitted_steps(
    draws: list[tuple[torch.Tensor, torch.Tensor]], lr: float, eps: float
) -> list[torch.Tensor]:
    """x_i = -lr gbar_i / (sqrt(s) + eps) for each batch i, s the mean squared single-draw
    gradient over the other half of the batches (first half <-> second half)."""
    if len(draws) < 4:
        raise ValueError(f"need at least 4 batches, got {len(draws)}")
    half = len(draws) // 2
    halves = [range(half), range(half, len(draws))]
    steps: list[torch.Tensor] = [torch.empty(0)] * len(draws)
    for mine, other in (halves, halves[::-1]):
        s = sum(a.double().square() + b.double().square() for a, b in (draws[k] for k in other))
        scale = 1 / ((s / (2 * len(other))).sqrt() + eps)
        for i in mine:
            a, b = draws[i]
            steps[i] = -lr * (a.double() + b.double()) / 2 * scale
    return steps


def batch_gradients(
    trainer: Trainer, sets: dict[str, list[Any]]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """One fresh training batch scored with two mask draws: per set, two flat gradients."""
    step = trainer.rollouts()
    inputs = trainer.update_inputs(step, draws=2)  # the same rollouts, two mask draws
    out: dict[str, list[torch.Tensor]] = {name: [] for name in sets}
    for k in range(2):
        trainer.gradients(step, inputs, k)
        for name, params in sets.items():
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            out[name].append(torch.cat([x.detach().flatten() for x in grads]))
    return {name: (a, b) for name, (a, b) in out.items()}


def gap_gradient(trainer: Trainer, params: list[Any]) -> torch.Tensor | None:
    """The gradient of the gap D(success) - D(failure) on one fresh batch, in sequence nats
    (s_ref does not depend on theta); None when the batch lacks one kind of row."""
    batch = trainer.rollouts().full
    success = batch.rewards > 0
    if bool(success.all()) or not bool(success.any()):
        return None
    draw = trainer.estimator.draw(batch, trainer.mask_gen)
    trainer.optimizer.zero_grad(set_to_none=True)
    estimate = trainer.estimator.estimate(trainer.policy, batch, draw)
    nats = estimate.seq.float()  # (N,) in the units of s
    if getattr(trainer.objective.config, "score_units", None) == "per_token":
        n = estimate.length if estimate.length is not None else batch.gen_length
        nats = nats * n  # (N,) sequence nats, as the balance monitor counts them
    (nats[success].mean() - nats[~success].mean()).backward()
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    return torch.cat([x.detach().flatten() for x in grads])


def gap_drift(
    steps: list[torch.Tensor], gaps: list[torch.Tensor], decay: torch.Tensor | None = None
) -> dict[str, float]:
    """Mean of <x_i, h_j> over (i, j) with its two-way standard error (module docstring), and
    the decay's <decay, mean h>."""
    if len(steps) < 2 or len(gaps) < 2:
        raise ValueError(f"need 2 or more of each, got {len(steps)} steps, {len(gaps)} gaps")
    products = torch.stack([torch.stack([x.double() @ h.double() for h in gaps]) for x in steps])
    rows, cols = products.mean(1), products.mean(0)  # (I,), (J,)
    se = math.sqrt(float(rows.var()) / len(rows) + float(cols.var()) / len(cols))
    out = {"drift": float(products.mean()), "drift_se": se, "gap_batches": len(gaps)}
    if decay is not None:
        out["drift_decay"] = float(decay.double() @ torch.stack(gaps).double().mean(0))
    return out


def checkpoint_trainer(run: Path, step: int, scratch: Path) -> Trainer:
    """The run's Trainer (its saved config, on the CPU) at ``run/checkpoint-STEP``; its
    ``out_dir`` is ``scratch``, where nothing is written (no ``train()``)."""
    cfg = load_config(TrainConfig, run / "config.yaml", [f"out_dir={scratch}", "device=cpu"])
    trainer = Trainer(cfg)
    trainer.load_checkpoint(run / f"checkpoint-{step}")
    return trainer


def at_checkpoint(
    run: Path, step: int, batches: int, gap_batches: int, progress: Any
) -> dict[str, Any]:
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
        gaps = []
        for i in range(gap_batches):  # after the gradients' batches: other prompts, other noise
            trainer.step = step + batches + i
            gaps.append(gap_gradient(trainer, sets["policy"]))
        gaps = [h for h in gaps if h is not None]
    result: dict[str, Any] = {"step": step, "batches": batches}
    for name in sets:
        result[name] = signal_noise(draws[name])
    if len(gaps) > 1 and batches >= 4:  # cross-fitting needs two halves of two
        policy = draws["policy"]
        lr, eps = update_settings(trainer, sets["policy"])
        adam = cross_fitted_steps(policy, lr, eps)
        result["drift_adam"] = gap_drift(adam, gaps, decay_step(trainer, sets["policy"]))
        result["drift_sgd"] = gap_drift([-(a.double() + b.double()) / 2 for a, b in policy], gaps)
    return result


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: per checkpoint and parameter set, signal +- se, noise, mask share, SNR; then
    the gap's drift."""
    lines = [
        "| step | parameters | signal ± se | noise | mask share | snr |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for name in [k for k in r if isinstance(r[k], dict) and "signal" in r[k]]:
            s = r[name]
            lines.append(
                f"| {r['step']} | {name} | {s['signal']:.3g} ± {s['signal_se']:.2g} | "
                f"{s['noise']:.3g} | {s['mask_noise'] / s['noise']:.2f} | {s['snr']:.3g} |"
            )
    lines += [
        "",
        "| step | gap drift per 200 updates, AdamW, first order (nats) ± se | weight decay's "
        "| <-E g, grad gap> ± se | gap batches |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        if "drift_adam" in r:
            d, g = r["drift_adam"], r["drift_sgd"]
            lines.append(
                f"| {r['step']} | {200 * d['drift']:+.3g} ± {200 * d['drift_se']:.2g} | "
                f"{200 * d['drift_decay']:+.3g} | {g['drift']:+.3g} ± {g['drift_se']:.2g} | "
                f"{d['gap_batches']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder with checkpoint-STEP folders")
    parser.add_argument("--steps", type=int, nargs="+", help="checkpoints")
    parser.add_argument(
        "--table", type=Path, help="only print the tables of this gradient_noise.json"
    )
    parser.add_argument("--batches", type=int, default=32, help="batches per checkpoint")
    parser.add_argument(
        "--gap-batches", type=int, default=16, help="batches for the gap's gradient"
    )
    parser.add_argument("--out", type=Path, default=None, help="folder (default: the run)")
    args = parser.parse_args(argv)
    if args.table:
        print(table(sorted(json.loads(args.table.read_text()), key=lambda r: r["step"])))
        return
    if not args.steps:
        parser.error("--steps is required unless --table is given")
    torch.manual_seed(0)
    out = args.out or args.run
    out.mkdir(parents=True, exist_ok=True)
    results = []
    with make_progress() as progress:
        for step in args.steps:  # written after each checkpoint: a stopped run keeps the done
            results.append(at_checkpoint(args.run, step, args.batches, args.gap_batches, progress))
            write_text_atomic(out / "gradient_noise.json", json.dumps(results, indent=1) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
