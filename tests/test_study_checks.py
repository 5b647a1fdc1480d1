"""scripts/study_checks.py: the checks TARGET.md quotes beside its generated reports."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import study_checks  # noqa: E402
from packs import unpacked  # noqa: E402


def test_pair_on_all_seeds_is_the_committed_differences_row(capsys):
    """With every seed, ``pair`` is the "Differences" row that target_report committed."""
    study_checks.main(
        ["pair", str(ROOT / "results/target/study.tgz"), "trafl-temp1.3-b8", "trafl-b8"]
    )
    out = capsys.readouterr().out
    row = next(
        line
        for line in (ROOT / "docs/target/results.md").read_text().splitlines()
        if line.startswith("| trafl-temp1.3-b8 - trafl-b8 | 3 |")
    )
    cells = [c.strip() for c in row.strip("|").split("|")][2:]
    assert [part.split(" ", 1)[1] for part in out.strip().split(": ", 1)[1].split("; ")] == cells


def unpack_run(tmp_path: Path, name: str, run: str) -> Path:
    with unpacked(ROOT / "results/target/direct-long.tgz") as root:
        shutil.copytree(root / run, tmp_path / name / run)
    return tmp_path / name


def test_same_ignores_paths_and_times_and_sees_a_changed_count(tmp_path, capsys):
    first = unpack_run(tmp_path, "a", "direct-b4-s2")
    second = tmp_path / "b"
    shutil.copytree(first, second)
    path = second / "direct-b4-s2" / "eval-1000" / "eval.json"
    ev = json.loads(path.read_text())
    ev["model"], ev["seconds"] = "elsewhere/model", ev["seconds"] + 1.0
    path.write_text(json.dumps(ev))
    assert all(
        "DIFFER" not in line for line in study_checks.same(first, second, "direct-b4-s2", 1000)
    )
    (length,) = ev["lengths"].values()
    length["correct_counts"][0] += 1
    path.write_text(json.dumps(ev))
    lines = study_checks.same(first, second, "direct-b4-s2", 1000)
    assert "correct_counts: DIFFER" in lines and "solution_counts: equal" in lines
