"""Train a packed run again from its committed config, and check that it is the same run.

    python scripts/rerun.py results/target/long2000.tgz trafl-b4-s0 --steps 6
    python scripts/rerun.py results/target/long2000.tgz trafl-b4-s0 --out runs/long2000/trafl-b4-s0
    python scripts/rerun.py results/target/long2000.tgz trafl-b4-s0 --out DIR --compare  # means

A result pack (scripts/packs.py) holds each run's config.yaml and metrics.jsonl but no weights.
This makes the weights again (e.g. the checkpoints a continuation starts from: the studies'
``--extend``) and says whether the new run is the run of the pack: every number logged at
every step both have, equal bit for bit (wall-clock times aside). It exits 1 at the first
difference, naming the step and the number (checked as the run goes: it stops there).
``--steps`` stops early (a quick check; only for a run whose lr schedule does not depend on its
length); an interrupted rerun resumes from its last checkpoint when started again with the same
``--out``. Bit for bit needs the device the pack was trained on (``--device``, default cpu),
down to the CPU's vector instructions: on an AVX2-only CPU the 2000-step runs' first step
already differs in its last bits from the committed logs, which another machine reproduced.
To continue a study from the runs made again, add the pack's evaluations beside them
afterwards: ``python scripts/packs.py --unpack --missing PACK FOLDER``.

``--anew`` trains the run from its config without checking it against the pack (on a CPU or
device where it cannot be the same run bit for bit): a new run with the packed run's settings,
whose first difference from the pack is printed at the end. The pack's evaluations are then
not this run's: evaluate it again rather than unpacking them beside it. It ends with the mean
reward, loss and log-ratios per window of steps beside the pack's (``--compare`` prints them
for a folder as it is, without training): a new run differs step by step, and should agree on
these within the runs' own noise.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tarfile
import tempfile
from pathlib import Path

from trafl.commands.train import Trainer
from trafl.commands.train_config import TrainConfig
from trafl.core.config_files import load_config
from trafl.core.errors import RunStopped
from trafl.core.layout import latest_checkpoint

IGNORED = ("time",)  # wall-clock seconds differ from machine to machine


def read_member(pack: Path, name: str) -> str:
    """One file of the pack as text; a clear error when the pack does not hold it."""
    with tarfile.open(pack) as tar:
        try:
            member = tar.extractfile(name)
        except KeyError:
            runs = sorted({n.split("/")[0] for n in tar.getnames() if n.endswith("config.yaml")})
            raise SystemExit(f"{pack} has no {name}; its runs: {', '.join(runs)}") from None
        assert member is not None, f"{name} is not a file in {pack}"
        return member.read().decode("utf-8")


def by_step(text: str) -> dict[int, dict]:
    """metrics.jsonl's records by step; a step logged twice (a resumed run) keeps the last."""
    records = (json.loads(line) for line in text.splitlines() if line.strip())
    return {record["step"]: record for record in records if "step" in record}


def first_difference(packed: dict[int, dict], new: dict[int, dict]) -> str | None:
    """The first step and number where the new run's log differs from the pack's, or None.
    Numbers are compared by their exact repr: bit for bit, a nan equal to a nan (a step
    without successes logs its successes' log-ratio as nan)."""
    for step in sorted(set(packed) & set(new)):
        was, now = packed[step], new[step]
        for key in sorted((set(was) | set(now)) - set(IGNORED)):
            if key not in was or key not in now or repr(was[key]) != repr(now[key]):
                return f"step {step}, {key}: packed {was.get(key)!r}, now {now.get(key)!r}"
    return None


WINDOW_KEYS = ("reward", "loss", "log_ratio_success", "log_ratio_failure")


def window_means(rows: dict[int, dict], key: str, every: int) -> dict[int, float]:
    """The mean of ``key`` over each whole window of steps (end - every, end], by its end step;
    a window with a step missing is left out, a nan (a step without successes) is skipped."""
    out = {}
    for end in range(every, max(rows, default=0) + 1, every):
        steps = range(end - every + 1, end + 1)
        if all(s in rows for s in steps):
            values = [rows[s].get(key) for s in steps]
            values = [v for v in values if v is not None and not math.isnan(v)]
            if values:
                out[end] = sum(values) / len(values)
    return out


def window_table(packed: dict[int, dict], new: dict[int, dict], every: int) -> list[str]:
    """Markdown: per window both logs' means of :data:`WINDOW_KEYS` (packed / new), over the
    windows the new log has whole: is a run made anew statistically the packed one?"""
    means = {k: (window_means(packed, k, every), window_means(new, k, every)) for k in WINDOW_KEYS}
    ends = sorted(set(means["reward"][1]))
    lines = [
        f"| steps | {' | '.join(f'{k} (packed / new)' for k in WINDOW_KEYS)} |",
        "|---|" + "---|" * len(WINDOW_KEYS),
    ]
    for end in ends:
        cells = [
            f"{was.get(end, math.nan):.4g} / {now.get(end, math.nan):.4g}"
            for was, now in means.values()
        ]
        lines.append(f"| {end - every + 1}-{end} | " + " | ".join(cells) + " |")
    return lines


def refuse_difference(out: Path, packed: dict[int, dict], new: dict[int, dict]) -> None:
    """Stop, naming the first difference, unless ``new`` matches ``packed`` where both log."""
    difference = first_difference(packed, new)
    if difference is not None:
        raise SystemExit(
            f"{out} is not the packed run: first difference at {difference} (trained on another "
            "device or CPU than the packed run? --anew trains it anyway, as a new run)"
        )


class LiveCheck:
    """Called after every step of the rerun: the rows metrics.jsonl gained since the last call,
    against the pack's, so that a run that is not the packed one stops at its first
    difference instead of after all its steps."""

    def __init__(self, path: Path, packed: dict[int, dict]) -> None:
        self.path, self.packed, self.offset = path, packed, 0

    def __call__(self, step: int, metrics: dict) -> None:
        if not self.path.is_file():
            return
        with self.path.open("rb") as f:
            f.seek(self.offset)
            text = f.read().decode("utf-8")
        complete = text[: text.rfind("\n") + 1]
        self.offset += len(complete.encode("utf-8"))
        refuse_difference(self.path.parent, self.packed, by_step(complete))


def rerun(
    pack: Path, run: str, out: Path, steps: int | None, device: str, check: LiveCheck | None
) -> int:
    """Train ``run`` of ``pack`` again into ``out``: its config with out_dir, resume=true,
    ``device`` and, when given, fewer ``steps`` (only for a schedule that does not depend on
    the run's length), checked after every step by ``check`` unless it is None (``--anew``).
    Returns the number of steps trained."""
    if (out / "metrics.jsonl").is_file() and latest_checkpoint(out) is None:
        after = (
            ""
            if check is None
            # --anew: the pack's evaluations are not this run's
            else (
                "; add the pack's evaluations beside the new run afterwards with "
                "scripts/packs.py --unpack --missing"
            )
        )
        raise SystemExit(
            f"{out} holds a log but no checkpoint to resume from (a run stopped before its first "
            f"checkpoint, or a pack unpacked there): delete it or train into another --out{after}"
        )
    overrides = [f"out_dir={out}", "resume=true", f"device={device}"]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(read_member(pack, f"{run}/config.yaml"), encoding="utf-8")
        cfg = load_config(TrainConfig, config, overrides)
    if steps is not None and steps != cfg.steps:
        if steps > cfg.steps:
            raise SystemExit(f"--steps {steps} is more than the packed run's {cfg.steps}")
        if not cfg.optim.length_independent:
            raise SystemExit(
                f"--steps: {run}'s lr schedule depends on its length (warmup_steps="
                f"{cfg.optim.warmup_steps}, min_lr_ratio={cfg.optim.min_lr_ratio}): fewer steps "
                "would be another run; rerun it whole"
            )
        cfg.steps = steps
    Trainer(cfg, callbacks=[check] if check else []).train()
    return cfg.steps


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pack", type=Path, help="a result pack (results/target/long2000.tgz)")
    p.add_argument("run", help="a run in it (trafl-b4-s0)")
    p.add_argument("--out", type=Path, help="the new run's folder (default runs/rerun/RUN)")
    p.add_argument("--steps", type=int, help="stop after this many steps (default: all)")
    p.add_argument(
        "--anew",
        action="store_true",
        help="train without stopping at the first difference from the pack (another kind of "
        "CPU): a new run with its settings, not the packed run",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="train nothing: print the windowed means of OUT's log beside the pack's",
    )
    p.add_argument("--window", type=int, default=200, help="steps per window of the comparison")
    p.add_argument(
        "--device",
        default="cpu",
        help="where the packed run was trained (this repository's packs: the CPU); on another "
        "device the run is another run, not the same bit for bit",
    )
    args = p.parse_args(argv)
    packed = by_step(read_member(args.pack, f"{args.run}/metrics.jsonl"))
    out = args.out or Path("runs/rerun") / args.run
    if args.compare:
        new = by_step((out / "metrics.jsonl").read_text(encoding="utf-8"))
        print("\n".join(window_table(packed, new, args.window)))
        return
    check = None if args.anew else LiveCheck(out / "metrics.jsonl", packed)
    try:
        trained = rerun(args.pack, args.run, out, args.steps, args.device, check)
    except RunStopped as err:  # a signal: checkpointed; the same command resumes and checks on
        print(f"{err} (here: the same command resumes it, checking on)", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
    new = by_step((out / "metrics.jsonl").read_text(encoding="utf-8"))
    if args.anew:
        difference = first_difference(packed, new) or "none"
        print(
            f"{out}: trained anew to step {trained}; first difference from the pack: {difference}"
        )
        print("\n".join(window_table(packed, new, args.window)))
        return
    missing = sorted(s for s in packed if s <= trained and s not in new)
    if missing:
        raise SystemExit(f"{out}'s log has no row for step {missing[0]} ({len(missing)} missing)")
    refuse_difference(out, packed, new)
    shared = len(set(packed) & set(new))
    print(f"{out}: the same run, bit for bit, at all {shared} steps the two logs share")


if __name__ == "__main__":
    main()
