"""A character-level tokenizer for the embedded tasks, with mask / EOS / pad specials.

Stored as ``tokenizer.json`` beside the weights: the special tokens first, then one token per
character, in the ``tokenizers`` library's format (:mod:`trafl.models.tokenizer_hub`, so
transformers' ``AutoTokenizer`` loads it too). Unknown characters raise (the embedded tasks
control their alphabet, and a silent replacement would corrupt rewards).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from trafl.core.files import read_json_object
from trafl.models.tokenizer_hub import hub_tokenizer, hub_tokens

SPECIALS = ("<pad>", "<eos>", "<mask>")
DEFAULT_ALPHABET = string.digits + string.ascii_letters + string.punctuation + " \n\t"


class CharTokenizer:
    """Characters <-> ids. ``decode`` drops specials (use ``decode_raw`` to see them)."""

    def __init__(self, alphabet: str = DEFAULT_ALPHABET) -> None:
        if len(set(alphabet)) != len(alphabet):
            raise ValueError("tokenizer alphabet has repeated characters")
        self.alphabet = alphabet
        self.tokens = list(SPECIALS) + list(alphabet)
        self._ids = {ch: i + len(SPECIALS) for i, ch in enumerate(alphabet)}
        self.pad_token_id = self.tokens.index("<pad>")
        self.eos_token_id = self.tokens.index("<eos>")
        self.mask_token_id = self.tokens.index("<mask>")

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        try:
            return [self._ids[ch] for ch in text]
        except KeyError as err:
            raise ValueError(
                f"character {err.args[0]!r} is not in the tokenizer's alphabet {self.alphabet!r}"
            ) from None

    response_prefix: str = ""  # appended to every prompt (model.response_prefix)

    def encode_prompt(self, text: str) -> list[int]:
        """Prompts are plain text here (no chat template), then the response prefix."""
        return self.encode(text + self.response_prefix)

    def decode(self, ids: list[int]) -> str:
        n = len(SPECIALS)
        return "".join(self.tokens[i] for i in ids if i >= n)

    def decode_raw(self, ids: list[int]) -> str:
        return "".join(self.tokens[i] for i in ids)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(hub_tokenizer(self.tokens, SPECIALS), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        """From ``tokenizer.json``: the hub format, or trafl's own of earlier versions."""
        data = read_json_object(path)
        if data.get("type") == "char" and tuple(data.get("specials", ())) == SPECIALS:
            return cls(data["alphabet"])
        tokens = hub_tokens(data)
        chars = tokens[len(SPECIALS) :] if tokens else []
        if (
            not tokens
            or tuple(tokens[: len(SPECIALS)]) != SPECIALS
            or {len(c) for c in chars} != {1}
        ):
            raise ValueError(f"{path} is not a trafl character tokenizer file")
        return cls("".join(chars))
