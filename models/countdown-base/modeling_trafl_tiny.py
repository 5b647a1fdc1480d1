"""trafl's ``tiny`` denoiser as a transformers model: ``AutoModel.from_pretrained(folder,
trust_remote_code=True)`` on any tiny model folder trafl writes.

Copied into every tiny model folder (``auto_map`` in config.json names it), so it imports only
torch, transformers and its sibling files. The network is :class:`TinyNetwork`, the very code
trafl runs (trafl.models.tiny mixes it into its own ``TinyDiffusionLM``): the same parameter
names, the same arithmetic, hence the same logits bit for bit, and a LoRA adapter trained by
trafl loads onto this model with a plain ``peft.PeftModel.from_pretrained``.

The model is a masked denoiser: ``logits[:, i]`` predicts token i (there is no shift), it
attends bidirectionally, and ``attention_mask`` (1 = real token) hides padding keys. Its
hidden states are the input of each block and, last, the final layer's after the final norm.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from .configuration_trafl_tiny import TraflTinyConfig
from .network_trafl_tiny import TinyNetwork


class TraflTinyModel(TinyNetwork, PreTrainedModel):
    config_class = TraflTinyConfig
    _tied_weights_keys = {"lm_head.weight": "embed.weight"}
    _no_split_modules = ["Block"]

    def __init__(self, config: TraflTinyConfig) -> None:
        super().__init__(config)
        self.build_network(config)
        self.hidden_size = config.hidden_size
        self.post_init()  # N(0, 0.02) per module (``_init_weights``), then the tie
        if self.embed.weight.device.type != "meta":  # on meta, transformers is loading weights
            self.scale_residual_init()  # as trafl inits a new model

    def _init_weights(self, module: nn.Module) -> None:
        self.init_module(module)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def forward(
        self,
        input_ids: torch.Tensor,  # (N, T)
        attention_mask: torch.Tensor | None = None,  # (N, T) 1 = real token, 0 = padding
        output_hidden_states: bool | None = None,
        **kwargs: Any,
    ) -> MaskedLMOutput:
        if output_hidden_states is None:
            output_hidden_states = bool(self.config.output_hidden_states)
        layers: list[torch.Tensor] | None = [] if output_hidden_states else None
        h = self.final_hidden(input_ids, attention_mask, layers)  # (N, T, H)
        logits = self.lm_head(h)  # (N, T, V)
        states = None if layers is None else (*layers, h)
        return MaskedLMOutput(logits=logits, hidden_states=states)
