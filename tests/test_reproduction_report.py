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
        ({"trafl": 300, "diffu_grpo": 100, "spg": 100}, "bash scripts/reproduce.sh"),
        (
            {"trafl": 30, "diffu_grpo": 30, "spg": 30},
            "STEPS=30 REUSE_STEPS=30 bash scripts/reproduce.sh",
        ),
        ({"trafl": 300, "diffu_grpo": 30}, "REUSE_STEPS=30 bash scripts/reproduce.sh"),
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


def test_default_steps_are_the_scripts():
    """The command line the report quotes leaves out what reproduce.sh would set by itself."""
    script = (ROOT / "scripts" / "reproduce.sh").read_text()
    for name, steps in reproduction_report.DEFAULT_STEPS.items():
        assert f"\n{name}=${{{name}:-{steps}}}" in script


def test_the_committed_report_is_what_the_committed_pack_makes(tmp_path, monkeypatch):
    """docs/REPRODUCTION.md, byte for byte, is the report of results/reproduction/repro300.tgz:
    no number in it was edited by hand or left from other runs. The report names its input
    and output, so it is made from the same relative paths, in a copy of the layout."""
    from packs import unpacked

    pack = Path("results/reproduction/repro300.tgz")
    monkeypatch.chdir(tmp_path)
    with unpacked(ROOT / pack) as root:
        reproduction_report.report(root, pack, Path("docs/REPRODUCTION.md"))
    committed = ROOT / "docs" / "REPRODUCTION.md"
    made = (tmp_path / "docs/REPRODUCTION.md").read_text(encoding="utf-8")
    assert made == committed.read_text(encoding="utf-8")
    made = (tmp_path / "docs/reproduction_pass_at_k.png").read_bytes()
    shipped = (ROOT / "docs" / "reproduction_pass_at_k.png").read_bytes()
    # matplotlib's bytes may change with its version; the figure's size in pixels (the PNG
    # header's width and height) is set by its layout: one panel per length and a row of
    # differences, at the plot module's dpi
    assert made[:8] == shipped[:8] == b"\x89PNG\r\n\x1a\n"
    assert made[16:24] == shipped[16:24]


def test_a_cut_short_evaluation_is_named_in_one_line(tmp_path):
    """An eval.json cut short (a kill mid-write by an older version, a full disk) is named with
    what to do, not a JSONDecodeError traceback."""
    from trafl.core.errors import UserError

    (tmp_path / "seed0" / "base").mkdir(parents=True)
    (tmp_path / "seed0" / "base" / "eval.json").write_text('{"lengths": {"16": ')
    with pytest.raises(UserError, match=r"seed0/base/eval.json is not a whole eval.json"):
        reproduction_report.load(tmp_path)
