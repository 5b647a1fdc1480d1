"""trafl: post-training diffusion language models with Trajectory Flow baLancing (TraFL).

The Python API (:mod:`trafl.commands.api`): ``trafl.load_model``, ``trafl.generate``,
``trafl.train`` and ``trafl.evaluate``. They load on first use, so ``import trafl`` is cheap.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["TrainResult", "evaluate", "generate", "load_model", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from trafl.commands import api

        return getattr(api, name)
    raise AttributeError(f"module 'trafl' has no attribute {name!r}")
