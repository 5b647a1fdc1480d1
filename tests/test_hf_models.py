"""The transformers adapters (llada, dream, hf_masked_lm) on tiny random models, offline.

What is checked: the DiffusionLM interface and where special ids come from; attention that is
really bidirectional and blind to padding under eager and sdpa attention (the traps of
docs/ENVIRONMENT.md); Dream's shifted logits realigned; a LLaDA-shaped checkpoint with its own
modeling code; the chat template hook; bf16, gradient checkpointing and 4-bit options; and
sample -> train -> eval through the ordinary entry points.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.hf_fixtures import (
    save_bert,
    save_llada,
    save_llama,
    save_modernbert,
    save_qwen2,
    text_reward,
)
from trafl.commands.eval import EvalConfig, evaluate
from trafl.commands.sample import SampleConfig, run_sample
from trafl.commands.train import TrainConfig, Trainer
from trafl.core.config_files import load_config
from trafl.likelihood.diffusion import masked_token_logp
from trafl.models import (
    DiffusionLM,
    DreamLM,
    LLaDALM,
    LoraConfig,
    MaskedLM,
    ModelConfig,
    infer_type,
    load_model,
)
from trafl.models.base import DenoiserOutput, denoiser_logits
from trafl.sampling import SamplerConfig, generate

KINDS = ["llama", "dream", "modernbert", "bert", "llada_remote"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Models this small gain nothing from a second thread, and on a loaded 2-core machine
    two threads spin-wait (a 2 ms forward took 100 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def hf(tmp_path_factory) -> dict[str, ModelConfig]:
    root = tmp_path_factory.mktemp("hf")
    return {
        "llama": ModelConfig(
            path=str(save_llama(root / "llama", chat_template=True)), type="llada"
        ),
        "dream": ModelConfig(path=str(save_qwen2(root / "qwen2")), type="dream"),
        "modernbert": ModelConfig(path=str(save_modernbert(root / "modernbert"))),
        "bert": ModelConfig(path=str(save_bert(root / "bert"))),
        "llada_remote": ModelConfig(path=str(save_llada(root / "llada")), trust_remote_code=True),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_protocol_special_ids_and_hidden_states(hf, kind):
    model = load_model(hf[kind])
    expected = {
        "llama": LLaDALM,
        "dream": DreamLM,
        "modernbert": MaskedLM,
        "bert": MaskedLM,
        "llada_remote": LLaDALM,
    }[kind]
    assert type(model) is expected and isinstance(model, DiffusionLM)
    tok = model.tokenizer.hf
    config_mask = json.loads(Path(hf[kind].path, "config.json").read_text()).get("mask_token_id")
    if kind == "llada_remote":  # config.json's mask id wins over the tokenizer's <mask>
        assert model.mask_token_id == config_mask == tok.convert_tokens_to_ids("<|mdm_mask|>")
        assert model.mask_token_id != tok.mask_token_id
    else:
        assert model.mask_token_id == tok.mask_token_id
    assert (model.eos_token_id, model.pad_token_id) == (tok.eos_token_id, tok.pad_token_id)
    ids = torch.tensor([model.tokenizer.encode("12+3")])
    out = model(ids, output_hidden_states=True)
    assert out.logits.shape == (1, 4, len(tok))
    assert out.hidden_states.shape == (1, 4, model.hidden_size) and model.hidden_size == 32


CASES = [("llama", "eager"), ("llama", "sdpa"), ("dream", "eager"), ("dream", "sdpa"),
         ("bert", "eager"), ("bert", "sdpa"), ("modernbert", None), ("llada_remote", None)]  # fmt: skip


@pytest.mark.parametrize(("kind", "attn"), CASES)
def test_attention_is_bidirectional_and_blind_to_left_padding(hf, kind, attn):
    """In a left-padded batch: a later token changes an earlier position (not causal), a pad
    token's id changes nothing (padding is masked), and padding does not move real tokens."""
    model = load_model(replace(hf[kind], attn_implementation=attn))
    tok, pads = model.tokenizer, 3
    real = torch.tensor([tok.encode("12+34*5")])  # (1, 7)
    padded = torch.cat([torch.full((1, pads), model.pad_token_id), real], dim=1)
    mask = torch.tensor([[False] * pads + [True] * 7])
    first = 1 if model.shifted else 0  # a shifted model's first real position sees a pad's output

    def logits(ids: torch.Tensor) -> torch.Tensor:
        return model(ids, attention_mask=mask).logits[0, pads:]  # (7, V)

    base = logits(padded)
    later = padded.clone()
    later[0, -1] = tok.encode("9")[0]
    assert (logits(later)[2] - base[2]).abs().max() > 1e-3, "attention is causal"
    other_pads = padded.clone()
    other_pads[0, :pads] = tok.encode("7")[0]
    torch.testing.assert_close(logits(other_pads)[first:], base[first:], atol=1e-5, rtol=1e-5)
    alone = model(real).logits[0]
    torch.testing.assert_close(alone[first:], base[first:], atol=1e-4, rtol=1e-4)


class UnshiftedTwin(nn.Module):
    """The Dream-style model's weights read the unshifted way, written independently of the
    adapter: a bidirectional additive mask, and ``roll`` to move raw i - 1 to position i."""

    def __init__(self, dream: DreamLM) -> None:
        super().__init__()
        self.dream = dream
        self.tokenizer, self.hidden_size = dream.tokenizer, dream.hidden_size
        self.mask_token_id, self.eos_token_id = dream.mask_token_id, dream.eos_token_id
        self.pad_token_id = dream.pad_token_id

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        n, t = input_ids.shape
        keys = (
            torch.ones_like(input_ids, dtype=torch.bool)
            if attention_mask is None
            else attention_mask
        )
        bias = torch.where(keys, 0.0, float("-inf"))[:, None, None, :].expand(n, 1, t, t)
        raw = self.dream.model(input_ids=input_ids, attention_mask=bias).logits
        return DenoiserOutput(logits=raw.roll(1, dims=1))


def test_dream_shift_is_realigned_inside_the_adapter(hf):
    dream = load_model(hf["dream"])
    twin, unshifted = UnshiftedTwin(dream), LLaDALM(dream.model, dream.tokenizer)
    prompts = ["3 7 -> 21:", "12 4 5 -> 17:"]
    cfg = SamplerConfig(gen_length=8, steps=4, temperature=1.0)
    rollout, texts = generate(dream, prompts, cfg, torch.Generator().manual_seed(0))
    twin_rollout, twin_texts = generate(twin, prompts, cfg, torch.Generator().manual_seed(0))
    assert texts == twin_texts
    torch.testing.assert_close(rollout.trajectory.token_logp, twin_rollout.trajectory.token_logp)
    masks = (
        torch.rand(rollout.completion_ids.shape, generator=torch.Generator().manual_seed(1)) < 0.5
    )
    args = (rollout.prompt_ids, rollout.prompt_mask, rollout.completion_ids, masks)
    logp = masked_token_logp(dream, *args) * masks
    torch.testing.assert_close(logp, masked_token_logp(twin, *args) * masks)
    assert not torch.allclose(logp, masked_token_logp(unshifted, *args) * masks)


def test_remote_code_needs_trust_and_loads_offline(hf):
    with pytest.raises(ValueError, match="model.trust_remote_code=true"):
        load_model(replace(hf["llada_remote"], trust_remote_code=False))
    model = load_model(hf["llada_remote"])  # HF_HUB_OFFLINE=1 (conftest)
    assert type(model.model).__name__ == "LLaDAModelLM"
    assert infer_type(hf["llada_remote"].path, {"model_type": "llada"}) == "llada"


def test_type_inference_and_its_errors(hf):
    assert infer_type("GSAI-ML/LLaDA-8B-Instruct", {}) == "llada"
    assert infer_type("Dream-org/Dream-v0-Instruct-7B", {"model_type": "Dream"}) == "dream"
    assert infer_type("x", {"architectures": ["RobertaForMaskedLM"]}) == "hf_masked_lm"
    with pytest.raises(ValueError, match="set model.type; valid: dream, hf_masked_lm, llada"):
        load_model(replace(hf["llama"], type="auto"))  # a Llama could be shifted or not


def test_chat_template_is_applied_to_prompts(hf):
    model = load_model(hf["llama"])
    assert model.tokenizer.decode(model.tokenizer.encode_prompt("1 2 -> 3:")) == (
        "<user>1 2 -> 3:<assistant>"
    )
    plain = load_model(replace(hf["llama"], chat_template=False))
    assert plain.tokenizer.encode_prompt("1 2 -> 3:") == plain.tokenizer.encode("1 2 -> 3:")


def test_response_prefix_follows_the_template(hf):
    """d1's evaluation starts the assistant turn with "<reasoning>" (model.response_prefix)."""
    model = load_model(replace(hf["llama"], response_prefix="12"))
    assert model.tokenizer.decode(model.tokenizer.encode_prompt("1 2 -> 3:")) == (
        "<user>1 2 -> 3:<assistant>12"
    )
    plain = load_model(replace(hf["llama"], chat_template=False, response_prefix="12"))
    assert plain.tokenizer.encode_prompt("3:") == plain.tokenizer.encode("3:12")


def test_bf16_weights_give_float32_log_probabilities(hf):
    model = load_model(replace(hf["llama"], dtype="bfloat16"))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    ids = torch.tensor([model.tokenizer.encode("12+3")])
    logits = denoiser_logits(model, ids, torch.ones_like(ids, dtype=torch.bool))
    assert (
        logits.dtype == torch.float32 and torch.isfinite(logits[..., : model.mask_token_id]).all()
    )


@pytest.mark.parametrize("kind", ["llama", "llada_remote"])
def test_gradient_checkpointing_keeps_the_gradient(hf, kind):
    """transformers' switch (Llama) and LLaDA's own set_activation_checkpointing."""

    def grad(checkpointing: bool) -> torch.Tensor:
        model = load_model(replace(hf[kind], gradient_checkpointing=checkpointing)).train()
        ids = torch.tensor([model.tokenizer.encode("12+34*5")])
        model(ids).logits.square().mean().backward()
        return model.model.get_input_embeddings().weight.grad

    torch.testing.assert_close(grad(True), grad(False))


def test_load_in_4bit_without_a_gpu_is_a_clear_error(hf):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="load_in_4bit needs a CUDA GPU"):
        load_model(replace(hf["llama"], load_in_4bit=True))
    with pytest.raises(ValueError, match="4-bit weights cannot be trained directly"):
        Trainer(
            load_config(
                TrainConfig, None, {"model": {"path": hf["llama"].path, "load_in_4bit": True}}
            )
        )


SMALL = ["rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.sampler.gen_length=8",
         "rollout.sampler.steps=4", "device=cpu", "save_completions_every=0", "steps=2"]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "lora"), [("llama", 0), ("dream", 4), ("modernbert", 4), ("llada_remote", 0)]
)
def test_sample_train_eval(hf, tmp_path, monkeypatch, kind, lora):
    summary = run_sample(
        SampleConfig(
            model=hf[kind],
            num_problems=2,
            num_samples=2,
            sampler=SamplerConfig(gen_length=8, steps=4),
            show=0,
        )
    )
    assert summary["num_problems"] == 2
    cfg = load_config(TrainConfig, None, [*SMALL, f"out_dir={tmp_path / 'run'}"])
    cfg.model = replace(hf[kind], lora=LoraConfig(rank=lora))
    before = {k: v.clone() for k, v in load_model(hf[kind]).state_dict().items()}
    trainer = Trainer(cfg)
    monkeypatch.setattr(trainer.task, "reward", text_reward)
    final = trainer.train()
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["loss"] == r["loss"] for r in rows)
    saved = {p.name for p in final.iterdir()}
    assert ("adapter_model.safetensors" in saved) == bool(lora)
    assert ("config.json" in saved) == (not lora)
    after = load_model(replace(hf[kind], path=str(tmp_path / "run"))).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "nothing trained"
    result = evaluate(
        EvalConfig(
            model=replace(hf[kind], path=str(tmp_path / "run")),
            num_problems=2,
            num_samples=2,
            gen_lengths=[8],
            bootstrap=10,
            heatmap_problems=1,
            device="cpu",
        )
    )
    assert 0 <= result["lengths"]["8"]["mean_reward"] <= 1
