"""The tiny denoiser as a transformers model: the shipped folders load with ``AutoModel`` and give
trafl's logits bit for bit, folders round-trip through transformers, ``trafl export`` writes a
model card, and a LoRA adapter saved by trafl loads as a plain ``peft.PeftModel`` on the
transformers base (tiny and an HF adapter)."""

from __future__ import annotations

import filecmp
import hashlib
import json
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import make_tiny
from trafl.models import LoraConfig, ModelConfig, add_lora, load_adapter, load_model
from trafl.models.hf_tiny import CODE_FILES, HERE, register_auto_classes
from trafl.models.loading import BASE_MODEL_FILE
from trafl.models.lora import PEFT_ROOT
from trafl.models.saving import save_policy

transformers = pytest.importorskip("transformers", reason="the transformers view of tiny")
peft = pytest.importorskip("peft", reason="plain peft adapters")

ROOT = Path(__file__).resolve().parents[1]
# sha256 of the shipped weights, as trained (README: the base models); never rewritten since
SHIPPED = {
    "countdown-base": "65db5d790ebc0393344ea2d80665162e2d9fbad1d7a308d2318b213217cba745",
    "tiny-code-base": "4e224d8a64190b5ff469bad86d078de2c84253f97d64e31a2418ccce7dcead93",
}
TEXTS = ["3 7 12 -> 25:(12-7)*3", "def f(x): return x+1\n"]


def batch(tok) -> tuple[torch.Tensor, torch.Tensor]:
    """Two left-padded rows (ids, mask with 1 on real tokens): padding must be hidden."""
    rows = [tok.encode(t) for t in TEXTS]
    width = max(map(len, rows))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def auto_model(path: Path):
    return transformers.AutoModel.from_pretrained(path, trust_remote_code=True).eval()


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_folders_load_with_transformers_bit_for_bit(name):
    folder = ROOT / "models" / name
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == SHIPPED[name]
    for file in CODE_FILES:  # the shipped code is the package's
        assert filecmp.cmp(folder / file, HERE / file, shallow=False), file
    config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=True)
    assert (config.model_type, config.num_hidden_layers, config.num_attention_heads) == (
        "trafl_tiny", 6, 4)  # fmt: skip
    ours, theirs = load_model(folder).eval(), auto_model(folder)
    ids, mask = batch(ours.tokenizer)
    with torch.no_grad():
        a = ours(ids, attention_mask=mask.bool(), output_hidden_states=True)
        b = theirs(ids, attention_mask=mask, output_hidden_states=True)
    torch.testing.assert_close(b.logits, a.logits, atol=0, rtol=0)
    assert len(b.hidden_states) == 7  # each block's input, then the last layer after the norm
    torch.testing.assert_close(b.hidden_states[-1], a.hidden_states, atol=0, rtol=0)
    tok = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    mine = ours.tokenizer
    assert (tok.pad_token_id, tok.eos_token_id, tok.mask_token_id) == (
        mine.pad_token_id, mine.eos_token_id, mine.mask_token_id)  # fmt: skip
    for text in TEXTS:
        assert tok(text)["input_ids"] == mine.encode(text)
    ids_with_specials = [mine.eos_token_id, *mine.encode(TEXTS[0]), mine.pad_token_id]
    assert tok.decode(ids_with_specials, skip_special_tokens=True) == TEXTS[0]


def test_registered_auto_classes_load_without_remote_code():
    from trafl.models.hf_tiny.modeling_trafl_tiny import TraflTinyModel

    register_auto_classes()
    folder = ROOT / "models" / "countdown-base"
    theirs = transformers.AutoModel.from_pretrained(folder).eval()
    assert type(theirs) is TraflTinyModel  # trafl's own class, not the folder's copy
    assert type(transformers.AutoModelForMaskedLM.from_pretrained(folder)) is TraflTinyModel
    ours = load_model(folder).eval()
    ids, mask = batch(ours.tokenizer)
    with torch.no_grad():
        expected = ours(ids, attention_mask=mask.bool()).logits
        torch.testing.assert_close(
            theirs(ids, attention_mask=mask).logits, expected, atol=0, rtol=0
        )


def test_one_network_one_init():
    """transformers' class and trafl's are one network: the same seed builds the same weights
    (trafl's init, GPT-2's scaled residuals included), under the same names."""
    from trafl.models.hf_tiny.configuration_trafl_tiny import TraflTinyConfig
    from trafl.models.hf_tiny.modeling_trafl_tiny import TraflTinyModel
    from trafl.models.tiny import TinyConfig, TinyDiffusionLM
    from trafl.models.tokenizer import CharTokenizer

    shape = dict(hidden_size=32, num_layers=2, num_heads=2, mlp_hidden=64)
    torch.manual_seed(7)
    ours = TinyDiffusionLM(TinyConfig(**shape), CharTokenizer())
    torch.manual_seed(7)
    theirs = TraflTinyModel(TraflTinyConfig(**shape))
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=0, rtol=0)
    std = theirs.blocks[0].proj.weight.std().item()  # 0.02 / sqrt(2 * 2 layers) = 0.01
    assert abs(std - 0.01) < 0.002 and theirs.lm_head.weight is theirs.embed.weight
    with pytest.raises(ValueError, match="even head size"):
        TraflTinyConfig(hidden_size=30, num_heads=2)


def test_a_folder_round_trips_through_transformers(tmp_path):
    """trafl writes, transformers loads and writes again (its own format: config.json of its
    own, weights with the tie dropped), trafl loads that: the same logits throughout."""
    model = make_tiny(seed=2)
    model.save_pretrained(tmp_path / "trafl")
    theirs = auto_model(tmp_path / "trafl")
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "trafl", trust_remote_code=True)
    theirs.save_pretrained(tmp_path / "hf")
    tok.save_pretrained(tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["model_type"] == "trafl_tiny"
    again = load_model(tmp_path / "hf").eval()
    ids, mask = batch(model.tokenizer)
    with torch.no_grad():
        expected = model(ids, attention_mask=mask.bool()).logits
        for other in (theirs, again, auto_model(tmp_path / "hf")):
            torch.testing.assert_close(
                other(ids, attention_mask=mask).logits, expected, atol=0, rtol=0
            )
    assert again.tokenizer.alphabet == model.tokenizer.alphabet


def test_folders_of_earlier_versions_still_load(tmp_path):
    """Before this layout: ``model_type: tiny``, trafl's own tokenizer file, no code files, no
    ``format`` in the weights' metadata (run checkpoints of earlier versions look so)."""
    from dataclasses import asdict

    from safetensors.torch import save_model

    model = make_tiny(seed=5)
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"model_type": "tiny", **asdict(model.config)}))
    tok = model.tokenizer
    data = {"type": "char", "specials": tok.tokens[:3], "alphabet": tok.alphabet}
    (old / "tokenizer.json").write_text(json.dumps(data))
    save_model(model, str(old / "model.safetensors"))
    loaded = load_model(old).eval()
    ids, mask = batch(tok)
    with torch.no_grad():
        expected = model(ids, attention_mask=mask.bool()).logits
        torch.testing.assert_close(
            loaded(ids, attention_mask=mask.bool()).logits, expected, atol=0, rtol=0
        )
    assert loaded.tokenizer.tokens == tok.tokens


def trained_adapter(base: ModelConfig, folder: Path, seed: int = 1):
    """A LoRA policy as trafl trains one, with nonzero B (a fresh adapter changes nothing), saved
    as a trafl checkpoint saves it."""
    base.lora = LoraConfig(rank=4, dropout=0.0)
    policy = add_lora(load_model(base), base.lora)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.1)
    save_policy(policy, folder, base)
    return policy.eval()


def test_a_tiny_adapter_loads_as_a_plain_peft_model(tmp_path):
    make_tiny(seed=3).save_pretrained(tmp_path / "base")
    policy = trained_adapter(ModelConfig(path=str(tmp_path / "base")), tmp_path / "adapter")
    plain = peft.PeftModel.from_pretrained(auto_model(tmp_path / "base"), tmp_path / "adapter")
    auto = peft.AutoPeftModel.from_pretrained(tmp_path / "adapter", trust_remote_code=True)
    unmerged = load_adapter(tmp_path / "adapter", ModelConfig(), merge=False).eval()
    merged = load_model(tmp_path / "adapter").eval()  # trafl's default: merged
    ids, mask = batch(policy.tokenizer)
    with torch.no_grad():
        base = load_model(tmp_path / "base")(ids, attention_mask=mask.bool()).logits
        expected = policy(ids, attention_mask=mask.bool()).logits
        assert (expected - base).abs().max() > 0.1, "the adapter does not change the model"
        # the same operations on the same numbers (unmerged, merged): bit for bit
        for other in (plain.eval(), auto.eval(), unmerged):
            torch.testing.assert_close(
                other(ids, attention_mask=mask).logits, expected, atol=0, rtol=0
            )
        plain_merged = plain.merge_and_unload()(ids, attention_mask=mask).logits
        torch.testing.assert_close(
            plain_merged, merged(ids, attention_mask=mask.bool()).logits, atol=0, rtol=0
        )


def test_an_hf_adapter_is_saved_under_the_transformers_model_names(tmp_path):
    """An HF adapter (here ``llada`` on a Llama) holds its transformers model as ``model``: the
    saved adapter drops that prefix, so plain peft loads it on the Llama itself; adapters saved
    before, under trafl's names, still load in trafl."""
    from tests.hf_fixtures import save_llama

    llama = save_llama(tmp_path / "llama")
    cfg = ModelConfig(path=str(llama), type="llada")
    policy = trained_adapter(cfg, tmp_path / "adapter")
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert "model.layers.0.self_attn.q_proj" in saved["target_modules"]
    assert saved["base_model_name_or_path"] == str(llama.resolve())
    plain = peft.PeftModel.from_pretrained(
        transformers.AutoModelForCausalLM.from_pretrained(llama), tmp_path / "adapter"
    ).eval()
    theirs = peft.get_peft_model_state_dict(plain)
    ours = {
        PEFT_ROOT + k.removeprefix(PEFT_ROOT + "model."): v
        for k, v in peft.get_peft_model_state_dict(policy).items()
    }
    assert theirs.keys() == ours.keys() and len(ours) == 2 * 14  # A and B of 7 layers x 2
    for key in ours:
        torch.testing.assert_close(theirs[key], ours[key], atol=0, rtol=0)
    attached = load_adapter(tmp_path / "adapter", cfg, merge=False)
    ids = batch(policy.tokenizer)[0]
    with torch.no_grad():  # the Llama inside trafl's adapter, called as transformers calls it
        inner = attached.get_base_model().model(input_ids=ids).logits
        torch.testing.assert_close(plain(input_ids=ids).logits, inner, atol=0, rtol=0)
    policy.save_pretrained(tmp_path / "before")  # the layout of earlier versions
    record = {"path": str(llama), "type": "llada"}
    (tmp_path / "before" / BASE_MODEL_FILE).write_text(json.dumps(record))
    expected = peft.get_peft_model_state_dict(policy)
    for folder in ("adapter", "before"):  # every weight back in its own layer of trafl's model
        got = peft.get_peft_model_state_dict(load_adapter(tmp_path / folder, cfg, merge=False))
        assert got.keys() == expected.keys()
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], atol=0, rtol=0)


def fake_run(tmp_path: Path, with_eval: bool) -> Path:
    run = tmp_path / "run"
    make_tiny(seed=4).save_pretrained(run / "model")
    config = {"model": {"path": "models/countdown-base", "lora": {"rank": 0}},
              "task": {"name": "countdown"}, "objective": {"name": "trafl", "beta": 32.0},
              "steps": 300}  # fmt: skip
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if with_eval:
        curve = {"1": 0.25, "4": 0.5}
        length = {
            "greedy_accuracy": 0.2,
            "pass_at_k": {k: {"mean": v} for k, v in curve.items()},
            "coverage": {"mean_coverage": 0.4},
            "locking": {"mean_pairwise_rank_distance": 0.125},
        }
        result = {"model": str(run / "model"), "model_name": "run", "task": "countdown",
                  "split": "test", "num_problems": 8, "num_samples": 4,
                  "lengths": {"16": length}}  # fmt: skip
        (run / "eval").mkdir()
        (run / "eval" / "eval.json").write_text(json.dumps(result))
    return run


@pytest.mark.parametrize("with_eval", [True, False])
def test_export_writes_a_model_card(tmp_path, with_eval):
    from trafl.commands.export import ExportConfig, export
    from trafl.evaluation.report import markdown_table

    run = fake_run(tmp_path, with_eval)
    out = export(ExportConfig(model=ModelConfig(path=str(run)), out=str(tmp_path / "out")))
    card = (out / "README.md").read_text()
    _, head, body = card.split("---\n", 2)
    meta = yaml.safe_load(head)
    assert meta["library_name"] == "trafl" and meta["base_model"] == "models/countdown-base"
    assert {"trafl", "countdown"} <= set(meta["tags"])
    config_block = body.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(config_block) == yaml.safe_load((run / "config.yaml").read_text())
    if with_eval:
        result = json.loads((run / "eval" / "eval.json").read_text())
        table = markdown_table({"run": result}, "run")
        assert table in body and "| run | 16 | 0.200 | 0.250 | 0.500 | 0.400 | 0.125 |" in table
    else:
        assert "## Evaluation" not in body
