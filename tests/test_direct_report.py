"""scripts/direct_report.py applies section 12's criteria as written before the runs: each
outcome is reachable from hand-made seeds, and the numbers come from the right evaluations."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import direct_report  # noqa: E402


def row(t, shift_sd=1.0, fell_sig=0, rise=0.0, rise_se=0.05):
    return {"t": t, "shift_sd": shift_sd, "fell_sig": fell_sig, "rise": rise, "rise_se": rise_se}


@pytest.mark.parametrize(
    "rows, verdict",
    [
        ([row(3.5), row(3.0), row(4.2)], "within reach"),
        ([row(3.5), row(2.9), row(4.2)], "not settled"),  # one seed short of 3.0
        ([row(3.5), row(3.5, shift_sd=1.7), row(4.2)], "not settled"),  # not the target's shape
        ([row(3.5), row(3.5, fell_sig=1), row(4.2)], "not settled"),  # a success fell
        ([row(2.0), row(2.36), row(1.5)], "gets no further than TraFL"),
        ([row(2.0), row(2.37), row(1.5)], "not settled"),  # one seed above the plateau + 2 sd
        ([row(2.0), row(2.2, rise=0.2, rise_se=0.05), row(1.5)], "not settled"),  # still rising
        ([row(2.0), row(2.2, rise=0.1, rise_se=0.05), row(1.5)], "gets no further"),  # 2 se
    ],
)
def test_the_criteria_as_written(rows, verdict):
    assert verdict in direct_report.direct_rule(rows)


def write_eval(path: Path, b_hat: float, se: float, shift_sd: float, fell_sig: int) -> None:
    target = {
        "b": 4.0,
        "fit": {"b_hat": b_hat, "se": se},
        "shifts": {"std": shift_sd, "noise_floor_std": 0.5},
        "violations": {"num_fell": fell_sig, "num_significant": fell_sig},
        "predicted": {"b": {"mae": 0.1, "distinct": {"128": 1.6}}},
        "achieved": {"distinct": {"128": 1.6}},
    }
    path.mkdir(parents=True)
    (path / "eval.json").write_text(json.dumps({"lengths": {"16": {"target": target}}}))


def test_the_report_reads_each_seed_from_its_fits(tmp_path, capsys):
    """Seed s: b4 at 2000 is 3.5 + s, at 1600 3.4 + s, b0 at 2000 is 0.2: t = 3.3 + s, rise
    0.1 with se hypot(0.04, 0.03) = 0.05; the ceiling from the fit's folder."""
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "eval.json").write_text(json.dumps({"lengths": {"16": {}}}))
    for s in range(3):
        write_eval(tmp_path / f"direct-b4-s{s}" / "eval-2000", 3.5 + s, 0.04, 1.0, 0)
        write_eval(tmp_path / f"direct-b4-s{s}" / "eval-1600", 3.4 + s, 0.03, 1.0, 0)
        write_eval(tmp_path / f"direct-b0-s{s}" / "eval-2000", 0.2, 0.04, 0.6, 0)
        (tmp_path / f"direct-b4-s{s}" / "ceiling.json").write_text(json.dumps({"b_hat": 3.9}))
    direct_report.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert (
        "| 0 | 3.500 | 0.200 | 3.300 | 3.900 | nan | 1.000 (0.500) | 0 | 0.100 | +0.100 (0.050) |"
        in out
    )
    assert "**within reach" in out
    (tmp_path / "direct-b0-s2" / "eval-2000" / "eval.json").unlink()  # one fit not evaluated
    direct_report.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "| 2 | not evaluated" in out and "not judged: 2 of 3 seeds" in out


def test_committed_report_is_what_the_committed_fits_give(tmp_path, monkeypatch):
    """docs/target/direct/results.md (the verdict TARGET.md section 12 quotes) is what the
    report, as it is now, makes of the committed pack."""
    monkeypatch.chdir(ROOT)  # the report names its input as given
    direct_report.main(["results/target/direct.tgz", "--out", str(tmp_path)])
    want = (ROOT / "docs" / "target" / "direct" / "results.md").read_text()
    assert (tmp_path / "results.md").read_text() == want
