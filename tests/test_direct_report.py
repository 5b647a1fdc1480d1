"""scripts/direct_report.py applies sections 12's and 13's criteria as written before the runs:
each outcome is reachable from hand-made seeds, and the numbers come from the right evaluations."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import direct_report  # noqa: E402


def row(t, shift_sd=1.0, fell_sig=0, rise=0.0, rise_se=0.05, noise_sd=0.5, **b0):
    drift = {"b_hat_b0": 0.0, "b0_shift_sd": 0.5, "b0_noise_sd": 0.5, "b0_fell_sig": 0,
             "b0_distinct": 2.0, "b0_distinct_base": 2.0, **b0}  # fmt: skip
    return {"t": t, "shift_sd": shift_sd, "fell_sig": fell_sig, "rise": rise, "rise_se": rise_se,
            "noise_sd": noise_sd, **drift}  # fmt: skip


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


ANY_ORDER = direct_report.CRITERIA["random"]


@pytest.mark.parametrize(
    "rows, verdict",
    [
        ([row(2.5, 0.75), row(2.43, 0.75), row(3.0, 0.7)], "within reach"),  # 1.5 x 0.5
        ([row(2.5, 0.75), row(2.42, 0.75), row(3.0, 0.7)], "not settled"),  # short of 2.43
        ([row(2.5, 0.75), row(2.5, 0.76), row(3.0, 0.7)], "not settled"),  # wider than 1.5 x
        ([row(2.5, 0.75), row(2.5, 0.75, fell_sig=1), row(3.0, 0.7)], "not settled"),
        ([row(0.9), row(0.98), row(0.5)], "gets no further than TraFL"),
        ([row(0.9), row(0.99), row(0.5)], "not settled"),  # above TraFL's 0.866 + 2 se of t
        ([row(0.9), row(0.98, rise=0.2), row(0.5)], "not settled"),  # still rising
        ([row(0.9), row(0.98, rise=-0.1, rise_se=0.05), row(0.5)], "gets no further"),  # 2 se
        # the b = 0 fit must stay in place, for either verdict
        ([row(2.5, 0.7), row(2.5, 0.7, b_hat_b0=0.25), row(3.0, 0.7)], "within reach"),
        ([row(2.5, 0.7), row(2.5, 0.7, b_hat_b0=-0.26), row(3.0, 0.7)], "drifts"),
        ([row(0.9), row(0.9, b0_shift_sd=0.75), row(0.5)], "gets no further"),  # 1.5 x 0.5
        ([row(0.9), row(0.9, b0_shift_sd=0.76), row(0.5)], "drifts"),
        ([row(0.9), row(0.9, b0_fell_sig=3), row(0.5)], "gets no further"),
        ([row(0.9), row(0.9, b0_fell_sig=4), row(0.5)], "drifts"),
        ([row(0.9), row(0.9, b0_distinct=1.7), row(0.5)], "gets no further"),  # 0.85 x 2.0
        ([row(0.9), row(0.9, b0_distinct=1.69), row(0.5)], "drifts"),
    ],
)
def test_the_any_order_criteria_as_written(rows, verdict):
    assert verdict in direct_report.direct_rule(rows, ANY_ORDER)


def test_section_12_is_judged_without_the_drift_condition():
    """Its criteria were written without one (the b = 0 fit there drifted, as reported)."""
    rows = [row(3.5, 1.0, b_hat_b0=-0.5, b0_fell_sig=6), row(3.0), row(4.2)]
    assert "within reach" in direct_report.direct_rule(rows)


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
    (tmp_path / "base" / "eval_config.yaml").write_text("sampler:\n  remasking: low_confidence\n")
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


def test_the_base_decoding_chooses_the_criteria(tmp_path, capsys):
    """An any-order base: section 13's steps (b = 4 at 500 and 1000) and its drift table; a
    decoding with no criteria written is refused in one line."""
    (tmp_path / "base").mkdir()
    measured = {"coverage_at_k": {"distinct": {"8": 0.9, "128": 1.8}}}  # held at 0.85 x 1.8
    (tmp_path / "base" / "eval.json").write_text(json.dumps({"lengths": {"16": measured}}))
    (tmp_path / "base" / "eval_config.yaml").write_text("sampler:\n  remasking: random\n")
    for s in range(3):
        write_eval(tmp_path / f"direct-b4-s{s}" / "eval-1000", 2.6, 0.04, 0.7, 0)
        write_eval(tmp_path / f"direct-b4-s{s}" / "eval-500", 2.5, 0.03, 0.7, 0)
        write_eval(tmp_path / f"direct-b0-s{s}" / "eval-1000", 0.1 * s, 0.04, 0.9, s + 1)
    direct_report.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "section 13" in out and "| 0 | 2.600 | 0.000 | 2.600 |" in out
    assert "| 2 | 0.200 | 0.900 (0.500) | 3 | 1.600 (1.800) | no |" in out  # 0.9 > 1.5 x 0.5
    assert "**not settled: the b = 0 fit drifts**" in out


def test_the_b0_fit_keeps_the_base_distinct_solutions_as_measured(tmp_path, capsys):
    """Section 13 holds the b = 0 fit's distinct correct solutions against the base's as
    measured (2.0 here), not against the tilt's plug-in prediction at b = 0 (1.6 in every
    fit's eval.json): 1.6 < 0.85 x 2.0 = 1.7 is a drift, every other condition in place."""
    (tmp_path / "base").mkdir()
    measured = {"coverage_at_k": {"distinct": {"128": 2.0}}}
    (tmp_path / "base" / "eval.json").write_text(json.dumps({"lengths": {"16": measured}}))
    (tmp_path / "base" / "eval_config.yaml").write_text("sampler:\n  remasking: random\n")
    for s in range(3):
        write_eval(tmp_path / f"direct-b4-s{s}" / "eval-1000", 0.9, 0.04, 0.7, 0)
        write_eval(tmp_path / f"direct-b4-s{s}" / "eval-500", 0.9, 0.03, 0.7, 0)
        write_eval(tmp_path / f"direct-b0-s{s}" / "eval-1000", 0.0, 0.04, 0.5, 0)
    direct_report.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "| 0 | 0.000 | 0.500 (0.500) | 0 | 1.600 (2.000) | no |" in out
    assert "**not settled: the b = 0 fit drifts**" in out
    (tmp_path / "base" / "eval_config.yaml").write_text("sampler:\n  remasking: top_k\n")
    with pytest.raises(SystemExit, match="no criteria written for remasking=top_k"):
        direct_report.main([str(tmp_path)])


@pytest.mark.parametrize("name", ["direct", "direct-random"])
def test_committed_report_is_what_the_committed_fits_give(name, tmp_path, monkeypatch):
    """docs/target/direct*/results.md (the verdicts TARGET.md sections 12 and 13 quote) is what
    the report, as it is now, makes of the committed pack."""
    monkeypatch.chdir(ROOT)  # the report names its input as given
    direct_report.main([f"results/target/{name}.tgz", "--out", str(tmp_path)])
    want = (ROOT / "docs" / "target" / name / "results.md").read_text()
    assert (tmp_path / "results.md").read_text() == want
