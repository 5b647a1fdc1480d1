"""``tiny``: our own small bidirectional transformer denoiser for the embedded tasks.

The network (config, layers, forward pass) is :mod:`trafl.models.hf_tiny.network_trafl_tiny`,
the same code a tiny model folder ships for transformers (:mod:`trafl.models.hf_tiny`); this
module adds what trafl needs around it: the character tokenizer, the
:class:`trafl.models.base.DiffusionLM` interface, and reading and writing model folders.

A folder is a hub-shaped model folder: ``config.json`` (``model_type: trafl_tiny``, an
``auto_map`` to the code files beside it), ``model.safetensors``, ``tokenizer.json`` and
``tokenizer_config.json`` (the tokenizer in the ``tokenizers`` format), and the three code
files; ``AutoModel.from_pretrained(folder, trust_remote_code=True)`` gives the same logits as
trafl, bit for bit. Folders of earlier versions (``model_type: tiny``, no code files, trafl's
own tokenizer format) still load here.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from trafl.core.files import read_json_object
from trafl.models.base import DenoiserOutput, TokenIdsFromTokenizer
from trafl.models.hf_tiny import HF_MODEL_TYPE, hub_config, write_code
from trafl.models.hf_tiny.network_trafl_tiny import (
    Block,
    LayerKV,
    TinyConfig,
    TinyNetwork,
    key_mask,
    rotary,
)
from trafl.models.tokenizer import CharTokenizer
from trafl.models.tokenizer_hub import write_tokenizer_config

__all__ = ["Block", "LayerKV", "TinyConfig", "TinyDiffusionLM", "key_mask", "rotary"]
MODEL_TYPES_IN_CONFIG = ("tiny", HF_MODEL_TYPE)  # config.json's model_type: earlier, now


class TinyDiffusionLM(TokenIdsFromTokenizer, TinyNetwork, nn.Module):
    """The embedded denoiser; implements :class:`trafl.models.base.DiffusionLM`."""

    model_type = "tiny"

    def __init__(self, config: TinyConfig, tokenizer: CharTokenizer) -> None:
        if config.vocab_size != tokenizer.vocab_size:
            raise ValueError(
                f"config.vocab_size={config.vocab_size} but the tokenizer has "
                f"{tokenizer.vocab_size} tokens"
            )
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.hidden_size = config.hidden_size
        self.build_network(config)
        self.apply(self.init_module)
        self.scale_residual_init()

    def forward(
        self,
        input_ids: torch.Tensor,  # (N, T)
        attention_mask: torch.Tensor | None = None,  # (N, T) bool, False = padding key
        output_hidden_states: bool = False,
    ) -> DenoiserOutput:
        h = self.final_hidden(input_ids, attention_mask)  # (N, T, H)
        logits = self.lm_head(h)  # (N, T, V)
        return DenoiserOutput(logits=logits, hidden_states=h if output_hidden_states else None)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(
        self, path: str | Path, state_dict: dict[str, torch.Tensor] | None = None
    ) -> None:
        """Write the model folder; ``state_dict`` (this module's keys) replaces the live weights,
        e.g. the whole weights gathered from a sharded model (trafl.run.sharding)."""
        if state_dict is not None:
            twin = type(self)(self.config, self.tokenizer)
            twin.load_state_dict(state_dict)
            twin.save_pretrained(path)
            return
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.save_folder_files(path)
        save_model(self, str(path / "model.safetensors"), metadata={"format": "pt"})

    def save_folder_files(self, path: Path) -> None:
        """Everything of the folder but the weights: config.json, the tokenizer files and the
        model's code (how the shipped folders were brought to this format, weights untouched)."""
        dtype = str(self.embed.weight.dtype).removeprefix("torch.")
        (path / "config.json").write_text(json.dumps(hub_config(self.config, dtype), indent=1))
        tok = self.tokenizer
        self.tokenizer.save(path / "tokenizer.json")
        pad, eos, mask = (
            tok.tokens[i] for i in (tok.pad_token_id, tok.eos_token_id, tok.mask_token_id)
        )
        write_tokenizer_config(path, pad=pad, eos=eos, mask=mask)
        write_code(path)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> TinyDiffusionLM:
        """A tiny model folder, of this version or an earlier one. config.json's keys other than
        the network's shape (``auto_map``, ``torch_dtype``, ...) are transformers' business."""
        path = Path(path)
        meta = read_json_object(path / "config.json")
        if meta.get("model_type") not in MODEL_TYPES_IN_CONFIG:
            raise ValueError(f"{path} does not hold a '{cls.model_type}' model")
        shape = TinyConfig(**{f.name: meta[f.name] for f in fields(TinyConfig) if f.name in meta})
        model = cls(shape, CharTokenizer.load(path / "tokenizer.json"))
        load_model(model, str(path / "model.safetensors"))
        return model
