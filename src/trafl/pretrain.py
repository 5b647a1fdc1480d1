"""``trafl pretrain``: train a base denoiser on a task's supervised data (LLaDA's SFT loss).

Each step draws fresh training problems, one demonstration each (drawn at random among the
valid solutions, so the base model spreads its mass over many of them), fills the completion
with EOS up to a generation length drawn from ``completion_lengths`` (EOS filling is trained,
as in LLaDA, so the model learns to stop at any length) and minimises the length-normalised
negative ELBO of :func:`trafl.diffusion.sft_loss`.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from trafl.checkpoint import (
    latest_checkpoint,
    restore_policy,
    rng_state,
    save_atomic,
    save_policy,
    set_rng_state,
)
from trafl.config import component, format_config, save_config
from trafl.diffusion import sft_loss
from trafl.models import CharTokenizer, ModelConfig, TinyConfig, TinyDiffusionLM, load_trainable
from trafl.optim import OptimConfig, build_optimizer, decay_groups
from trafl.rollouts import greedy_accuracy
from trafl.runtime import (
    MetricsLog,
    console,
    format_metrics,
    make_progress,
    resolve_device,
    seed_everything,
)
from trafl.sampling import SamplerConfig, left_pad
from trafl.tasks import TASKS, Task


@dataclass
class TinyArch:
    """Shape of a new ``tiny`` model (the vocabulary comes from the tokenizer)."""

    hidden_size: int = 128
    num_layers: int = 6
    num_heads: int = 4
    mlp_hidden: int = 384


@dataclass
class PretrainConfig:
    task: Any = component(TASKS, "countdown")
    arch: TinyArch = field(default_factory=TinyArch)
    # continue from a model (any adapter; model.lora.* trains an adapter) instead of a new tiny one
    init_from: ModelConfig | None = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 6000
    batch_size: int = 128
    completion_lengths: list[int] = field(default_factory=lambda: [16, 24, 32])
    mask_eps: float = 1e-3  # t ~ U(mask_eps, 1)
    seed: int = 0
    out_dir: str = "runs/pretrain"
    log_every: int = 50
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    eval_every: int = 1000
    eval_problems: int = 200
    eval_sampler: SamplerConfig = field(
        default_factory=lambda: SamplerConfig(gen_length=16, steps=16, temperature=0.0)
    )
    resume: bool = False
    device: str = "auto"


def build_task(config: Any) -> Task:
    return TASKS.get(config.name)(config)


def supervised_batch(
    task: Task, tokenizer: Any, batch_size: int, length: int, rng: random.Random
) -> tuple[list[list[int]], torch.Tensor]:
    """Prompts (token lists) and EOS-filled completions (B, L) for one step."""
    problems = task.sample_train(batch_size, rng)
    prompts, completions = [], []
    for problem in problems:
        demo = tokenizer.encode(task.demonstration(problem, rng))
        if len(demo) >= length:
            raise ValueError(
                f"a demonstration of {len(demo)} tokens does not fit completion length {length} "
                "(one EOS is needed); raise completion_lengths"
            )
        prompts.append(tokenizer.encode_prompt(task.prompt(problem)))
        completions.append(demo + [tokenizer.eos_token_id] * (length - len(demo)))
    return prompts, torch.tensor(completions, dtype=torch.long)


def new_model(arch: TinyArch) -> TinyDiffusionLM:
    tokenizer = CharTokenizer()
    return TinyDiffusionLM(TinyConfig(vocab_size=tokenizer.vocab_size, **asdict(arch)), tokenizer)


def pretrain(cfg: PretrainConfig) -> Path:
    """Run pretraining; returns the folder of the final model (``out_dir/model``)."""
    device = resolve_device(cfg.device)
    out = Path(cfg.out_dir)
    seed_everything(cfg.seed)
    task = build_task(cfg.task)
    model_cfg = cfg.init_from or ModelConfig()  # how checkpoints of the model are saved
    model: Any = (
        load_trainable(cfg.init_from, device) if cfg.init_from else new_model(cfg.arch).to(device)
    )
    model.train()
    optimizer, scheduler = build_optimizer(decay_groups(model), cfg.optim, cfg.steps)
    data_rng = random.Random(cfg.seed)
    mask_gen = torch.Generator(device=device).manual_seed(cfg.seed)
    metrics_log = MetricsLog(out)
    start = 0

    ckpt = latest_checkpoint(out) if cfg.resume else None
    if ckpt is not None:
        restore_policy(model, ckpt / "model", model_cfg)
        state = torch.load(ckpt / "state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        data_rng.setstate(state["data_rng"])
        mask_gen.set_state(state["mask_gen"])
        set_rng_state(state["rng"])
        start = state["step"]
        metrics_log.truncate_after(start)
        console.print(f"resumed from {ckpt} at step {start}")
    elif cfg.resume:
        console.print(f"[yellow]resume requested but {out} has no checkpoint; starting fresh")
        metrics_log.truncate_after(0)  # rows of a run killed before its first checkpoint
    save_config(cfg, out / "config.yaml")
    console.print(format_config(cfg))
    console.print(f"model: {model.num_parameters():,} parameters on {device}")

    def write_checkpoint(step: int) -> None:
        def write(folder: Path) -> None:
            save_policy(model, folder / "model", model_cfg)
            torch.save({
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "data_rng": data_rng.getstate(), "mask_gen": mask_gen.get_state(),
                "rng": rng_state(), "step": step,
            }, folder / "state.pt")  # fmt: skip

        save_atomic(out, f"checkpoint-{step}", write, cfg.keep_checkpoints)

    with make_progress() as progress:
        bar = progress.add_task("pretrain", total=cfg.steps, completed=start, info="")
        for step in range(start, cfg.steps):
            length = data_rng.choice(cfg.completion_lengths)
            prompts, completions = supervised_batch(
                task, model.tokenizer, cfg.batch_size, length, data_rng
            )
            prompt_ids, prompt_mask = left_pad(prompts, model.pad_token_id, device)
            loss = sft_loss(model, prompt_ids, prompt_mask, completions.to(device),
                            cfg.mask_eps, mask_gen)  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(
                model.parameters(), cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
            )
            optimizer.step()
            scheduler.step()
            done = step + 1
            metrics: dict[str, Any] = {}
            if done % cfg.log_every == 0 or done == cfg.steps:
                metrics = {"loss": loss.item(), "grad_norm": float(grad_norm),
                           "lr": scheduler.get_last_lr()[0]}  # fmt: skip
            if cfg.eval_every > 0 and (done % cfg.eval_every == 0 or done == cfg.steps):
                metrics["greedy_accuracy"] = greedy_accuracy(
                    model, task, cfg.eval_problems, cfg.eval_sampler
                )
            if metrics:
                metrics_log.log(done, metrics)
                progress.update(bar, info=format_metrics(metrics))
            if cfg.ckpt_every > 0 and done % cfg.ckpt_every == 0 and done < cfg.steps:
                write_checkpoint(done)
            progress.advance(bar)
    final = out / "model"
    save_atomic(out, "model", lambda folder: save_policy(model, folder, model_cfg),
                update_latest=False)  # fmt: skip
    metrics_log.close()
    console.print(f"saved {final}")
    return final
