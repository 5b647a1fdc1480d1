"""trafl models in EleutherAI's lm-evaluation-harness (``pip install 'trafl[lm-eval]'``).

    trafl-lm-eval --model trafl \\      (or python -m trafl.integrations.lm_eval ...)
        --model_args pretrained=models/countdown-base,gen_length=16,mc_num=64 \\
        --tasks TASK --device cpu --batch_size 32

- :mod:`.model`: :class:`TraflLM`, registered in lm-eval as ``trafl``: ``generate_until``
  through trafl's sampler, ``loglikelihood`` through the ELBO estimator.
- :mod:`.settings`: its ``model_args`` (model, sampler and likelihood settings, one flat list).
- :mod:`.scoring`: the ELBO of a continuation and the greedy check, plain trafl code.
- ``__main__``: lm-eval's command line with ``trafl`` registered (lm-eval 0.4 has no plugin
  discovery, so its own ``lm_eval`` script cannot find a third-party model).

Importing this package does not import lm-eval; ``TraflLM`` loads it on first use.
"""

from typing import Any

__all__ = ["TraflLM"]


def __getattr__(name: str) -> Any:
    if name == "TraflLM":
        from trafl.integrations.lm_eval.model import TraflLM

        return TraflLM
    raise AttributeError(f"module 'trafl.integrations.lm_eval' has no attribute {name!r}")
