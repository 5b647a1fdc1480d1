"""The Python API: ``import trafl`` and drive models, sampling, training and evaluation from a
notebook with objects you already hold.

    import trafl
    model = trafl.load_model("models/countdown-base")
    texts = trafl.generate(model, ["Using 3 4 5 make 17."], gen_length=16, temperature=0.0)
    result = trafl.train("configs/train_trafl.yaml", steps=20, out_dir="runs/nb",
                         callbacks=[lambda step, m: print(step, m["reward"])])
    result.history[-1]["reward"], result.policy        # metrics of every step, the live policy
    report = trafl.evaluate(model="runs/nb", num_samples=16)   # eval.json as a dict

Every function takes the same settings as its command: a YAML recipe, ``key=value`` strings,
or keyword arguments (dotted keys as ``{"rollout.group_size": 4}``), layered as on the command
line (defaults < recipe < overrides), with the same errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trafl.commands.eval import EvalConfig
from trafl.commands.eval import evaluate as run_evaluate
from trafl.commands.train import Trainer
from trafl.commands.train_config import TrainConfig
from trafl.core.config_files import load_config
from trafl.models import ModelConfig
from trafl.models import load_model as load_model_spec
from trafl.run.runtime import resolve_device
from trafl.sampling import SamplerConfig
from trafl.sampling import generate as sample_prompts

Settings = str | Path | None


def _config(cls: type, recipe: Settings, overrides: Sequence[str], fields: dict[str, Any]) -> Any:
    """``cls`` from a recipe, ``key=value`` strings and keyword fields (the last win)."""
    strings = list(overrides) + [f"{key}={_text(value)}" for key, value in fields.items()]
    return load_config(cls, recipe, strings)


def _text(value: Any) -> str:
    """A Python value as the command line writes it (lists as [a,b], booleans lower-case)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return str(value)


def load_model(spec: str | Path | ModelConfig, device: str = "auto") -> Any:
    """A trafl model (model folder, run folder, LoRA adapter or hub id) on ``device``, in eval
    mode."""
    model = load_model_spec(spec)
    return model.to(resolve_device(device)).eval()


def generate(
    model: Any,
    prompts: str | Sequence[str],
    sampler: SamplerConfig | None = None,
    seed: int = 0,
    **sampler_fields: Any,
) -> list[str]:
    """One completion per prompt (cut at EOS), sampled with ``sampler`` or with
    ``SamplerConfig(**sampler_fields)`` (``gen_length``, ``steps``, ``temperature``, ...)."""
    if isinstance(prompts, str):
        prompts = [prompts]
    config = sampler if sampler is not None else SamplerConfig(**sampler_fields)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    _, texts = sample_prompts(model, list(prompts), config, generator)
    return texts


@dataclass
class TrainResult:
    """What :func:`train` returns: every step's metrics (as in metrics.jsonl), the run folder
    and the trained policy (live, on its device)."""

    history: list[dict[str, Any]]
    out_dir: Path
    policy: Any


def train(
    recipe: Settings = None,
    overrides: Sequence[str] = (),
    *,
    policy: Any = None,
    task: Any = None,
    callbacks: Sequence[Callable[[int, dict[str, Any]], None]] = (),
    **fields: Any,
) -> TrainResult:
    """``trafl train`` from Python. ``policy`` and ``task`` replace what ``model`` and ``task``
    would load (a DiffusionLM and an object with the Task protocol); ``callbacks(step,
    metrics)`` run after every step."""
    config: TrainConfig = _config(TrainConfig, recipe, overrides, fields)
    trainer = Trainer(config, policy=policy, task=task, callbacks=callbacks)
    out = trainer.train()
    return TrainResult(trainer.history, out.parent, trainer.policy)


def evaluate(recipe: Settings = None, overrides: Sequence[str] = (), **fields: Any) -> dict:
    """``trafl eval`` from Python; returns what it writes to eval.json."""
    return run_evaluate(_config(EvalConfig, recipe, overrides, fields))
