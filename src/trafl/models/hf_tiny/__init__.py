"""trafl's ``tiny`` denoiser as a transformers model, shipped inside every tiny model folder.

The three files of this package are the model's code on the hub: ``network_trafl_tiny.py``
(torch only: the config fields, the layers, the forward pass, which trafl itself runs),
``configuration_trafl_tiny.py`` and ``modeling_trafl_tiny.py`` (transformers'
``TraflTinyConfig`` and ``TraflTinyModel``). Saving a tiny model copies them into the folder
and names them in config.json's ``auto_map``, so that

    AutoModel.from_pretrained(folder, trust_remote_code=True)

loads it without trafl installed. With trafl installed, :func:`register_auto_classes` registers
``trafl_tiny`` with transformers' Auto classes so the same call works without remote code.

This module imports nothing heavy: trafl's own tiny model must not wait for transformers (it
takes seconds to import) unless transformers is asked for.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
HF_MODEL_TYPE = "trafl_tiny"
CODE_FILES = ("network_trafl_tiny.py", "configuration_trafl_tiny.py", "modeling_trafl_tiny.py")
AUTO_MAP = {
    "AutoConfig": "configuration_trafl_tiny.TraflTinyConfig",
    "AutoModel": "modeling_trafl_tiny.TraflTinyModel",
    "AutoModelForMaskedLM": "modeling_trafl_tiny.TraflTinyModel",
}


def hub_config(shape: Any, dtype: str) -> dict[str, Any]:
    """config.json for a network of ``shape`` (a :class:`TinyConfig`) stored in ``dtype``."""
    return {
        "model_type": HF_MODEL_TYPE,
        "architectures": ["TraflTinyModel"],
        "auto_map": AUTO_MAP,
        **asdict(shape),
        "tie_word_embeddings": True,
        "torch_dtype": dtype,
    }


def write_code(folder: str | Path) -> None:
    """Copy the model's code files into ``folder``."""
    for name in CODE_FILES:
        shutil.copyfile(HERE / name, Path(folder) / name)


def register_auto_classes() -> None:
    """Register ``trafl_tiny`` with AutoConfig, AutoModel and AutoModelForMaskedLM (imports
    transformers; idempotent)."""
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

    from trafl.models.hf_tiny.configuration_trafl_tiny import TraflTinyConfig
    from trafl.models.hf_tiny.modeling_trafl_tiny import TraflTinyModel

    AutoConfig.register(HF_MODEL_TYPE, TraflTinyConfig, exist_ok=True)
    AutoModel.register(TraflTinyConfig, TraflTinyModel, exist_ok=True)
    AutoModelForMaskedLM.register(TraflTinyConfig, TraflTinyModel, exist_ok=True)
