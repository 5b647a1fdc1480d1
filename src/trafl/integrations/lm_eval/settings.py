"""``model_args`` of lm-eval's ``trafl`` model: one flat list of names, routed to the model,
the sampler and the likelihood settings.

    pretrained=PATH                      a model folder, run folder (its latest checkpoint),
                                         LoRA adapter or hub id (``model.path``)
    type, dtype, trust_remote_code, ...  the other ``model.*`` fields (:class:`ModelConfig`)
    gen_length, steps, block_length,     ``sampler.*`` fields (:class:`SamplerConfig`): how
    temperature, remasking, cache, ...   ``generate_until`` samples; temperature 0 by default
    mc_num, mc_coupling, seed            the ELBO estimate of ``loglikelihood``
    check_greedy                         whether ``loglikelihood`` computes is_greedy
    batch_size, device                   lm-eval's --batch_size and --device

Values are coerced and checked as on trafl's command line (``trafl.core.config``), and an
unknown name is an error that lists the valid ones: a misspelt sampler setting never runs
silently at its default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from trafl.core.config import ConfigError, from_dict
from trafl.likelihood.masks import Coupling, check_masks_config
from trafl.models import ModelConfig
from trafl.sampling import SamplerConfig

# lm-eval's own greedy convention for generate_until; trafl's rollouts default to 1.0
DEFAULT_TEMPERATURE = 0.0
NOT_FROM_MODEL_ARGS = {"path", "lora", "gradient_checkpointing"}  # model fields not offered
IGNORED = {"max_batch_size"}  # lm-eval passes it for its own automatic batch size search


@dataclass
class LmEvalSettings:
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(
        default_factory=lambda: SamplerConfig(temperature=DEFAULT_TEMPERATURE)
    )
    device: str = "auto"  # auto: CUDA when available; lm-eval's CLI passes --device (cuda:0)
    batch_size: int = 32  # sequences per denoiser call: prompts sampled, masked copies scored
    mc_num: int = 128  # masks per continuation in the ELBO estimate (LLaDA's eval default)
    mc_coupling: Coupling = "complementary"  # how masks are paired (trafl.likelihood.masks)
    seed: int = 0  # every request's masks and noise come from (seed, its context)
    check_greedy: bool = True  # False skips the greedy decode and reports is_greedy False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        try:
            check_masks_config(self.mc_num, self.mc_coupling)
        except ValueError as err:  # its names are the estimator's: say ours
            text = str(err).replace("num_masks", "mc_num").replace("coupling", "mc_coupling")
            raise ValueError(text) from None


def _names(cls: type, skip: set[str]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init and f.name not in skip]


MODEL_KEYS = _names(ModelConfig, NOT_FROM_MODEL_ARGS)  # pretrained is model.path
SAMPLER_KEYS = _names(SamplerConfig, {"batch_size"})  # batch_size is ours, shared
OWN_KEYS = _names(LmEvalSettings, {"model", "sampler"})
VALID_KEYS = ["pretrained", *MODEL_KEYS, *SAMPLER_KEYS, *OWN_KEYS]


def settings_from_args(args: dict[str, Any], path: str | None = None) -> LmEvalSettings:
    """The settings named by lm-eval's ``model_args`` other than ``pretrained`` (already split
    into ``{name: value}`` and typed by lm-eval: ``"0"`` arrives as 0, ``"none"`` as None);
    ``path`` is ``pretrained`` when it names a model (None: a model object was given)."""
    batch_size = args.get("batch_size")
    if isinstance(batch_size, str) and batch_size.startswith("auto"):
        raise ConfigError(
            f"batch_size={batch_size!r} is not supported; give an integer (sequences per "
            "denoiser call)"
        )
    model: dict[str, Any] = {} if path is None else {"path": path}
    sampler: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for key, value in args.items():
        value = "none" if value is None else value  # lm-eval reads the text none as None
        if key in IGNORED:
            continue
        if key in MODEL_KEYS:
            model[key] = value
        elif key in SAMPLER_KEYS:
            sampler[key] = value
        elif key in OWN_KEYS:
            own[key] = value
        else:
            raise ConfigError(f"unknown model_args key {key!r}; valid: {', '.join(VALID_KEYS)}")
    settings = from_dict(LmEvalSettings, {**own, "model": model, "sampler": sampler}, "")
    settings.sampler = dataclasses.replace(settings.sampler, batch_size=settings.batch_size)
    return settings
