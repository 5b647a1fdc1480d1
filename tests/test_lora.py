"""LoRA: the reference is the adapter-disabled policy, only the adapter trains and is saved,
resume is exact, ``trafl export`` merges; and the ``model`` config section around it."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import make_tiny
from tests.hf_fixtures import save_llada, save_llama, text_reward
from trafl.commands.cli import main
from trafl.commands.train import TrainConfig, Trainer
from trafl.core.config_files import load_config, load_saved_config, save_config
from trafl.models import LoraConfig, ModelConfig, add_lora, is_lora, load_model
from trafl.models.lora import linear_targets
from trafl.run.reference import AdapterDisabled

SMALL = ["rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.sampler.gen_length=8",
         "rollout.sampler.steps=4", "device=cpu", "save_completions_every=0", "optim.lr=0.05"]  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see tests/test_hf_models.py
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, ModelConfig]:
    root = tmp_path_factory.mktemp("bases")
    make_tiny(seed=3).save_pretrained(root / "tiny")
    return {
        "tiny": ModelConfig(path=str(root / "tiny")),
        "llama": ModelConfig(path=str(save_llama(root / "llama")), type="llada"),
        "llada_remote": ModelConfig(path=str(save_llada(root / "llada")), trust_remote_code=True),
    }


def trainer(base: ModelConfig, out: Path, *extra: str, rank: int = 4) -> Trainer:
    cfg = load_config(TrainConfig, None, [*SMALL, f"out_dir={out}", *extra])
    cfg.model = replace(base, lora=LoraConfig(rank=rank, dropout=0.0))
    t = Trainer(cfg)
    t.task.reward = text_reward
    return t


def logits(model, text: str = "3 7 12 -> 25:1+2") -> torch.Tensor:
    ids = torch.tensor([model.tokenizer.encode(text)])
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("kind", ["tiny", "llama"])
def test_reference_is_the_base_and_stays_put_while_the_policy_moves(bases, tmp_path, kind):
    t = trainer(bases[kind], tmp_path, "steps=2", "ckpt_every=0")
    base = load_model(bases[kind]).eval()
    assert is_lora(t.policy) and isinstance(t.reference, AdapterDisabled)
    assert t.reference.policy is t.policy  # no second copy of the weights
    trainable = {id(p) for p in t.policy.parameters() if p.requires_grad}
    optimised = {id(p) for g in t.optimizer.param_groups for p in g["params"]}
    assert trainable <= optimised and all(
        "lora_" in n for n, p in t.policy.named_parameters() if p.requires_grad
    )
    t.policy.eval()
    torch.testing.assert_close(logits(t.reference), logits(base), atol=0, rtol=0)
    torch.testing.assert_close(logits(t.policy), logits(base), atol=0, rtol=0)  # B = 0
    t.train()
    t.policy.eval()
    assert not torch.allclose(logits(t.policy), logits(base), atol=1e-4), "the policy did not move"
    torch.testing.assert_close(logits(t.reference), logits(base), atol=0, rtol=0)


@pytest.mark.parametrize("kind", ["tiny", "llada_remote"])
def test_adapter_only_checkpoints_resume_exactly_and_export_merges(bases, tmp_path, kind):
    full = trainer(bases[kind], tmp_path / "full", "steps=4", "ckpt_every=2")
    full.train()
    ckpt = {p.name for p in (tmp_path / "full" / "checkpoint-4" / "model").iterdir()}
    assert {"adapter_model.safetensors", "trafl_base_model.json"} <= ckpt
    assert not ckpt & {"model.safetensors", "config.json"}, "a checkpoint holds the full model"

    trainer(bases[kind], tmp_path / "split", "steps=2", "ckpt_every=2").train()
    resumed = trainer(bases[kind], tmp_path / "split", "steps=4", "ckpt_every=2", "resume=true")
    resumed.train()
    a, b = full.policy.state_dict(), resumed.policy.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)

    extra = ["model.trust_remote_code=true"] if bases[kind].trust_remote_code else []
    main(["export", str(tmp_path / "full"), str(tmp_path / "exported"), *extra])
    exported = {p.name for p in (tmp_path / "exported").iterdir()}
    assert "config.json" in exported and "adapter_config.json" not in exported
    merged = load_model(replace(bases[kind], path=str(tmp_path / "exported"))).eval()
    full.policy.eval()
    assert_merged_within_float32_rounding(full.policy, merged)
    # The exported model computes what the policy computes with those merged weights (and B = 0):
    # the same operations on the same numbers, so bit for bit.
    same = copy.deepcopy(full.policy)
    with torch.no_grad():
        for name, layer in lora_layers(same):
            layer.base_layer.weight.copy_(merged.state_dict()[f"{name}.weight"])
            layer.lora_B["default"].weight.zero_()
    torch.testing.assert_close(logits(merged), logits(same), atol=0, rtol=0)


def lora_layers(policy) -> list[tuple[str, torch.nn.Module]]:
    """(name in the unwrapped model, peft LoRA layer) for every adapted linear layer."""
    prefix = "base_model.model."
    return [
        (n.removeprefix(prefix), m)
        for n, m in policy.named_modules()
        if hasattr(m, "lora_A") and "default" in m.lora_A
    ]


def assert_merged_within_float32_rounding(policy, merged) -> None:
    """Each merged weight W' = fl(W + fl(fl(B A) s)) against W + s B A in float64. Float32 with
    unit roundoff u = 2^-24 bounds the error elementwise (Higham, Accuracy and Stability, 3.5):
    the rank-r product by s gamma_r |B||A| with gamma_r = r u / (1 - r u), the scaling by
    u s |B||A| (1 + gamma_r), the sum by u |W'| / (1 - u)."""
    u = 2.0**-24
    weights = merged.state_dict()
    layers = lora_layers(policy)
    assert layers, "no LoRA layer found in the policy"
    for name, layer in layers:
        w = layer.base_layer.weight.double()  # out x in
        a, b = layer.lora_A["default"].weight.double(), layer.lora_B["default"].weight.double()
        s, r = layer.scaling["default"], a.shape[0]
        gamma = r * u / (1 - r * u)
        exact = w + s * (b @ a)  # out x in
        got = weights[f"{name}.weight"].double()
        abs_ba = b.abs() @ a.abs()  # out x in
        bound = s * gamma * abs_ba + u * s * abs_ba * (1 + gamma) + u * got.abs() / (1 - u)
        excess = ((got - exact).abs() - bound).max().item()
        assert excess <= 0, f"{name}: merged weight off by {excess:.3g} beyond float32 rounding"


def test_all_linear_targets_skip_the_output_head(bases):
    tiny = load_model(bases["tiny"])
    assert "lm_head" not in linear_targets(tiny) and "blocks.0.qkv" in linear_targets(tiny)
    llama = load_model(bases["llama"])
    targets = linear_targets(llama)
    assert "model.lm_head" not in targets and "model.model.layers.0.self_attn.q_proj" in targets
    wrapped = add_lora(load_model(bases["llama"]), LoraConfig(rank=2, target_modules=["q_proj"]))
    names = [n for n, _ in wrapped.named_parameters() if "lora_A" in n]
    assert len(names) == 2 and all("q_proj" in n for n in names)
    with pytest.raises(ValueError, match="model.lora.target_modules"):
        add_lora(load_model(bases["tiny"]), LoraConfig(rank=2, target_modules=["nope"]))
    with pytest.raises(ValueError, match="lora.rank must be >= 0"):
        LoraConfig(rank=-1)


def test_model_section_shorthand_merges_with_a_recipe(tmp_path):
    assert load_config(TrainConfig, None, ["model=some/where"]).model.path == "some/where"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"model": {"path": "org/base", "lora": {"rank": 8}}}))
    cfg = load_config(TrainConfig, recipe, ["model=local/copy", "model.dtype=bfloat16"])
    assert (cfg.model.path, cfg.model.lora.rank, cfg.model.dtype) == ("local/copy", 8, "bfloat16")
    recipe.write_text("model: models/countdown-base\n")  # old-style YAML still loads
    assert load_config(TrainConfig, recipe, ["model.lora.rank=2"]).model.lora.rank == 2
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_saved_config(TrainConfig, tmp_path / "saved.yaml") == cfg
    assert TrainConfig(model="x").model == ModelConfig(path="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model.dtype.*valid: 'auto', 'float32'"):
        load_config(TrainConfig, None, ["model.dtype=fp8"])
