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
  smaller than ``signal`` (preconditioned), the decay cannot cancel the expected step;
- ``drift``: how much the balance gap D(success) - D(failure) (sequence nats of s_theta -
  s_ref, the training monitor's) moves per optimiser step, to first order, if the update is
  AdamW's expected one: -lr <P gbar_i + wd theta, h_j>, with P the preconditioner and h_j the
  gradient of the gap on the rows of another fresh batch (``--gap-batches`` of them; batches
  without both kinds of row are skipped). g and h are independent, so the mean over (i, j) is
  unbiased for the product of their expectations; its standard error adds the spread of the
  means over i and over j (each the mean's own). ``drift_decay`` is the decay's part. At a
  fixed point of the expected update the drift is 0; a clearly positive drift at a plateau
  says the loss still pushes the gap up, and what holds it is not the expected update.

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
    steps: list[torch.Tensor], gaps: list[torch.Tensor], lr: float, decay: torch.Tensor
) -> dict[str, float]:
    """First-order change of the gap per update (module docstring): ``steps`` the
    preconditioned batch gradients P gbar_i, ``gaps`` the gap gradients h_j."""
    if len(steps) < 2 or len(gaps) < 2:
        raise ValueError(f"need 2 or more of each, got {len(steps)} steps, {len(gaps)} gaps")
    products = -lr * torch.stack(
        [torch.stack([s.double() @ h.double() for h in gaps]) for s in steps]
    )
    rows, cols = products.mean(1), products.mean(0)  # (I,), (J,)
    se = math.sqrt(float(rows.var()) / len(rows) + float(cols.var()) / len(cols))
    h = torch.stack(gaps).double().mean(0)
    return {
        "drift": float(products.mean()),
        "drift_se": se,
        "drift_decay": float(-lr * (decay.double() @ h)),
        "gap_batches": len(gaps),
    }


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
    for name, params in sets.items():
        scale, decay = preconditioner(trainer, params)
        adam = [(a * scale, b * scale) for a, b in draws[name]]
        result[name] = signal_noise(draws[name])
        result[f"{name}_adam"] = signal_noise(adam) | {
            "decay": float(decay.double() @ decay.double())
        }
    scale, decay = preconditioner(trainer, sets["policy"])
    own = {id(p) for p in sets["policy"]}
    lrs = {
        g["lr"] for g in trainer.optimizer.param_groups if any(id(p) in own for p in g["params"])
    }
    if len(lrs) != 1:
        raise ValueError(f"the policy's parameter groups have several learning rates: {lrs}")
    (lr,) = lrs
    steps = [(a + b) / 2 * scale for a, b in draws["policy"]]
    result["policy_drift"] = gap_drift(steps, gaps, lr, decay) if len(gaps) > 1 else None
    return result


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: per checkpoint and parameter set, signal +- se, noise, mask share, SNR."""
    lines = [
        "| step | parameters | signal ± se | noise | mask share | snr | decay |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for name in [k for k in r if isinstance(r[k], dict) and "signal" in r[k]]:
            s = r[name]
            decay = f"{s['decay']:.3g}" if "decay" in s else ""
            lines.append(
                f"| {r['step']} | {name} | {s['signal']:.3g} ± {s['signal_se']:.2g} | "
                f"{s['noise']:.3g} | {s['mask_noise'] / s['noise']:.2f} | {s['snr']:.3g} | "
                f"{decay} |"
            )
    lines += [
        "",
        "| step | gap drift per 200 updates, first order (nats) ± se | weight decay's | gap batches |",
        "|---|---|---|---|",
    ]
    for r in results:
        d = r.get("policy_drift")
        if d:
            lines.append(
                f"| {r['step']} | {200 * d['drift']:+.3g} ± {200 * d['drift_se']:.2g} | "
                f"{200 * d['drift_decay']:+.3g} | {d['gap_batches']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder with checkpoint-STEP folders")
    parser.add_argument("--steps", type=int, nargs="+", required=True, help="checkpoints")
    parser.add_argument("--batches", type=int, default=32, help="batches per checkpoint")
    parser.add_argument(
        "--gap-batches", type=int, default=16, help="batches for the gap's gradient"
    )
    parser.add_argument("--out", type=Path, default=None, help="folder (default: the run)")
    args = parser.parse_args(argv)
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
