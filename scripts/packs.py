"""Result packs: the small result files of a study folder (no weights) in one tar.gz, and the
folder back from one; the committed ``results/`` archives that the docs' reports are made from.

    python scripts/packs.py runs/repro300 results/reproduction/repro300.tgz
    python scripts/packs.py --unpack results/reproduction/repro300.tgz runs/repro300

The second puts a pack's files back to continue the study on another machine or in a later
session: a finished stage is reused from its result files (``trafl demo``, the studies' scripts),
so only unfinished work is done again. It refuses to write over a file that is already there
(an older pack over a live folder would replace newer logs); ``--missing`` adds only the
files that are not there (e.g. a pack's evaluations beside runs trained again from it:
scripts/rerun.py).

    python scripts/packs.py --finished --steps 2400 runs/quiet results/target/quiet-partial.tgz

packs a study that is still running: its folders that are not runs (the base's evaluation) and
its finished runs only, those whose evaluation at their last step (``eval-<steps>``, ``steps``
from the run's config.yaml, or ``--steps``) is there, so that a replaced machine loses only
unfinished work and no half-evaluated run is ever taken for a finished one. ``--steps`` is for
studies whose runs continue finished runs copied under their own names (``target_study.py
--extend``): until it trains, such a copy is the finished run it continues, config and all.

    python scripts/packs.py --resumable runs/random-long /tmp/carry

moves a study that is still running to another machine (a GPU's): ``study.tgz``, the pack of
its finished part as ``--finished`` makes it (``--steps`` as there), and for each unfinished run
its result files, its ``latest`` pointer, its latest checkpoint (and any newer) and each
checkpoint of its schedule not yet evaluated, one checkpoint a file (``RUN.tgz`` with the
newest, ``RUN.checkpoint-N.tgz``: about 14 MiB each for the shipped base); older resume points
and TensorBoard files stay behind. Unpack each with ``--unpack`` into a new study folder there and
run the same study command: the runs resume. To bring them back, move the old folder aside
first: its files are older than the ones coming back (``--missing`` would keep them).

``pack`` writes beside the destination and renames, so a kill or a full disk leaves the last
complete pack in place, never half of one.
"""

from __future__ import annotations

import argparse
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from trafl.core.layout import checkpoints, latest_checkpoint, scheduled_checkpoints

# draws.json: the sha1 that a run on filed rows pinned (a resume on other bytes is refused)
NAMES = ("eval.json", "metrics.jsonl", "config.yaml", "log.txt", "eval_config.yaml", "ceiling.json",
         "draws.json")  # fmt: skip


def pack(root: Path, dest: Path, keep: Callable[[Path], bool] = lambda folder: True) -> None:
    """Every file under ``root`` named in NAMES into the tar.gz ``dest``, paths relative to root;
    of ``root``'s folders only those that ``keep`` holds (:func:`finished`: no unfinished run)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    files = []
    for path in sorted(root.rglob("*")):
        top = root / path.relative_to(root).parts[0]
        if path.is_file() and path.name in NAMES and (top == path or keep(top)):
            files.append(path)
    tar_files(root, files, dest)


def finished(folder: Path, steps: int | None = None) -> bool:
    """Not a run (no config.yaml with ``steps``: e.g. the base's evaluation), or a run whose
    evaluation at its last step (its config's ``steps``, or ``steps`` where given) is there."""
    config = folder / "config.yaml"
    saved = (yaml.safe_load(config.read_text()) or {}) if config.is_file() else {}
    if "steps" not in saved:
        return True
    last = steps or saved["steps"]
    return (folder / f"eval-{last}" / "eval.json").is_file()


def resume_points(run: Path) -> list[Path]:
    """The checkpoints another machine needs to go on with ``run``: the one ``latest`` names and
    any newer (a kill between a checkpoint's rename and the pointer's update leaves the pointer
    behind; resuming takes the newest that verifies), and each checkpoint of its schedule
    (``ckpt_every`` and ``steps`` in its config.yaml) whose evaluation is not there yet."""
    saved = yaml.safe_load((run / "config.yaml").read_text()) or {}
    every, steps = int(saved.get("ckpt_every") or 0), int(saved["steps"])
    latest = latest_checkpoint(run)
    newest = int(latest.name.split("-")[1]) if latest else steps + 1
    due = {c for step, c in scheduled_checkpoints(run, every, steps)
           if not (run / f"eval-{step}" / "eval.json").is_file()}  # fmt: skip
    return [c for c in checkpoints(run) if c in due or int(c.name.split("-")[1]) >= newest]


def pack_resumable(root: Path, dest: Path, steps: int | None = None) -> list[Path]:
    """``--resumable``: ``dest/study.tgz`` (the finished part) and, for each unfinished run
    (``steps``: as for ``--finished``), ``dest/RUN.tgz`` (its result files, ``latest`` and its
    newest resume point) and one ``dest/RUN.checkpoint-N.tgz`` for each other checkpoint it
    needs, so that no file holds two checkpoints' weights. Returns the files written. Which
    runs are unfinished is decided once, so a run finishing meanwhile is in one of the two."""
    dest.mkdir(parents=True, exist_ok=True)
    unfinished = sorted(f for f in root.iterdir() if f.is_dir() and not finished(f, steps))
    pack(root, dest / "study.tgz", lambda folder: folder not in unfinished)
    written = [dest / "study.tgz"]
    for run in unfinished:
        files = [f for f in sorted(run.rglob("*")) if f.is_file() and f.name in NAMES]
        files += [run / "latest"] if (run / "latest").is_file() else []
        points = resume_points(run)
        if points:
            files += every_file(points[-1])
        written.append(tar_files(root, files, dest / f"{run.name}.tgz"))
        for ckpt in points[:-1]:
            written.append(tar_files(root, every_file(ckpt), dest / f"{run.name}.{ckpt.name}.tgz"))
    return written


def every_file(folder: Path) -> list[Path]:
    return [f for f in sorted(folder.rglob("*")) if f.is_file()]


def tar_files(root: Path, files: list[Path], out: Path) -> Path:
    """``files`` (paths relative to ``root``) into the tar.gz ``out``, written beside and renamed."""
    partial = out.with_name(out.name + ".partial")
    try:
        with tarfile.open(partial, "w:gz") as tar:
            for f in files:
                tar.add(f, arcname=str(f.relative_to(root)))
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def unpack(archive: Path, dest: Path, existing: str = "overwrite") -> None:
    """A pack's files into ``dest`` (no path outside it: tarfile's ``data`` filter). A file
    already there is overwritten (``existing="overwrite"``), kept (``"keep"``: only the missing
    files are written), or stops the unpacking before anything is written (``"refuse"``)."""
    if existing not in ("overwrite", "keep", "refuse"):
        raise ValueError(f"existing={existing!r}: one of overwrite, keep, refuse")
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        there = [m.name for m in members if m.isfile() and (dest / m.name.lstrip("/")).exists()]
        if there and existing == "refuse":
            raise FileExistsError(
                f"{dest / there[0]} is already there ({len(there)} of the pack's files are): "
                "unpack into a new folder, or with --missing to add only what is not there"
            )
        if existing == "keep":
            members = [m for m in members if m.name not in there]
        tar.extractall(dest, members=members, filter="data")


@contextmanager
def unpacked(path: Path) -> Iterator[Path]:
    """A results folder as it is, or a pack unpacked into a temporary folder for the block."""
    if not path.is_file():
        yield path
        return
    with tempfile.TemporaryDirectory() as tmp:
        unpack(path, Path(tmp))
        yield Path(tmp)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path, help="a results folder (e.g. runs/repro300)")
    p.add_argument("dest", type=Path, help="the tar.gz to write")
    p.add_argument("--unpack", action="store_true", help="ROOT is a pack: its files into DEST")
    p.add_argument(
        "--missing", action="store_true", help="with --unpack: only the files DEST does not hold"
    )
    p.add_argument(
        "--finished", action="store_true", help="pack the finished runs only (and the rest)"
    )
    p.add_argument("--steps", type=int, help="with --finished: a run is finished at this step")
    p.add_argument(
        "--resumable",
        action="store_true",
        help="DEST is a folder: the finished part, and each unfinished run with what resumes it",
    )
    args = p.parse_args(argv)
    if args.resumable:
        if args.unpack or args.finished or args.missing:
            raise SystemExit("--resumable writes its own packs; it goes with --steps only")
        if not args.root.is_dir():
            raise SystemExit(f"{args.root} is not a folder: give the study folder to pack")
        if args.dest.exists() and not args.dest.is_dir():
            raise SystemExit(f"{args.dest} is a file: --resumable writes into a folder")
        for path in pack_resumable(args.root, args.dest, args.steps):
            print(f"{path} {path.stat().st_size / 2**20:.1f} MiB")
        return
    if args.unpack and args.finished:
        raise SystemExit("--finished packs a study folder; it does not go with --unpack")
    if args.steps is not None and not args.finished:
        raise SystemExit("--steps says when a run is finished; it goes with --finished")
    if args.unpack:
        if not args.root.is_file():
            raise SystemExit(f"{args.root} is not a file: give the pack to unpack")
        try:
            unpack(args.root, args.dest, existing="keep" if args.missing else "refuse")
        except FileExistsError as err:
            raise SystemExit(str(err)) from None
        print(f"unpacked {args.root} into {args.dest}")
        return
    if not args.root.is_dir():
        raise SystemExit(f"{args.root} is not a folder: give the results folder to pack")
    keep = (lambda f: finished(f, args.steps)) if args.finished else (lambda f: True)
    pack(args.root, args.dest, keep)
    left = sorted(f.name for f in args.root.iterdir() if f.is_dir() and not keep(f))
    print(
        f"packed {args.root} into {args.dest}"
        + (f"; left out, unfinished: {', '.join(left)}" if left else "")
    )


if __name__ == "__main__":
    main()
