"""scripts/reproduction_report.py: the command its report names is the one that trains at the
runs' budget."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import reproduction_report  # noqa: E402


def write_configs(root: Path, steps: dict[str, int]) -> None:
    for seed in (0, 1):
        for method, n in steps.items():
            (root / f"seed{seed}" / method).mkdir(parents=True, exist_ok=True)
            (root / f"seed{seed}" / method / "config.yaml").write_text(f"steps: {n}\n")


@pytest.mark.parametrize(
    "steps, line",
    [
        ({"trafl": 30, "diffu_grpo": 30, "spg": 30}, "bash scripts/reproduce.sh"),
        (
            {"trafl": 300, "diffu_grpo": 100, "spg": 100},
            "STEPS=300 REUSE_STEPS=100 bash scripts/reproduce.sh",
        ),
        ({"trafl": 30, "diffu_grpo": 100}, "REUSE_STEPS=100 bash scripts/reproduce.sh"),
    ],
)
def test_command_names_the_budget_the_configs_record(tmp_path, steps, line):
    write_configs(tmp_path, steps)
    assert reproduction_report.command(tmp_path) == line


def test_seeds_are_the_seed_folders_in_numeric_order(tmp_path):
    """A parallel reproduction writes its logs beside the folders (seed0.log): the report read
    one as a seed and crashed. Folders only, and seed 10 after seed 2."""
    for seed in (10, 2, 0):
        (tmp_path / f"seed{seed}" / "base").mkdir(parents=True)
        (tmp_path / f"seed{seed}" / "base" / "eval.json").write_text(json.dumps({"seed": seed}))
        (tmp_path / f"seed{seed}.log").write_text("training ...\n")
    assert list(reproduction_report.load(tmp_path)["base"]) == [0, 2, 10]
