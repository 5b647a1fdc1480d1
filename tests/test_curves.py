"""scripts/curves.py: b_hat against step for several studies on one figure."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import curves  # noqa: E402
from packs import unpacked  # noqa: E402


def fitted(root: Path, run: str, step: int) -> float:
    ev = json.loads((root / run / f"eval-{step}" / "eval.json").read_text())
    (length,) = ev["lengths"].values()
    return length["target"]["fit"]["b_hat"]


def test_the_series_are_every_seeds_own_fit_and_the_printed_lines_match(tmp_path, capsys):
    with unpacked(ROOT / "results/target/direct-long.tgz") as root:
        data = curves.series(root, "direct-b4")
        assert list(data) == [1000, 2000, 3000]
        for step, values in data.items():
            assert values == {s: fitted(root, f"direct-b4-s{s}", step) for s in range(3)}
    out = tmp_path / "reach.png"
    spec = f"direct={ROOT / 'results/target/direct-long.tgz'}:direct-b4"
    curves.main([str(out), spec, "--tilt", "4", "--bound", "1.5"])
    printed = capsys.readouterr().out.splitlines()
    mean = sum(data[3000].values()) / 3
    cells = " ".join(f"s{s} {v:.3f}" for s, v in data[3000].items())
    assert f"direct | step 3000 | mean {mean:.3f} | {cells}" in printed
    assert out.stat().st_size > 0


def test_a_seed_missing_a_step_is_a_point_not_part_of_the_mean(tmp_path):
    with unpacked(ROOT / "results/target/random.tgz") as root:
        shutil.copytree(root, tmp_path / "r")
    shutil.rmtree(tmp_path / "r" / "trafl-b4-s2" / "eval-1000")
    data = curves.series(tmp_path / "r", "trafl-b4")
    assert sorted(data[1000]) == [0, 1] and sorted(data[800]) == [0, 1, 2]
    steps, means = curves.mean_line(data)
    assert steps == [200, 400, 600, 800]  # step 1000 is off the line
    assert means[-1] == sum(data[800].values()) / 3
    lines = curves.draw({"x": data}, tmp_path / "x.png", None, None)
    assert any(
        line.startswith("x | step 1000 | mean") and "(seeds 2 of 3: not on the line)" in line
        for line in lines
    )


def test_a_wrong_spec_or_method_says_what_was_wrong(tmp_path):
    with pytest.raises(SystemExit, match="LABEL=ROOT:METHOD"):
        curves.parse_spec("no-label")
    with pytest.raises(SystemExit, match="no evaluated runs of 'direct-b9'.*direct-b4"):
        with unpacked(ROOT / "results/target/direct-long.tgz") as root:
            curves.series(root, "direct-b9")
