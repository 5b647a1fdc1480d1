"""Soak test of the run life cycle: kill and damage a real `trafl train` run over and over,
resume it each time, and check that it ends exactly where an uninterrupted run ends.

    python scripts/chaos.py --kills 40 --steps 30 --out runs/chaos

Each round starts `trafl train ... resume=true`, waits a random time (covering start-up,
rollouts, updates and checkpoint writes), and sends SIGKILL, SIGTERM or SIGINT. Between rounds
it may damage the run the way a crash or a bad disk would: flip a byte in the newest
checkpoint, delete or garble `latest`, tear the last metrics line. When the run finally
completes, its weights must equal the uninterrupted run's bit for bit and its metrics must hold
each step exactly once. Writes `report.json` in --out and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ["model=models/countdown-base", "rollout.prompts_per_step=2", "rollout.group_size=4",
          "rollout.sampler.gen_length=16", "rollout.sampler.steps=8", "device=cpu",
          "save_completions_every=5", "ckpt_every=2", "keep_checkpoints=2"]  # fmt: skip
SIGNALS = [signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGINT]


def start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with log.open("a") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "trafl", "train", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=f,
        )


def damage(run: Path, rng: random.Random) -> str:
    """One random fault of the kind a crash or a bad disk leaves; its description."""
    if not run.is_dir():
        return ""  # killed before the run made its folder
    ckpts = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    kind = rng.choice(["flip", "latest_deleted", "latest_garbage", "torn_metrics", "none"])
    if kind == "flip" and len(ckpts) >= 2:  # damaging the only checkpoint loses the run, rightly
        files = [p for p in ckpts[-1].rglob("*") if p.is_file() and p.stat().st_size]
        target = rng.choice(files)
        data = bytearray(target.read_bytes())
        data[rng.randrange(len(data))] ^= 0xFF
        target.write_bytes(bytes(data))
        return f"flipped a byte in {target.relative_to(run)}"
    if kind == "latest_deleted" and (run / "latest").exists():
        (run / "latest").unlink()
        return "deleted latest"
    if kind == "latest_garbage":
        (run / "latest").write_text(rng.choice(["", "../elsewhere/checkpoint-99", "\x00junk"]))
        return "garbled latest"
    if kind == "torn_metrics" and (run / "metrics.jsonl").exists():
        with (run / "metrics.jsonl").open("a") as f:
            f.write('{"step": 99999, "loss"')
        return "tore the last metrics line"
    return ""


def steps_done(run: Path) -> int:
    """The last step logged (0 before any), reading past a torn line."""
    last = 0
    path = run / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            last = max(last, int(json.loads(line)["step"]))
        except (ValueError, KeyError, TypeError):
            pass
    return last


def same_weights(a: Path, b: Path) -> tuple[bool, float]:
    import torch

    from trafl.models import load_model

    sa, sb = load_model(a).state_dict(), load_model(b).state_dict()
    worst = max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa)
    return all(torch.equal(sa[k], sb[k]) for k in sa), worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=40, help="rounds that end in a signal")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--max-wait", type=float, default=12.0, help="longest wait before a signal (s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "chaos")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    shutil.rmtree(a.out, ignore_errors=True)
    a.out.mkdir(parents=True)
    log = a.out / "stderr.log"
    args = [*CONFIG, f"steps={a.steps}"]
    t0 = time.time()
    ref = start([*args, f"out_dir={a.out / 'reference'}"], log)
    assert ref.wait() == 0, f"the reference run failed; see {log}"
    run = a.out / "chaos"
    rounds, events, exits = 0, [], {}
    while rounds < a.kills:
        proc = start([*args, f"out_dir={run}", "resume=true"], log)
        time.sleep(rng.uniform(0.5, a.max_wait))
        if proc.poll() is not None:
            if proc.returncode != 0:
                sys.exit(
                    f"round {rounds + 1}: the run failed on its own (exit "
                    f"{proc.returncode}); see {log}"
                )
            break  # finished before the signal: the run is complete
        sig = rng.choice(SIGNALS)
        proc.send_signal(sig)
        code = proc.wait()
        exits[str(code)] = exits.get(str(code), 0) + 1
        rounds += 1
        step = steps_done(run)
        event = damage(run, rng)
        events.append(
            {"round": rounds, "signal": sig.name, "exit": code, "step": step, "damage": event}
        )
        print(
            f"round {rounds}: {sig.name} at step {step} -> exit {code}"
            + (f"; {event}" if event else ""),
            flush=True,
        )
        if code == 0 and (run / "model").is_dir():
            break  # the run completed (a signal during the final save waits for it)
    final = start([*args, f"out_dir={run}", "resume=true"], log)
    final_code = final.wait()
    equal, worst = (
        same_weights(run / "model", a.out / "reference" / "model")
        if final_code == 0
        else (False, float("nan"))
    )
    rows = (run / "metrics.jsonl").read_text().splitlines() if final_code == 0 else []
    steps = [json.loads(r)["step"] for r in rows]
    report = {
        "command": " ".join(["python scripts/chaos.py", *sys.argv[1:]]),
        "signals_sent": rounds,
        "signals_before_the_last_step": sum(1 for e in events if e["step"] < a.steps),
        "exit_codes": exits,
        "damages": sum(1 for e in events if e["damage"]),
        "final_exit": final_code,
        "weights_bit_identical": equal,
        "max_abs_weight_difference": worst,
        "metrics_steps_exactly_once": steps == list(range(1, a.steps + 1)),
        "minutes": round((time.time() - t0) / 60, 1),
        "events": events,
    }
    (a.out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "events"}, indent=1))
    ok = final_code == 0 and equal and report["metrics_steps_exactly_once"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
