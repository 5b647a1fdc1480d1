"""scripts/packs.py: a pack holds the small result files and nothing else, comes back as the
same folder, and a failed pack leaves the previous one whole."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import packs  # noqa: E402


def results_folder(root: Path) -> dict[str, str]:
    """A study folder: result files that belong in a pack, and weights and logs that do not."""
    small = {
        "base/eval.json": '{"pass": 1}',
        "trafl-b4-s0/config.yaml": "steps: 3\n",
        "trafl-b4-s0/metrics.jsonl": '{"step": 1}\n',
        "trafl-b4-s0/eval-2/eval.json": '{"pass": 2}',
    }
    large = ["trafl-b4-s0/model/model.safetensors", "trafl-b4-s0/checkpoint-2/optimizer.pt"]
    for name, text in small.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for name in large:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"\0" * 64)
    return small


def test_pack_holds_the_result_files_and_unpacks_to_them(tmp_path):
    small = results_folder(tmp_path / "runs")
    archive = tmp_path / "out" / "runs.tgz"
    packs.main([str(tmp_path / "runs"), str(archive)])
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == sorted(small)
    with packs.unpacked(archive) as folder:
        got = {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}
        assert got == small
    assert not folder.exists()  # the temporary folder is gone after the block
    with packs.unpacked(tmp_path / "runs") as folder:  # a folder is read where it is
        assert folder == tmp_path / "runs"


def test_unpack_puts_a_pack_back_and_never_over_a_live_folder(tmp_path):
    """Continuing a study elsewhere: the pack's files come back where they were; unpacked over
    a folder that already holds one of them, it stops before writing anything; with
    ``--missing`` it adds what is not there and keeps what is."""
    small = results_folder(tmp_path / "runs")
    packs.main([str(tmp_path / "runs"), str(tmp_path / "runs.tgz")])
    packs.main(["--unpack", str(tmp_path / "runs.tgz"), str(tmp_path / "again")])
    for name, text in small.items():
        assert (tmp_path / "again" / name).read_text() == text
    live = tmp_path / "again" / "trafl-b4-s0" / "metrics.jsonl"
    live.write_text('{"step": 1}\n{"step": 2}\n')  # the live run went on after the pack
    (tmp_path / "again" / "base" / "eval.json").unlink()
    with pytest.raises(SystemExit, match=r"already there \(3 of the pack.s files are\)"):
        packs.main(["--unpack", str(tmp_path / "runs.tgz"), str(tmp_path / "again")])
    assert live.read_text() == '{"step": 1}\n{"step": 2}\n'
    assert not (tmp_path / "again" / "base" / "eval.json").exists()  # nothing written
    packs.main(["--unpack", "--missing", str(tmp_path / "runs.tgz"), str(tmp_path / "again")])
    assert live.read_text() == '{"step": 1}\n{"step": 2}\n'  # kept
    assert (tmp_path / "again" / "base" / "eval.json").read_text() == small["base/eval.json"]


def test_a_failed_pack_leaves_the_last_one_whole(tmp_path, monkeypatch):
    results_folder(tmp_path / "runs")
    archive = tmp_path / "runs.tgz"
    packs.pack(tmp_path / "runs", archive)
    before = archive.read_bytes()
    (tmp_path / "runs" / "trafl-b4-s1").mkdir()
    (tmp_path / "runs" / "trafl-b4-s1" / "eval.json").write_text("{}")

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "add", full_disk)
    with pytest.raises(OSError, match="No space"):
        packs.pack(tmp_path / "runs", archive)
    assert archive.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "runs.tgz"]  # no partial file


def test_pack_refuses_a_missing_folder_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match="is not a folder"):
        packs.main([str(tmp_path / "nowhere"), str(tmp_path / "x.tgz")])


def test_finished_packs_the_finished_runs_and_leaves_the_others_out(tmp_path, capsys):
    """A study still running, packed at a session's end: the base and the run evaluated at its
    last step go in; a run evaluated part of the way (eval-2 of steps: 3) stays out whole, so
    that, unpacked elsewhere, it is never taken for a finished run."""
    root = tmp_path / "runs"
    small = results_folder(root)  # trafl-b4-s0: steps 3, evaluated at step 2 only
    done = {
        "trafl-b4-s1/config.yaml": "steps: 3\n",
        "trafl-b4-s1/metrics.jsonl": '{"step": 3}\n',
        "trafl-b4-s1/eval-3/eval.json": '{"pass": 3}',
        "trafl-b4-s1/eval-3/log.txt": "evaluated\n",
    }
    for name, text in done.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "eval_config.yaml").write_text("sampler: {}\n")  # a file of the root's own
    archive = tmp_path / "partial.tgz"
    packs.main(["--finished", str(root), str(archive)])
    assert "left out, unfinished: trafl-b4-s0" in capsys.readouterr().out
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == sorted(["base/eval.json", "eval_config.yaml", *done])
    packs.main([str(root), str(tmp_path / "all.tgz")])  # without --finished: everything
    with tarfile.open(tmp_path / "all.tgz") as tar:
        assert sorted(tar.getnames()) == sorted([*small, *done, "eval_config.yaml"])
    with pytest.raises(SystemExit, match="does not go with --unpack"):
        packs.main(["--finished", "--unpack", str(archive), str(tmp_path / "x")])


def test_finished_at_a_given_step_leaves_out_copies_not_yet_continued(tmp_path, capsys):
    """``--extend`` copies a finished run under its continuation's name (config ``steps: 2``,
    evaluated at 2) before training it on to step 3: with ``--steps 3`` the copy is unfinished
    and stays out, the continued run goes in; ``--steps`` alone is refused."""
    root = tmp_path / "runs"
    for run, last in (("copied", 2), ("continued", 3)):
        (root / run / f"eval-{last}").mkdir(parents=True)
        (root / run / "config.yaml").write_text(f"steps: {last}\n")
        (root / run / f"eval-{last}" / "eval.json").write_text("{}")
    packs.main(["--finished", str(root), str(tmp_path / "a.tgz")])  # by their configs: both
    with tarfile.open(tmp_path / "a.tgz") as tar:
        assert {n.split("/")[0] for n in tar.getnames()} == {"copied", "continued"}
    packs.main(["--finished", "--steps", "3", str(root), str(tmp_path / "b.tgz")])
    assert "left out, unfinished: copied" in capsys.readouterr().out
    with tarfile.open(tmp_path / "b.tgz") as tar:
        assert {n.split("/")[0] for n in tar.getnames()} == {"continued"}
    with pytest.raises(SystemExit, match="goes with --finished"):
        packs.main(["--steps", "3", str(root), str(tmp_path / "c.tgz")])


def running_study(root: Path) -> None:
    """A study folder mid-way: a finished run, and one stopped at step 2178 whose scheduled
    checkpoint-2000 is not evaluated yet, beside an evaluated checkpoint-1000 and an older resume
    point (checkpoint-1474, written by a stop signal)."""
    files = {
        "base/eval.json": "{}",
        "done-s0/config.yaml": "steps: 2\nckpt_every: 1\n",
        "done-s0/eval-2/eval.json": "{}",
        "done-s0/checkpoint-2/state.pt": "w",
        "run-s0/config.yaml": "steps: 3000\nckpt_every: 1000\n",
        "run-s0/metrics.jsonl": '{"step": 1}\n',
        "run-s0/log.txt": "log",
        "run-s0/draws.json": '{"sha1": "0187"}\n',
        "run-s0/latest": "checkpoint-2178",
        "run-s0/eval-1000/eval.json": "{}",
        "run-s0/tb/events": "tb",
    }
    for step in (1000, 1474, 2000, 2178):
        files[f"run-s0/checkpoint-{step}/state.pt"] = f"state {step}"
        files[f"run-s0/checkpoint-{step}/model/model.safetensors"] = f"weights {step}"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_resumable_carries_what_resumes_each_unfinished_run_and_nothing_else(tmp_path):
    from trafl.core.layout import latest_checkpoint

    running_study(tmp_path / "runs")
    packs.main(["--resumable", str(tmp_path / "runs"), str(tmp_path / "carry")])
    assert sorted(p.name for p in (tmp_path / "carry").iterdir()) == [
        "run-s0.checkpoint-2000.tgz",  # one checkpoint a file
        "run-s0.tgz",
        "study.tgz",
    ]
    with tarfile.open(tmp_path / "carry" / "study.tgz") as tar:
        assert sorted(tar.getnames()) == ["base/eval.json", "done-s0/config.yaml",
                                          "done-s0/eval-2/eval.json"]  # fmt: skip
    names = []
    for archive in ("run-s0.tgz", "run-s0.checkpoint-2000.tgz"):
        with tarfile.open(tmp_path / "carry" / archive) as tar:
            names += tar.getnames()
            assert len({n.split("/")[1] for n in tar.getnames() if "checkpoint-" in n}) == 1
    names = sorted(names)
    expected = ["run-s0/config.yaml", "run-s0/draws.json", "run-s0/eval-1000/eval.json",
                "run-s0/latest", "run-s0/log.txt", "run-s0/metrics.jsonl"]  # fmt: skip
    for step in (2000, 2178):  # the unevaluated scheduled one and the latest
        expected += [f"run-s0/checkpoint-{step}/model/model.safetensors",
                     f"run-s0/checkpoint-{step}/state.pt"]  # fmt: skip
    assert names == sorted(expected)
    there = tmp_path / "there"
    for archive in ("study.tgz", "run-s0.tgz", "run-s0.checkpoint-2000.tgz"):
        packs.main(["--unpack", str(tmp_path / "carry" / archive), str(there)])
    assert latest_checkpoint(there / "run-s0") == there / "run-s0" / "checkpoint-2178"
    for name in expected:
        assert (there / name).read_bytes() == (tmp_path / "runs" / name).read_bytes()


def test_a_pointer_left_behind_still_carries_the_newest_checkpoint(tmp_path):
    """Killed between a checkpoint's rename and the pointer's update: ``latest`` names 1474
    while 2000 and 2178 are there, and resuming would take 2178; all three travel."""
    running_study(tmp_path / "runs")
    run = tmp_path / "runs" / "run-s0"
    (run / "latest").write_text("checkpoint-1474")
    chosen = [c.name for c in packs.resume_points(run)]
    assert chosen == ["checkpoint-1474", "checkpoint-2000", "checkpoint-2178"]


def test_an_extended_copy_not_yet_trained_travels_with_steps(tmp_path):
    """A run copied by ``target_study.py --extend`` holds its source's config (finished at 2)
    until it trains: without ``--steps`` it counts as finished and its checkpoint would stay
    behind; with the continuation's steps it travels as unfinished."""
    running_study(tmp_path / "runs")
    packs.main(["--resumable", "--steps", "4", str(tmp_path / "runs"), str(tmp_path / "c")])
    with tarfile.open(tmp_path / "c" / "done-s0.tgz") as tar:
        assert "done-s0/checkpoint-2/state.pt" in tar.getnames()
    with tarfile.open(tmp_path / "c" / "study.tgz") as tar:
        assert not any(name.startswith("done-s0/") for name in tar.getnames())


@pytest.mark.parametrize(
    "extra, message",
    [(["--finished"], "goes with --steps only"), (["--missing"], "goes with --steps only")],
)
def test_resumable_refuses_other_options_in_one_line(tmp_path, extra, message):
    running_study(tmp_path / "runs")
    with pytest.raises(SystemExit, match=message):
        packs.main(["--resumable", *extra, str(tmp_path / "runs"), str(tmp_path / "c")])


def test_resumable_into_a_file_is_one_line(tmp_path):
    running_study(tmp_path / "runs")
    (tmp_path / "c").write_text("a file")
    with pytest.raises(SystemExit, match="is a file: --resumable writes into a folder"):
        packs.main(["--resumable", str(tmp_path / "runs"), str(tmp_path / "c")])
