"""scripts/direct_report.py applies sections 12, 13, 14 and 16's criteria as written before the runs:
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
             "b0_distinct": 2.0, "b0_distinct_base": 2.0, "b0_rise": 0.0, "b0_rise_se": 0.05,
             **b0}  # fmt: skip
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


ANY_ORDER = direct_report.CRITERIA[("random", 1000)]
LONGER = direct_report.CRITERIA[("random", 3000)]


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


@pytest.mark.parametrize(
    "rows, verdict",
    [
        ([row(2.5, 0.75), row(2.43, 0.75), row(3.0, 0.7)], "within reach"),  # as section 13
        ([row(2.5, 0.75), row(2.5, 0.76), row(3.0, 0.7)], "not settled"),  # wider than 1.5 x
        ([row(2.5, 0.75), row(2.5, 0.75, fell_sig=1), row(3.0, 0.7)], "not settled"),
        ([row(2.4), row(2.42), row(1.9)], "stops short of halfway"),  # all below 2.43, flat
        ([row(2.4), row(2.43), row(1.9)], "not settled"),  # one seed at 2.43, not its shape
        ([row(2.4), row(2.42, rise=0.11, rise_se=0.05), row(1.9)], "not settled"),  # rising
        ([row(2.4), row(2.42, rise=-0.1, rise_se=0.05), row(1.9)], "stops short"),  # 2 se
        # the b = 0 fit may sit at an offset up to 0.5, if it has stopped moving
        ([row(2.5, 0.7), row(2.5, 0.7, b_hat_b0=-0.5), row(3.0, 0.7)], "within reach"),
        ([row(2.5, 0.7), row(2.5, 0.7, b_hat_b0=-0.51), row(3.0, 0.7)], "drifts"),
        # stopped moving: the seeds' mean move within 2 x its se, sqrt(3 x 0.05^2) / 3 = 0.0289
        ([row(2.4, b0_rise=-0.057), row(2.4, b0_rise=-0.057), row(1.9, b0_rise=-0.057)], "short"),
        ([row(2.4, b0_rise=-0.058), row(2.4, b0_rise=-0.058), row(1.9, b0_rise=-0.058)], "drifts"),
        ([row(2.4), row(2.4, b0_rise=-0.17), row(1.9)], "stops short"),  # one seed: mean -0.057
        ([row(2.4), row(2.4, b0_shift_sd=0.76), row(1.9)], "drifts"),  # 1.5 x 0.5
        ([row(2.4), row(2.4, b0_fell_sig=4), row(1.9)], "drifts"),
        ([row(2.4), row(2.4, b0_distinct=1.69), row(1.9)], "drifts"),  # 0.85 x 2.0
    ],
)
def test_the_longer_any_order_criteria_as_written(rows, verdict):
    assert verdict in direct_report.direct_rule(rows, LONGER)


def test_section_13_does_not_read_the_b0_move():
    """Its criteria were written without the flatness of the b = 0 fit."""
    rows = [row(2.5, 0.7), row(2.5, 0.7, b0_rise=-0.2, b0_rise_se=0.05), row(3.0, 0.7)]
    assert "within reach" in direct_report.direct_rule(rows, ANY_ORDER)


def test_section_12_is_judged_without_the_drift_condition():
    """Its criteria were written without one (the b = 0 fit there drifted, as reported)."""
    rows = [row(3.5, 1.0, b_hat_b0=-0.5, b0_fell_sig=6), row(3.0), row(4.2)]
    assert "within reach" in direct_report.direct_rule(rows)


def write_eval(
    path: Path, b_hat: float, se: float, shift_sd: float, fell_sig: int, fresh: bool = True
) -> None:
    target = {
        "b": 4.0,
        "fit": {"b_hat": b_hat, "se": se},
        "shifts": {"std": shift_sd, "noise_floor_std": 0.5},
        "violations": {"num_fell": fell_sig, "num_significant": fell_sig},
        "predicted": {"b": {"mae": 0.1, "distinct": {"128": 1.6}}},
        "achieved": {"distinct": {"128": 1.6}},
    }
    path.mkdir(parents=True, exist_ok=not fresh)
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


def test_the_fits_steps_choose_section_14(tmp_path, capsys):
    """Any-order fits saved with 3000 steps: section 14, read at 3000 against 2000, the b = 0
    fit too (its move a column of the drift table, the seeds' mean move -0.087 past twice its se
    0.029 = sqrt(3) x 0.05 / 3; at -0.04 settled, and t 2.6 >= 2.43 within reach); a seed whose b = 0 fit lacks step 2000 is
    not judged; steps with no criteria written are refused in one line."""
    (tmp_path / "base").mkdir()
    measured = {"coverage_at_k": {"distinct": {"128": 1.6}}}
    (tmp_path / "base" / "eval.json").write_text(json.dumps({"lengths": {"16": measured}}))
    (tmp_path / "base" / "eval_config.yaml").write_text("sampler:\n  remasking: random\n")
    for s in range(3):
        for tilt in ("b4", "b0"):
            (tmp_path / f"direct-{tilt}-s{s}").mkdir()
            (tmp_path / f"direct-{tilt}-s{s}" / "config.yaml").write_text("steps: 3000\n")
        write_eval(tmp_path / f"direct-b4-s{s}" / "eval-3000", 2.2, 0.04, 0.7, 0)
        write_eval(tmp_path / f"direct-b4-s{s}" / "eval-2000", 2.15, 0.03, 0.7, 0)
        write_eval(tmp_path / f"direct-b0-s{s}" / "eval-3000", -0.4, 0.04, 0.5, 0)
        write_eval(
            tmp_path / f"direct-b0-s{s}" / "eval-2000", (-0.33, -0.32, -0.29)[s], 0.03, 0.5, 0
        )
    direct_report.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "section 14" in out and "| 0 | 2.200 | -0.400 | 2.600 |" in out
    assert "| 1 | -0.400 | 0.500 (0.500) | 0 | 1.600 (1.600) | -0.080 (0.050) | yes |" in out
    assert "| 2 | -0.400 | 0.500 (0.500) | 0 | 1.600 (1.600) | -0.110 (0.050) | yes |" in out
    assert "seeds: -0.087 (0.029): still moving." in out  # the mean move past 2 x its se
    assert "**not settled: the b = 0 fit drifts**" in out
    for s in range(3):  # the b = 0 fit at -0.36 at step 2000 in every seed: mean move -0.04
        write_eval(tmp_path / f"direct-b0-s{s}" / "eval-2000", -0.36, 0.03, 0.5, 0, fresh=False)
    direct_report.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "seeds: -0.040 (0.029): settled." in out
    assert "**within reach: halfway in 3000 steps, in the target's shape**" in out
    (tmp_path / "direct-b0-s1" / "eval-2000" / "eval.json").unlink()
    direct_report.main([str(tmp_path)])
    assert "| 1 | not evaluated at steps 2000 and 3000" in capsys.readouterr().out
    for path in tmp_path.glob("direct-*/config.yaml"):
        path.write_text("steps: 2500\n")
    with pytest.raises(SystemExit, match="no criteria written for remasking=random with 2500"):
        direct_report.main([str(tmp_path)])


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


@pytest.mark.parametrize("name", ["direct", "direct-random", "direct-long", "direct-longer"])
def test_committed_report_is_what_the_committed_fits_give(name, tmp_path, monkeypatch):
    """docs/target/direct*/results.md (the verdicts TARGET.md sections 12 to 16 quote) is what
    the report, as it is now, makes of the committed pack."""
    monkeypatch.chdir(ROOT)  # the report names its input as given
    direct_report.main([f"results/target/{name}.tgz", "--out", str(tmp_path)])
    want = (ROOT / "docs" / "target" / name / "results.md").read_text()
    assert (tmp_path / "results.md").read_text() == want


def test_the_fits_steps_choose_section_16(tmp_path, capsys):
    """Fits continued to 5000 steps: section 14's criteria read at 5000 against 4000 (section
    16). The b = 0 fit at -0.4 (within section 14's 0.5, past section 13's 0.25) has stopped
    (its seeds' mean move 0.05 within twice its se, 2 x 0.071 / sqrt(3) = 0.082);
    t = 2.2 + 0.4 = 2.6 is within reach; t = 1.9 + 0.4 = 2.3 < 2.43, every rise 0.05 within twice
    its se (0.141), stops short; one seed rising 0.15 past it is not settled; the evaluations
    at 3000 (9.0) are not read."""
    (tmp_path / "base").mkdir()
    measured = {"coverage_at_k": {"distinct": {"128": 1.6}}}
    (tmp_path / "base" / "eval.json").write_text(json.dumps({"lengths": {"16": measured}}))
    (tmp_path / "base" / "eval_config.yaml").write_text("sampler:\n  remasking: random\n")

    def fits(b4: float, fresh: bool) -> None:
        for s in range(3):
            for tilt, end in (("b4", b4), ("b0", -0.4)):
                folder = tmp_path / f"direct-{tilt}-s{s}"
                folder.mkdir(exist_ok=not fresh)
                (folder / "config.yaml").write_text("steps: 5000\n")
                write_eval(folder / "eval-5000", end, 0.05, 0.5, 0, fresh)
                write_eval(folder / "eval-4000", end - 0.05, 0.05, 0.5, 0, fresh)
                write_eval(folder / "eval-3000", 9.0, 0.05, 0.5, 0, fresh)

    fits(2.2, fresh=True)
    direct_report.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "section 16" in out and "| 0 | 2.200 | -0.400 | 2.600 |" in out
    assert "+0.050 (0.071) |" in out and "from step 4000 to 5000" in out
    assert "**within reach: halfway in 5000 steps, in the target's shape**" in out
    fits(1.9, fresh=False)
    direct_report.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "| 0 | 1.900 | -0.400 | 2.300 |" in out
    assert "**the direct fit stops short of halfway**" in out
    write_eval(tmp_path / "direct-b4-s2" / "eval-4000", 1.75, 0.05, 0.5, 0, fresh=False)
    direct_report.main([str(tmp_path)])
    assert "**not settled**" in capsys.readouterr().out


def test_the_conditions_name_the_seeds_each_holds_in():
    """A "not settled" says which condition failed where: seed 0 reaches 2.43, has the shape
    (shift sd 0.75 <= 1.5 x 0.5) and is flat (0.1 <= 2 x 0.05); seed 1 is short and still
    rising (0.11 > 0.1); seed 2 reaches it, spread past the shape (0.76 > 0.75), flat at 2 se
    exactly (-0.1)."""
    rows = [
        {"seed": 0, **row(2.43, shift_sd=0.75, rise=0.1)},
        {"seed": 1, **row(2.42, shift_sd=0.75, rise=0.11)},
        {"seed": 2, **row(2.5, shift_sd=0.76, rise=-0.1)},
    ]
    line = direct_report.conditions(rows, direct_report.CRITERIA[("random", 5000)])
    assert line == (
        "The b = 4 fit, condition by condition: t >= 2.43 in seeds 0, 2 (not 1); the target's "
        "shape in seeds 0, 1 (not 2); the rise within twice its se in seeds 0, 2 (not 1)."
    )
    rows[1]["fell_sig"] = 1
    rows[2]["shift_sd"] = 0.75
    line = direct_report.conditions(rows, direct_report.CRITERIA[("random", 1000)])
    assert "the target's shape in seeds 0, 2 (not 1); t <= 0.98 in no seed;" in line
    rows[1]["t"] = 2.43
    assert "t >= 2.43 in every seed;" in direct_report.conditions(
        rows, direct_report.CRITERIA[("random", 1000)]
    )
