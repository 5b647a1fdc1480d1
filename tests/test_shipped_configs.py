"""Every recipe under configs/ loads into its config class, and the local models it names ship."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trafl.commands.pretrain import PretrainConfig
from trafl.commands.train import TrainConfig
from trafl.core.config_files import load_config

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "configs").glob("*.yaml"))


def test_there_are_recipes():
    names = {p.name for p in RECIPES}
    assert {"train_trafl.yaml", "pretrain_countdown.yaml", "pretrain_tiny_code.yaml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_loads_and_names_a_shipped_or_hub_model(path):
    cls = PretrainConfig if path.name.startswith("pretrain_") else TrainConfig
    cfg = load_config(cls, path)
    if cls is TrainConfig:
        model = cfg.model.path
        if model.startswith("models/"):  # shipped with the repository
            assert (ROOT / model / "config.json").is_file(), f"{path.name}: {model} is not shipped"
        else:  # a hub id (owner/name), loaded on a machine that has it
            assert model.count("/") == 1, f"{path.name}: model {model!r}"


@pytest.mark.parametrize(
    "path", sorted((ROOT / "configs" / "accelerate").glob("*.yaml")), ids=lambda p: p.name
)
def test_accelerate_configs_name_a_distributed_type(path):
    data = yaml.safe_load(path.read_text())
    assert data["distributed_type"] in {"MULTI_CPU", "MULTI_GPU", "FSDP"}
    assert int(data["num_processes"]) >= 1
