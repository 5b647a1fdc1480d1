"""``TraflLM``: a trafl model in lm-eval, registered as ``trafl``.

    python -m trafl.integrations.lm_eval --model trafl --tasks TASK --device cpu \\
        --model_args pretrained=runs/my-run,gen_length=32,steps=32,mc_num=64 --batch_size 32

    from trafl.integrations.lm_eval import TraflLM          # in Python: an LM object, or
    lm_eval.simple_evaluate(model="trafl", model_args="pretrained=...", tasks=[...])

``model_args`` are listed in :mod:`trafl.integrations.lm_eval.settings`; ``pretrained`` may also
be a loaded trafl model (Python only), evaluated where it is, e.g. a live policy.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from trafl.core.config import ConfigError
from trafl.core.errors import install_hint
from trafl.integrations.lm_eval.scoring import (
    continuation_elbos,
    cut_at_stops,
    encode_pair,
    greedy_matches,
    request_seed,
)
from trafl.integrations.lm_eval.settings import LmEvalSettings, settings_from_args
from trafl.models import load_model
from trafl.run.runtime import resolve_device
from trafl.sampling import generate

try:
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
except ImportError as err:  # the optional extra
    raise ImportError(f"the lm-eval integration needs lm-eval: {install_hint('lm-eval')}") from err

log = logging.getLogger(__name__)
HONOURED_GEN_KWARGS = {"until"}  # the sampler's settings come from model_args


@register_model("trafl")
class TraflLM(LM):
    """lm-eval's three requests on a trafl diffusion model.

    - ``generate_until``: trafl's sampler (:mod:`trafl.sampling`) with the ``model_args``
      sampler settings (temperature 0 unless given), one completion of ``gen_length`` tokens
      per request, cut at its EOS and then at the earliest ``until`` stop string. Other
      ``gen_kwargs`` (``max_gen_toks``, ``temperature``, ``do_sample``) are ignored with a
      warning: one run uses one sampler setting, the one in its model_args. Sampling noise
      (temperature > 0) comes from (seed, context), so the same request gets the same text.
    - ``loglikelihood``: ``(logprob, is_greedy)``. logprob is the ``mc_num``-mask ELBO
      estimate of the continuation with the context unmasked
      (:func:`~trafl.integrations.lm_eval.scoring.continuation_elbos`), a lower bound of
      log p in expectation, deterministic given ``seed``. is_greedy: whether greedy decoding
      of as many tokens as the continuation has, revealing the most confident argmax token
      one per step (LLaDA's suffix_greedy_prediction), reproduces it exactly; it costs one
      denoiser call per continuation token, and ``check_greedy=false`` skips it and reports
      False (LLaDA's is_check_greedy=False).
    - ``loglikelihood_rolling``: not implemented (see the method).
    """

    def __init__(self, pretrained: Any = None, **model_args: Any) -> None:
        super().__init__()
        if pretrained is None:
            raise ConfigError("model_args needs pretrained=MODEL (a model or run folder, hub id)")
        named = isinstance(pretrained, str | Path)
        self.settings: LmEvalSettings = settings_from_args(
            model_args, str(pretrained) if named else None
        )
        if named:
            model = load_model(self.settings.model)
            device = resolve_device(self.settings.device)
        else:  # a loaded model stays where it is unless a device is named
            model = pretrained
            explicit = self.settings.device != "auto"
            device = resolve_device(self.settings.device) if explicit else _device_of(model)
        self.model = model.to(device)
        self._device = device
        self._warned: set[str] = set()

    @property
    def batch_size(self) -> int:
        return self.settings.batch_size

    def generate_until(self, requests: list[Any]) -> list[str]:
        """One sampled completion per request, cut at its ``until`` strings (class doc)."""
        if not requests:
            return []
        contexts = [r.args[0] for r in requests]
        options = [dict(r.args[1] or {}) for r in requests]
        self._warn_ignored(options)
        generators = [
            torch.Generator(device=self._device).manual_seed(request_seed(self.settings.seed, c))
            for c in contexts
        ]
        _, texts = generate(self.model, contexts, self.settings.sampler, generators)
        out = [cut_at_stops(t, _stops(o.get("until"))) for t, o in zip(texts, options, strict=True)]
        for request, text in zip(requests, out, strict=True):
            self.cache_hook.add_partial("generate_until", request.args, text)
        return out

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        """``(ELBO estimate of the continuation, is_greedy)`` per request (class doc)."""
        s = self.settings
        tokenizer = self.model.tokenizer
        pairs = [encode_pair(tokenizer, *r.args) for r in requests]
        seeds = [request_seed(s.seed, r.args[0]) for r in requests]
        logps = continuation_elbos(self.model, pairs, seeds, s.mc_num, s.mc_coupling, s.batch_size)
        greedy = (
            greedy_matches(self.model, pairs, s.batch_size)
            if s.check_greedy
            else [False] * len(pairs)
        )
        out = list(zip(logps, greedy, strict=True))
        for request, result in zip(requests, out, strict=True):
            self.cache_hook.add_partial("loglikelihood", request.args, result)
        return out

    def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
        """Not implemented: rolling windows need a left-to-right factorisation of log p, which a
        masked diffusion model does not have (its ELBO scores one whole sequence)."""
        raise NotImplementedError(
            "trafl models have no loglikelihood_rolling (perplexity tasks): a masked diffusion "
            "model has no left-to-right factorisation to roll over windows; use loglikelihood "
            "or generate_until tasks"
        )

    def _warn_ignored(self, options: list[dict[str, Any]]) -> None:
        ignored = sorted({k for o in options for k in o} - HONOURED_GEN_KWARGS - self._warned)
        if ignored:
            self._warned.update(ignored)
            log.warning(
                "trafl ignores gen_kwargs %s: the sampler is set by model_args (%s)",
                ", ".join(ignored),
                self.settings.sampler,
            )


def _stops(until: Any) -> list[str]:
    """lm-eval's ``until``: a string, a list of strings, or nothing."""
    if until is None:
        return []
    return [until] if isinstance(until, str) else list(until)


def _device_of(model: Any) -> torch.device:
    return next(model.parameters()).device
