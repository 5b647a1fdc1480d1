"""transformers' config class for trafl's ``tiny`` denoiser (``model_type: trafl_tiny``).

Copied into every tiny model folder (``auto_map`` in config.json names it), so it imports only
transformers and its sibling files. The shape fields and their defaults are
:class:`TinyConfig`'s; transformers' usual names (``num_hidden_layers``,
``num_attention_heads``, ``intermediate_size``) read them too.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from transformers import PretrainedConfig

from .network_trafl_tiny import TinyConfig


class TraflTinyConfig(PretrainedConfig):
    model_type = "trafl_tiny"
    attribute_map = {
        "num_hidden_layers": "num_layers",
        "num_attention_heads": "num_heads",
        "intermediate_size": "mlp_hidden",
    }

    def __init__(self, **kwargs: Any) -> None:
        names = [f.name for f in fields(TinyConfig)]
        shape = TinyConfig(**{name: kwargs.pop(name) for name in names if name in kwargs})
        for name, value in asdict(shape).items():
            setattr(self, name, value)
        kwargs["tie_word_embeddings"] = True  # the output head is the embedding, always
        super().__init__(**kwargs)

    def shape(self) -> TinyConfig:
        """The network's shape as the torch-only :class:`TinyConfig`."""
        return TinyConfig(**{f.name: getattr(self, f.name) for f in fields(TinyConfig)})
