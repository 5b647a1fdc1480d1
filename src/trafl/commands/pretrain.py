"""``trafl pretrain``: train a base denoiser on a task's supervised data (LLaDA's SFT loss).

Each step draws fresh training problems, one demonstration each (drawn at random among the
valid solutions, so the base model spreads its mass over many of them), fills the completion
with EOS up to a generation length drawn from ``completion_lengths`` (EOS filling is trained,
as in LLaDA, so the model learns to stop at any length) and minimises the length-normalised
negative ELBO of :func:`trafl.likelihood.diffusion.sft_loss`.

With ``data=FILE`` the completions come from a file of scored completions instead (``trafl
sample output=FILE``), each step's rows drawn under ``data_tilt``
(:class:`trafl.tasks.scored_samples.ScoredSamples`): plain SFT on the file at 0; on samples of
the base model at ``data_tilt = b``, the direct fit of the target TraFL trains towards
(docs/TARGET.md section 12). ``init_from`` names the model to continue.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from trafl.core.config import check_at_least, check_lengths, component
from trafl.core.config_files import format_config
from trafl.core.errors import RunStopped
from trafl.core.files import write_text_atomic
from trafl.likelihood.diffusion import sft_loss
from trafl.models import CharTokenizer, ModelConfig, TinyConfig, TinyDiffusionLM, load_trainable
from trafl.models.saving import save_policy
from trafl.run.checkpoint import (
    disk_full_is_one_line,
    restore_policy,
    resume_run,
    save_atomic,
)
from trafl.run.folder import RunFolder
from trafl.run.optim import OptimConfig, build_optimizer, decay_groups
from trafl.run.rollouts import greedy_accuracy
from trafl.run.runtime import (
    MetricsLog,
    console,
    format_metrics,
    make_progress,
    resolve_device,
    seed_everything,
)
from trafl.run.signals import StopRequests
from trafl.run.state import RunState
from trafl.run.trackers import LogConfig
from trafl.sampling import SamplerConfig, left_pad
from trafl.tasks import TASKS, Task, TaskConfig, build_task
from trafl.tasks.scored_samples import ScoredSamples

# settings a resume may change freely: how long to run and how often to log, check and save
RESUME_FREE = ("resume", "overwrite", "allow_changes", "out_dir", "steps", "device", "log_every",
               "ckpt_every", "keep_checkpoints", "eval_every", "eval_problems", "log")  # fmt: skip


@dataclass
class TinyArch:
    """Shape of a new ``tiny`` model (the vocabulary comes from the tokenizer)."""

    hidden_size: int = 128
    num_layers: int = 6
    num_heads: int = 4
    mlp_hidden: int = 384


@dataclass
class PretrainConfig:
    task: TaskConfig = component(TASKS, "countdown")
    arch: TinyArch = field(default_factory=TinyArch)
    # continue from a model (any adapter; model.lora.* trains an adapter) instead of a new tiny one
    init_from: ModelConfig | None = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 6000
    batch_size: int = 128
    completion_lengths: list[int] = field(default_factory=lambda: [16, 24, 32])
    mask_eps: float = 1e-3  # t ~ U(mask_eps, 1)
    # a file of scored completions (trafl sample output=FILE) to train on instead of the task's
    # demonstrations: a prompt uniformly, then a completion with probability ~ exp(data_tilt * r)
    data: str | None = None
    data_tilt: float = 0.0
    seed: int = 0
    out_dir: str = "runs/pretrain"
    log_every: int = 50
    log: LogConfig = field(default_factory=LogConfig)  # trackers, as in trafl train
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    eval_every: int = 1000
    eval_problems: int = 200
    # the periodic greedy check's sampler: its own, as pretraining has no rollout sampler to
    # share (trafl train checks with rollout.sampler at temperature 0); decoded at its gen_length
    eval_sampler: SamplerConfig = field(
        default_factory=lambda: SamplerConfig(gen_length=16, steps=16, temperature=0.0)
    )
    # as in trafl train: resume=true continues from the newest checkpoint that verifies; a fresh
    # run into a folder holding a run needs overwrite=true; allow_changes: settings a resume
    # may change beside RESUME_FREE
    resume: bool = False
    overwrite: bool = False
    allow_changes: list[str] = field(default_factory=list)
    device: str = "auto"

    def __post_init__(self) -> None:
        check_at_least(
            self,
            {
                "steps": 1,
                "batch_size": 1,
                "log_every": 1,
                "ckpt_every": 0,
                "eval_every": 0,
                "eval_problems": 1,
            },
        )
        check_lengths("completion_lengths", self.completion_lengths)
        if not 0.0 < self.mask_eps < 1.0:
            raise ValueError(f"mask_eps must be in (0, 1), got {self.mask_eps}")
        if self.data_tilt and not self.data:
            raise ValueError(
                f"data_tilt={self.data_tilt:g} weights a file's completions; set data=FILE"
            )


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


def file_batch(
    data: ScoredSamples, tokenizer: Any, batch_size: int, length: int, rng: random.Random
) -> tuple[list[list[int]], torch.Tensor]:
    """As :func:`supervised_batch`, the rows drawn from a file of scored completions: each cut at
    its first EOS and EOS-filled from there (what a sampler revealed after its first EOS is not
    part of the completion; the base was trained on EOS-filled rows)."""
    prompts, completions = [], []
    eos = tokenizer.eos_token_id
    for prompt, drawn in data.draw(batch_size, rng):
        completion = tokenizer.encode(drawn) if isinstance(drawn, str) else drawn
        completion = completion[: completion.index(eos)] if eos in completion else completion
        if len(completion) > length:
            raise ValueError(
                f"a completion of {len(completion)} tokens in data does not fit completion "
                f"length {length}; raise completion_lengths"
            )
        prompts.append(tokenizer.encode_prompt(prompt))
        completions.append(completion + [eos] * (length - len(completion)))
    return prompts, torch.tensor(completions, dtype=torch.long)


def new_model(arch: TinyArch) -> TinyDiffusionLM:
    tokenizer = CharTokenizer()
    return TinyDiffusionLM(TinyConfig(vocab_size=tokenizer.vocab_size, **asdict(arch)), tokenizer)


class Pretrainer:
    """Holds a pretraining run's state; :meth:`train` is the loop. The run folder is claimed,
    resumed, checkpointed and stopped on signals exactly as RL training does (trafl.commands.train)."""

    def __init__(self, cfg: PretrainConfig) -> None:
        cfg.log.check_installed()  # a tracker asked for but missing: before any model loads
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.out = Path(cfg.out_dir)
        seed_everything(cfg.seed)
        self.task = build_task(cfg.task)
        self.data = ScoredSamples.load(cfg.data, cfg.data_tilt) if cfg.data else None
        self.model_cfg = cfg.init_from or ModelConfig()  # how checkpoints of the model are saved
        self.model: Any = (
            load_trainable(cfg.init_from, self.device)
            if cfg.init_from
            else new_model(cfg.arch).to(self.device)
        )
        self.model.train()
        params = decay_groups(self.model)
        self.optimizer, self.scheduler = build_optimizer(params, cfg.optim, cfg.steps)
        self.data_rng = random.Random(cfg.seed)
        self.mask_gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.state = RunState(self.optimizer, self.scheduler, self.data_rng, self.mask_gen)
        self.folder = RunFolder(self.out)
        self.metrics_log: MetricsLog | None = None

    @property
    def step(self) -> int:
        return self.state.step

    @step.setter
    def step(self, value: int) -> None:
        self.state.step = value

    def train(self) -> Path:
        """Claim the folder (lock; refuse to mix runs), resume if asked, run; the final model."""
        self.folder.claim(self.cfg.resume, self.cfg.overwrite)
        try:
            with disk_full_is_one_line(self.out):
                return self.run_claimed()
        finally:
            if self.metrics_log is not None:
                self.metrics_log.close()
            self.folder.release()

    def run_claimed(self) -> Path:
        """Open the metrics log, resume if asked, print the config, loop, save the model."""
        self.metrics_log = MetricsLog(self.out, self.cfg.log, self.cfg)
        if self.cfg.resume:
            self.resume()
        write_text_atomic(self.out / "config.yaml", format_config(self.cfg))
        console.print(format_config(self.cfg))  # the console never reads markup (user text)
        console.print(f"model: {self.model.num_parameters():,} parameters on {self.device}")
        with StopRequests() as stop:  # stops the loop between steps; the final save waits
            self.loop(stop)
            final = save_atomic(self.out, "model", self.save_model, update_latest=False)
        console.print(f"saved {final}")
        return final

    def loop(self, stop: StopRequests) -> None:
        cfg = self.cfg
        with make_progress() as progress:
            bar = progress.add_task("pretrain", total=cfg.steps, completed=self.step, info="")
            while self.step < cfg.steps:
                metrics = self.train_step()
                self.step += 1
                if metrics:
                    self.metrics_log.log(self.step, metrics)
                    progress.update(bar, info=format_metrics(metrics))
                due = cfg.ckpt_every > 0 and self.step % cfg.ckpt_every == 0
                if due and self.step < cfg.steps:
                    self.save_checkpoint()
                progress.advance(bar)
                if stop.signum is not None and self.step < cfg.steps:
                    if not due:
                        self.save_checkpoint()
                    raise RunStopped(
                        f"stopped by {stop.name} after step {self.step}; saved "
                        f"{self.out / f'checkpoint-{self.step}'}; continue with "
                        "resume=true",
                        stop.exit_code,
                    )

    def train_step(self) -> dict[str, Any]:
        """One SFT update; the metrics to log at this step (none between ``log_every``)."""
        cfg, model = self.cfg, self.model
        length = self.data_rng.choice(cfg.completion_lengths)
        batch = file_batch if self.data is not None else supervised_batch
        prompts, completions = batch(
            self.data or self.task, model.tokenizer, cfg.batch_size, length, self.data_rng
        )
        prompt_ids, prompt_mask = left_pad(prompts, model.pad_token_id, self.device)
        loss = sft_loss(
            model, prompt_ids, prompt_mask, completions.to(self.device), cfg.mask_eps, self.mask_gen
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        self.optimizer.step()
        self.scheduler.step()
        done = self.step + 1
        metrics: dict[str, Any] = {}
        if done % cfg.log_every == 0 or done == cfg.steps:
            metrics = {
                "loss": loss.item(),
                "grad_norm": float(grad_norm),
                "lr": self.optimizer.param_groups[0]["lr"],  # the next update's
            }
        if cfg.eval_every > 0 and (done % cfg.eval_every == 0 or done == cfg.steps):
            metrics["greedy_accuracy"] = greedy_accuracy(
                model, self.task, cfg.eval_problems, cfg.eval_sampler.greedy()
            )
        return metrics

    def save_model(self, folder: Path) -> None:
        save_policy(self.model, folder, self.model_cfg)

    def save_checkpoint(self) -> None:
        def write(folder: Path) -> None:
            self.save_model(folder / "model")
            torch.save(self.state.state_dict(), folder / "state.pt")

        save_atomic(self.out, f"checkpoint-{self.step}", write, self.cfg.keep_checkpoints)

    def resume(self) -> None:
        resume_run(self.out, self.cfg, RESUME_FREE, self.load_checkpoint, self.metrics_log)

    def load_checkpoint(self, ckpt: Path) -> None:
        restore_policy(self.model, ckpt / "model", self.model_cfg)
        # on the CPU: RNG states must stay CPU ByteTensors; the optimizer moves its own state
        state = torch.load(ckpt / "state.pt", weights_only=False, map_location="cpu")
        self.state.load_state_dict(state)


def pretrain(cfg: PretrainConfig) -> Path:
    """Run pretraining; returns the folder of the final model (``out_dir/model``)."""
    return Pretrainer(cfg).train()
