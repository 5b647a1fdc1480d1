"""Tiny random transformers models and a character tokenizer, written to folders for the tests.

Nothing is downloaded: every model is built from a config here (hidden 32, 2 layers). The
tokenizer is character-level (one token per character of the embedded tasks' alphabet) with
``<pad>``, ``<eos>`` and ``<mask>`` specials, made with the ``tokenizers`` library and handed
to transformers as ``PreTrainedTokenizerFast(mask_token=...)``, which is how an HF tokenizer
gets a mask token.
"""

from __future__ import annotations

import random
import shutil
import string
from pathlib import Path

import torch

FIXTURES = Path(__file__).parent / "fixtures" / "hf"
SPECIALS = ["<pad>", "<eos>", "<mask>", "<unk>", "<|mdm_mask|>"]
ALPHABET = string.digits + string.ascii_letters + string.punctuation + " \n"
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
SHAPE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


def text_reward(problem: object, text: str) -> float:
    """A reward in [0, 1) that varies with the completion (a random model never solves
    Countdown, and equal rewards give most objectives a zero loss); a function of its inputs
    only, so a resumed run sees the same rewards."""
    return random.Random(f"{problem}|{text}").random()


def char_tokenizer(chat_template: bool = False):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + list(ALPHABET))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()  # characters join without spaces
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="<eos>",
        mask_token="<mask>",
        unk_token="<unk>",
    )
    tok.add_special_tokens({"additional_special_tokens": ["<|mdm_mask|>"]})
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def _ids(tok) -> dict[str, int]:
    return dict(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)


def _save(model, tok, path: Path) -> Path:
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def save_llama(path: Path, seed: int = 0, chat_template: bool = False) -> Path:
    """A Llama decoder (run bidirectionally by the ``llada`` adapter)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer(chat_template)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        num_key_value_heads=2,
        initializer_range=0.3,
        max_position_embeddings=512,
        **SHAPE,
        **_ids(tok),
    )
    return _save(LlamaForCausalLM(cfg), tok, path)


def save_qwen2(path: Path, seed: int = 0) -> Path:
    """A Qwen2 decoder: Dream's architecture, logits right-shifted (``dream`` adapter)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = char_tokenizer()
    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        num_key_value_heads=2,
        initializer_range=0.3,
        max_position_embeddings=512,
        mask_token_id=tok.mask_token_id,
        **SHAPE,
        **_ids(tok),
    )
    return _save(Qwen2ForCausalLM(cfg), tok, path)


def save_modernbert(path: Path, seed: int = 0) -> Path:
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    tok = char_tokenizer()
    torch.manual_seed(seed)
    cfg = ModernBertConfig(
        vocab_size=len(tok),
        initializer_range=0.3,
        global_attn_every_n_layers=1,
        max_position_embeddings=512,
        cls_token_id=tok.eos_token_id,
        sep_token_id=tok.eos_token_id,
        **SHAPE,
        **_ids(tok),
    )
    return _save(ModernBertForMaskedLM(cfg), tok, path)


def save_bert(path: Path, seed: int = 0) -> Path:
    """BERT: absolute position embeddings, so left padding must not shift positions."""
    from transformers import BertConfig, BertForMaskedLM

    tok = char_tokenizer()
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tok),
        initializer_range=0.3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=512,
        **SHAPE,
        **_ids(tok),
    )
    return _save(BertForMaskedLM(cfg), tok, path)


def save_llada(path: Path, seed: int = 0) -> Path:
    """A LLaDA-shaped folder with its own modeling code (``auto_map``), as on the hub; its
    mask id is in config.json and differs from the tokenizer's ``<mask>``."""
    import json

    from transformers import AutoConfig, AutoModel

    tok = char_tokenizer(chat_template=True)
    path.mkdir(parents=True, exist_ok=True)
    for name in ("configuration_llada.py", "modeling_llada.py"):
        shutil.copy(FIXTURES / "llada_tiny" / name, path / name)
    config = {
        "model_type": "llada",
        "architectures": ["LLaDAModelLM"],
        "auto_map": {
            "AutoConfig": "configuration_llada.LLaDAConfig",
            "AutoModel": "modeling_llada.LLaDAModelLM",
        },
        "vocab_size": len(tok),
        "d_model": 32,
        "n_heads": 2,
        "n_layers": 2,
        "mlp_hidden_size": 64,
        "mask_token_id": tok.convert_tokens_to_ids("<|mdm_mask|>"),
        **_ids(tok),
    }
    (path / "config.json").write_text(json.dumps(config))
    torch.manual_seed(seed)
    cfg = AutoConfig.from_pretrained(path, trust_remote_code=True)
    model = AutoModel.from_config(cfg, trust_remote_code=True)
    return _save(model, tok, path)
