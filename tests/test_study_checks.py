"""scripts/study_checks.py: the checks TARGET.md quotes beside its generated reports."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

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
    first = out.strip().splitlines()[0]  # then each seed's b_hat difference
    assert [part.split(" ", 1)[1] for part in first.split(": ", 1)[1].split("; ")] == cells


def test_seeds_at_the_last_step_are_the_committed_per_seed_numbers(capsys):
    """``seeds`` prints, per seed and step, what the committed instrument and direct reports
    say of that seed at the last step: b_hat, shift sd over its noise floor, fell_sig."""
    study_checks.main(["seeds", str(ROOT / "results/target/direct-longer.tgz"), "direct-b4"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == [
        "seed", "step", "pass@1", "pass@max", "distinct", "b_hat", "shift/noise", "fell_sig"
    ]  # fmt: skip
    assert len(lines) == 1 + 3 * 5  # three seeds at steps 1000 to 5000
    report = (ROOT / "docs/target/direct-longer/results.md").read_text().splitlines()
    for seed in range(3):
        row = next(line for line in report if line.startswith(f"| {seed} | "))
        cells = [c.strip() for c in row.strip("|").split("|")]
        sd, noise = (float(x.strip("()")) for x in cells[6].split())
        got = next(line.split() for line in lines if line.startswith(f"{seed} 5000 "))
        assert got[5] == cells[1] and got[7] == cells[7]
        # the report rounds sd and noise to 3 places: the ratio within that rounding
        assert abs(float(got[6]) - sd / noise) <= 0.0005 * (1 + sd / noise) / noise + 0.0005
    # the b = 0 fits, whose falls are not all 0 (fell_sig 2, 1, 1): the drift table's rows
    study_checks.main(["seeds", str(ROOT / "results/target/direct-longer.tgz"), "direct-b0"])
    lines = capsys.readouterr().out.strip().splitlines()
    drift = [line for line in report if line.count("|") == 8 and line[2].isdigit()]
    for seed, row in enumerate(drift):
        cells = [c.strip() for c in row.strip("|").split("|")]
        got = next(line.split() for line in lines if line.startswith(f"{seed} 5000 "))
        assert got[5] == cells[1] and got[7] == cells[3]
    assert [row.split("|")[4].strip() for row in drift] == ["2", "1", "1"]


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


def fit(root: Path, run: str, step: int) -> dict:
    ev = json.loads((root / run / f"eval-{step}" / "eval.json").read_text())
    (length,) = ev["lengths"].values()
    return length["target"]["fit"]


def test_reach_rows_are_the_fits_and_the_rule_reads_them(tmp_path):
    """Section 15's rule on section 9's any-order runs (steps 800 -> 1000): every row is the
    evaluations' own b_hat and se, the rise's se their quadrature; one seed moved past the
    bound leaves it not settled, and every seed past it reads "past the bound"."""
    with unpacked(ROOT / "results/target/random.tgz") as root:
        shutil.copytree(root, tmp_path / "r", ignore=shutil.ignore_patterns("base-heldout"))
    root = tmp_path / "r"
    lines = study_checks.reach(root, "trafl-b4", 1000, 800, 1.5)
    assert lines[-1] == "trafl-b4 at step 1000: stops short: below 1.5 and not moving in every seed"
    for seed, line in zip(range(3), lines[1:4], strict=True):
        end, prior = fit(root, f"trafl-b4-s{seed}", 1000), fit(root, f"trafl-b4-s{seed}", 800)
        cells = line.split()
        assert float(cells[1]) == round(end["b_hat"], 3)
        assert float(cells[3]) == round(end["b_hat"] - prior["b_hat"], 3)
        assert float(cells[4]) == round((end["se"] ** 2 + prior["se"] ** 2) ** 0.5, 3)

    def move(seed: int, b_hat: float) -> None:
        path = root / f"trafl-b4-s{seed}" / "eval-1000" / "eval.json"
        ev = json.loads(path.read_text())
        (length,) = ev["lengths"].values()
        length["target"]["fit"]["b_hat"] = b_hat
        path.write_text(json.dumps(ev))

    prior = fit(root, "trafl-b4-s1", 800)
    se = (fit(root, "trafl-b4-s1", 1000)["se"] ** 2 + prior["se"] ** 2) ** 0.5
    for factor, verdict in ((1.99, "stops short"), (2.01, "not settled"), (-2.01, "not settled")):
        move(1, prior["b_hat"] + factor * se)  # a move either way past twice its se
        assert study_checks.reach(root, "trafl-b4", 1000, 800, 1.5)[-1].split(": ")[1] == verdict
    move(1, 1.6)
    assert study_checks.reach(root, "trafl-b4", 1000, 800, 1.5)[-1].endswith(": not settled")
    move(0, 1.5)
    move(2, 1.7)
    assert study_checks.reach(root, "trafl-b4", 1000, 800, 1.5)[-1].endswith(
        "past the bound 1.5 in every seed"
    )
    assert study_checks.reach(root, "trafl-b4", 1000, 800, 1.8)[-1].endswith(": not settled")
    assert study_checks.reach(root, "trafl-b4", 1000, 800, 1.5, seeds=4)[-1].endswith(
        "not settled (3 of 4 seeds evaluated at both steps)"
    )
    shutil.rmtree(root / "trafl-b4-s2" / "eval-800")
    lines = study_checks.reach(root, "trafl-b4", 1000, 800, 1.5)
    assert lines[-1].endswith("not settled (2 of 3 seeds evaluated at both steps)")


def test_weights_are_compared_by_tensor_not_by_file_bytes(tmp_path, capsys):
    """The same tensors saved with other metadata are equal bit for bit, though the files' bytes
    differ (safetensors writes its metadata map in an order that can change between processes);
    one value moved by one ulp is a difference."""
    import torch
    from safetensors.torch import save_file

    tensors = {"embed.weight": torch.randn(4, 3), "blocks.0.w": torch.randn(3)}
    for name, meta in (("a", {"format": "pt"}), ("b", {"format": "pt", "saved": "elsewhere"})):
        (tmp_path / name).mkdir()
        save_file(tensors, str(tmp_path / name / "model.safetensors"), metadata=meta)
    files = [(tmp_path / n / "model.safetensors").read_bytes() for n in "ab"]
    assert files[0] != files[1]
    study_checks.main(["weights", str(tmp_path / "a"), str(tmp_path / "b")])
    assert capsys.readouterr().out == "2 tensors, max |difference| 0: equal bit for bit\n"
    moved = dict(tensors)
    moved["blocks.0.w"] = torch.nextafter(tensors["blocks.0.w"], torch.full((3,), 9.0))
    (tmp_path / "c").mkdir()
    save_file(moved, str(tmp_path / "c" / "model.safetensors"))
    study_checks.main(["weights", str(tmp_path / "a"), str(tmp_path / "c")])
    assert "1 differ, e.g. blocks.0.w" in capsys.readouterr().out


def fit_of(root: Path, run: str, step: int) -> tuple[float, float]:
    """(b_hat, se) as the evaluation file stores them, read without the report's helpers."""
    ev = json.loads((root / run / f"eval-{step}" / "eval.json").read_text())
    (length,) = ev["lengths"].values()
    return length["target"]["fit"]["b_hat"], length["target"]["fit"]["se"]


def test_pair_across_studies_is_pair_in_one_folder_and_differences_the_fits(tmp_path, capsys):
    """``--b-from`` gives what ``pair`` gives with both runs copied into one folder, even with
    a decoy ``b`` of that name in the first study; each seed's b_hat difference is the two
    stored fits' difference, its se theirs in quadrature; the mean and se over seeds are those
    of the three differences (sample sd / sqrt 3)."""
    drawn, direct = ROOT / "results/target/drawn.tgz", ROOT / "results/target/direct-random.tgz"
    args = ["pair", "trafl-drawn-b4", "direct-b4", "--step", "500"]
    with unpacked(drawn) as a, unpacked(direct) as b:
        shutil.copytree(a, tmp_path / "one")
        shutil.copytree(a, tmp_path / "decoy")
        for seed in range(3):
            shutil.copytree(b / f"direct-b4-s{seed}", tmp_path / "one" / f"direct-b4-s{seed}")
            # the b = 0 fit named as b in the first study: --b-from must not read it
            shutil.copytree(b / f"direct-b0-s{seed}", tmp_path / "decoy" / f"direct-b4-s{seed}")
        fits = [
            (fit_of(a, f"trafl-drawn-b4-s{s}", 500), fit_of(b, f"direct-b4-s{s}", 500))
            for s in range(3)
        ]
    study_checks.main([args[0], str(tmp_path / "decoy"), *args[1:], "--b-from", str(direct)])
    across = capsys.readouterr().out.strip().splitlines()
    study_checks.main([args[0], str(tmp_path / "one"), *args[1:]])
    one = capsys.readouterr().out.strip().splitlines()
    assert across[0] == one[0].replace(":", f" (direct-b4 from {direct}):", 1)
    assert across[1:] == one[1:]
    diffs = []
    for seed, ((x, x_se), (y, y_se)) in enumerate(fits):
        diffs.append(x - y)
        se = (x_se**2 + y_se**2) ** 0.5
        assert across[1 + seed] == (
            f"seed {seed}: b_hat {x:.3f} - {y:.3f} = {x - y:+.3f} (se {se:.3f})"
        )
    mean = sum(diffs) / 3
    se = (sum((d - mean) ** 2 for d in diffs) / 2) ** 0.5 / 3**0.5
    assert across[4] == f"b_hat difference {mean:+.3f} +- {se:.3f} (se over seeds)"


def test_pair_refuses_in_one_line_what_it_cannot_pair():
    """Another base, a step not evaluated by both, a seed or a method missing, a seed twice."""
    drawn = str(ROOT / "results/target/drawn.tgz")
    direct = ["--b-from", str(ROOT / "results/target/direct-random.tgz")]
    cases = [
        (["trafl-b4", "--b-from", str(ROOT / "results/target/study.tgz")], "base is not the base"),
        (["direct-b4", *direct, "--step", "700"], r"step 700: .* both: \[500, 1000\]"),
        (["direct-b4", *direct, "--seeds", "0", "5"], r"no seed \[5\]; seeds: \[0, 1, 2\]"),
        (["direct-b4", *direct, "--seeds", "0", "0"], "each seed once"),
        (["nosuch", *direct], "nosuch: no evaluated run in --b-from"),
    ]
    for extra, message in cases:
        with pytest.raises(SystemExit, match=message):
            study_checks.main(["pair", drawn, "trafl-drawn-b4", *extra])


def test_training_reads_each_seeds_logged_gradients_log_z_and_pace(tmp_path, capsys):
    """Hand-made logs: seed 0 resumed from step 1's checkpoint (the trainer cut its log back to
    step 1, and the times restart), seed 1 stopped before the step asked. Medians, shares past
    the clip (strictly above it, as clip_grad_norm_ scales only then) and the pace follow from
    the rows by hand."""
    run = tmp_path / "m-s0"
    run.mkdir()
    (run / "config.yaml").write_text("optim:\n  grad_clip: 1.0\n")
    rows = [  # (step, time, grad_norm, objective_grad_norm, log_z)
        (1, 10.0, 0.5, 2.0, 0.0), (2, 5.0, 3.0, 0.2, -0.4), (3, 17.0, 1.0, 0.3, 0.2), (4, 29.0, 4.0, 5.0, 0.1),
        (5, 44.0, 7.0, 0.4, 9.9),
    ]  # fmt: skip
    lines = [{"step": 0, "loss_at_ref": 1.0}]  # a line without gradients is not a step's
    lines += [dict(zip(("step", "time", "grad_norm", "objective_grad_norm", "log_z"), r, strict=True))
              for r in rows]  # fmt: skip
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    short = tmp_path / "m-s1"
    shutil.copytree(run, short)
    (short / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines[:3]))
    study_checks.main(["training", str(tmp_path), "m", "--step", "4", "--pace", "2", "4"])
    out = capsys.readouterr().out.strip().splitlines()
    assert out[1].split() == [
        "0",
        "2.000",  # median of 0.5, 3.0, 1.0, 4.0 (step 5 is past --step)
        "0.500",  # 3.0 and 4.0 above 1.0; 1.0 itself is not clipped
        "1.150",  # median of 2.0, 0.2, 0.3, 5.0
        "0.500",  # 2.0 and 5.0
        "+0.100",  # log_z at step 4
        "-0.400",  # step 2's
        "+0.200",
        "12.00",  # (29 - 5) / 2: the resumed step 2's time
    ]
    assert out[2] == "1 not trained to step 4"
    study_checks.main(["training", str(tmp_path), "m", "--step", "4", "--pace", "1", "3"])
    assert capsys.readouterr().out.splitlines()[1].split()[-1] == "nan"  # resumed at step 2
