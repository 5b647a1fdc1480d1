"""The sampler at a git revision against the working tree's: same inputs, alternating runs.

    python benchmarks/sampler_ab.py --rev fadb801              # plain and dual cache, CPU
    python benchmarks/sampler_ab.py --rev HEAD~3 --modes none --rounds 3

For a sampler change: loads ``src/trafl/sampling/sampler.py`` as it was at ``--rev`` (its own
imports resolve to the current package, so the revision must share the rest of the API), then
times both on the same rows with the same seed, alternating ``--rounds`` times per mode, and
says whether the completions are identical. Prints one line per run and a summary.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from trafl.models import load_model
from trafl.run.rollouts import subset
from trafl.sampling import left_pad
from trafl.sampling import sampler as current
from trafl.tasks import TASKS


def sampler_at(rev: str):
    source = subprocess.run(
        ["git", "show", f"{rev}:src/trafl/sampling/sampler.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "sampler_at_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("sampler_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["sampler_at_rev"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", required=True)
    parser.add_argument("--model", default="models/countdown-base")
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--modes", nargs="+", default=["dual", "none"])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    old = sampler_at(args.rev)
    model = load_model(args.model).eval()
    task = TASKS.get("countdown")()
    prompts = [
        task.prompt(p)
        for p in subset(task.problems("test"), args.problems)
        for _ in range(args.samples)
    ]
    ids, mask = left_pad([model.tokenizer.encode_prompt(p) for p in prompts], model.pad_token_id)
    for mode in args.modes:
        times: dict[str, list[float]] = {args.rev: [], "current": []}
        outputs = {}
        for _ in range(args.rounds):
            for name, module in ((args.rev, old), ("current", current)):
                cfg = module.SamplerConfig(
                    gen_length=32, block_length=8, steps=32, temperature=1.0, cache=mode
                )
                start = time.perf_counter()
                out = module.sample(model, ids, mask, cfg, torch.Generator().manual_seed(0))
                times[name].append(round(time.perf_counter() - start, 2))
                outputs[name] = out.completion_ids
                print(f"cache={mode} {name}: {times[name][-1]} s", flush=True)
        same = torch.equal(outputs[args.rev], outputs["current"])
        print(
            f"cache={mode}: {args.rev} {times[args.rev]} s, current {times['current']} s, "
            f"identical completions: {same}"
        )


if __name__ == "__main__":
    main()
