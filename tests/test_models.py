"""The tiny denoiser: interface, bidirectionality, padding, save/load."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import make_tiny
from trafl.models import CharTokenizer, DiffusionLM, ModelConfig, load_model


def test_implements_the_protocol_and_ids_come_from_the_tokenizer(tiny_model):
    assert isinstance(tiny_model, DiffusionLM)
    tok = tiny_model.tokenizer
    ids = {tiny_model.mask_token_id, tiny_model.eos_token_id, tiny_model.pad_token_id}
    assert ids == {tok.mask_token_id, tok.eos_token_id, tok.pad_token_id} and len(ids) == 3
    out = tiny_model(torch.tensor([tok.encode("12+3")]), output_hidden_states=True)
    assert out.logits.shape == (1, 4, tok.vocab_size)
    assert out.hidden_states.shape == (1, 4, tiny_model.hidden_size)


def test_attention_is_bidirectional(tiny_model):
    """A later token changes an earlier position's prediction (a causal model would not)."""
    tok = tiny_model.tokenizer
    a = tiny_model(torch.tensor([tok.encode("1234")])).logits
    b = tiny_model(torch.tensor([tok.encode("1239")])).logits
    assert not torch.allclose(a[0, 0], b[0, 0])


def test_left_padding_is_invisible(tiny_model):
    tok = tiny_model.tokenizer
    real = torch.tensor([tok.encode("7*8-3")])
    padded = torch.cat([torch.full((1, 3), tok.pad_token_id), real], dim=1)
    mask = torch.tensor([[False] * 3 + [True] * 5])
    a = tiny_model(real).logits
    b = tiny_model(padded, attention_mask=mask).logits[:, 3:]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    c = tiny_model(padded).logits[:, 3:]  # without the mask the pads would be attended
    assert not torch.allclose(a, c, atol=1e-3)


def test_save_and_load_round_trip(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",  # the rest makes it a transformers folder (tests/test_hf_tiny.py)
        "configuration_trafl_tiny.py",
        "modeling_trafl_tiny.py",
        "network_trafl_tiny.py",
    }
    loaded = load_model(tmp_path / "m")
    x = torch.tensor([tiny_model.tokenizer.encode("3 7 12 -> 25:")])
    torch.testing.assert_close(loaded(x).logits, tiny_model(x).logits, atol=0, rtol=0)
    assert loaded.tokenizer.encode_prompt("3 7 -> 21:") == loaded.tokenizer.encode("3 7 -> 21:")
    prefixed = load_model(ModelConfig(path=str(tmp_path / "m"), response_prefix="3*"))
    assert prefixed.tokenizer.encode_prompt("3 7 -> 21:") == loaded.tokenizer.encode("3 7 -> 21:3*")


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="expected a folder with config.json"):
        load_model(tmp_path / "missing")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text('{"model_type": "gpt9"}')
    with pytest.raises(ValueError, match="valid: .*tiny"):
        load_model(tmp_path / "odd")


def test_tokenizer_round_trip_and_unknown_characters():
    tok = CharTokenizer()
    text = "(12-7)*3+4/2 -> 25:\n"
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode([tok.eos_token_id, *tok.encode("ab"), tok.pad_token_id]) == "ab"
    with pytest.raises(ValueError, match="not in the tokenizer's alphabet"):
        tok.encode("é")


def test_bf16_forward_runs():
    model = make_tiny().to(torch.bfloat16)
    out = model(torch.tensor([model.tokenizer.encode("1+2")]))
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.logits.float()).all()
