"""trafl's character tokenizer in the ``tokenizers`` library's format, so that transformers'
``AutoTokenizer`` loads a tiny model folder as a ``PreTrainedTokenizerFast``.

``tokenizer.json`` holds a WordLevel model whose vocabulary is the specials then one entry per
character (ids as :class:`trafl.models.tokenizer.CharTokenizer` gives them), a pre-tokenizer
that splits every character off, and a decoder that joins them without spaces; a character
outside the alphabet fails to encode (its unknown token is not in the vocabulary), as it does in
trafl. ``tokenizer_config.json`` names the pad, EOS and mask tokens. Written as plain JSON:
trafl reads and writes it without the ``tokenizers`` library. Folders written before this format
hold ``{"type": "char", "specials": [...], "alphabet": "..."}``; both load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TOKENIZER_CONFIG = "tokenizer_config.json"
UNKNOWN = "<unk>"  # named by the WordLevel model, absent from the vocabulary: unknown = error


def hub_tokenizer(tokens: list[str], specials: tuple[str, ...]) -> dict[str, Any]:
    """The ``tokenizer.json`` of a character tokenizer whose id i is ``tokens[i]``."""
    added = [
        {"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, tok in enumerate(tokens) if tok in specials
    ]  # fmt: skip
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Split",
            "pattern": {"Regex": r"[\s\S]"},
            "behavior": "Isolated",
            "invert": False,
        },
        "post_processor": None,
        "decoder": {"type": "Fuse"},
        "model": {
            "type": "WordLevel",
            "vocab": {tok: i for i, tok in enumerate(tokens)},
            "unk_token": UNKNOWN,
        },
    }


def hub_tokens(data: dict[str, Any]) -> list[str] | None:
    """The tokens by id of a ``tokenizer.json`` in this format; None for another format."""
    model = data.get("model")
    if not isinstance(model, dict) or model.get("type") != "WordLevel":
        return None
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or sorted(vocab.values()) != list(range(len(vocab))):
        return None
    return sorted(vocab, key=vocab.__getitem__)


def write_tokenizer_config(folder: str | Path, pad: str, eos: str, mask: str) -> None:
    """``tokenizer_config.json``: which class transformers builds and its special tokens."""
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "pad_token": pad,
        "eos_token": eos,
        "mask_token": mask,
        "clean_up_tokenization_spaces": False,
    }
    (Path(folder) / TOKENIZER_CONFIG).write_text(json.dumps(config, indent=1))
