"""Fast-dLLM's caches and parallel decoding on a LLaDA-shaped model at d1's shape, against the
arithmetic limit.

    .venv/bin/python benchmarks/llada_cache.py                       # CPU size, a few minutes
    .venv/bin/python benchmarks/llada_cache.py --shape llada-8b --device cuda --dtype bfloat16

d1's generation shape by default: a prompt of 200 tokens, 256 generated in blocks of 32, 128
steps (``--prompt --gen-length --block-length --steps --batch``). The model is LLaDA's
architecture (the modeling code of ``tests/fixtures/hf/llada_tiny``, field names of
GSAI-ML/LLaDA-8B, loaded through trafl's ``llada`` adapter and its cache hooks) with random
weights: speed needs no trained weights. ``--shape cpu`` is 4 layers, width 256, 4 heads,
MLP 768 (LLaDA's 3 x width) and a vocabulary of 1024, so that the output layer is about the
same share of the FLOPs as in LLaDA-8B (7 %); ``--shape llada-8b`` is LLaDA-8B's config:
32 layers, width 4096, 32 heads, MLP 12288, vocabulary 126464. ``--layers --width --heads
--mlp --vocab`` override either.

Modes: plain, prefix and dual cache (refreshed at each block start), each alone and with
parallel decoding at ``--threshold`` (0.9). Per mode: wall time of one ``sample`` call (median
of ``--repeats`` rounds after a warm-up round; each round runs every mode once in turn, so a
slow spell of a shared machine falls on all modes), the time spent inside the model's forward, the
denoiser forwards and the tokens (query positions) each processes, and the analytic FLOPs

    FLOPs(forward of n query tokens over T keys, batch B)
        = B * n * (2 * params_per_token + num_layers * 4 * d * T),
    params_per_token = num_layers * (4 d^2 + 3 d * mlp) + d * vocab

(the matmul parameters each token goes through, two FLOPs per multiply-add, plus attention's
QK^T and AV, 2 d T each per layer; the embedding lookup, norms, rotary and softmax are left
out). Every forward here attends to all T = prompt + gen keys: the cached windows read the
others from the cache. The ratio to plain sits beside the ratio this arithmetic allows:
plain FLOPs over the mode's FLOPs, from the forwards the mode actually ran (for the caches:
blocks x full forward + the other steps x window forward, the window being the current block
for ``dual``, the block and everything after it for ``prefix``).

Where the gap between the two goes: the time outside the model's forward (the sampler and the
adapter: float64 candidates, reveal bookkeeping, mask building), and within the forward the
cost per FLOP of a window against a full forward (small matmuls, the cache splice, rotary on
all T keys); a ``torch.profiler`` profile of one full and one dual-window forward (top ops by
self time) is printed and saved.

Random weights make the accuracy of parallel decoding and of the caches meaningless here, and
the NUMBER of parallel forwards a property of the initialisation: the output layer is drawn
with logits of standard deviation ``--logit-std`` (default 10), which gives a random model
confidences neither flat (one token per forward) nor one-hot (a whole block per forward).
The per-forward costs are what transfers to a trained model. The accuracy side is
``benchmarks/sampler_modes.py`` (the shipped Countdown base, pass@k with paired intervals).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch

from trafl.models.hf import HFTokenizer, LLaDALM
from trafl.sampling import SamplerConfig, sample

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "hf" / "llada_tiny"
SHAPES = {
    "cpu": dict(layers=4, width=256, heads=4, mlp=768, vocab=1024),
    "llada-8b": dict(layers=32, width=4096, heads=32, mlp=12288, vocab=126464),
}
MODES = {  # name: (cache, parallel)
    "plain": ("none", False),
    "parallel": ("none", True),
    "prefix": ("prefix", False),
    "prefix+parallel": ("prefix", True),
    "dual": ("dual", False),
    "dual+parallel": ("dual", True),
}


@dataclass
class Shape:
    layers: int
    width: int
    heads: int
    mlp: int
    vocab: int

    def params_per_token(self) -> int:
        d = self.width
        return self.layers * (4 * d * d + 3 * d * self.mlp) + d * self.vocab

    def flops(self, batch: int, tokens: int, keys: int) -> float:
        """One forward of ``tokens`` query positions over ``keys`` keys, ``batch`` rows."""
        attention = self.layers * 4 * self.width * keys
        return float(batch * tokens * (2 * self.params_per_token() + attention))


def build_model(shape: Shape, device: str, dtype: torch.dtype, logit_std: float, seed: int):
    """LLaDA's architecture at ``shape`` with random weights, behind trafl's ``llada`` adapter."""
    from transformers import AutoConfig, AutoModel

    config = {
        "model_type": "llada",
        "architectures": ["LLaDAModelLM"],
        "auto_map": {
            "AutoConfig": "configuration_llada.LLaDAConfig",
            "AutoModel": "modeling_llada.LLaDAModelLM",
        },
        "vocab_size": shape.vocab,
        "d_model": shape.width,
        "n_heads": shape.heads,
        "n_layers": shape.layers,
        "mlp_hidden_size": shape.mlp,
        "rope_theta": 500000.0,  # LLaDA-8B's
        "mask_token_id": shape.vocab - 1,
        "eos_token_id": shape.vocab - 2,
        "pad_token_id": shape.vocab - 2,
    }
    with tempfile.TemporaryDirectory() as folder:
        for name in ("configuration_llada.py", "modeling_llada.py"):
            shutil.copy(FIXTURE / name, Path(folder) / name)
        (Path(folder) / "config.json").write_text(json.dumps(config))
        cfg = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        torch.manual_seed(seed)
        default = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(device):
                model = AutoModel.from_config(cfg, trust_remote_code=True)
        finally:
            torch.set_default_dtype(default)
    with torch.no_grad():  # logits of std logit_std over a normalised final hidden state
        model.get_output_embeddings().weight.normal_(0.0, logit_std / math.sqrt(shape.width))
    tokenizer = HFTokenizer(SimpleNamespace(chat_template=None), model.config, chat_template=False)
    return LLaDALM(model.eval(), tokenizer).eval()


@dataclass
class Forwards:
    """The model forwards of one sampling run: query tokens per forward and time inside."""

    tokens: list[int] = field(default_factory=list)
    seconds: float = 0.0


@contextlib.contextmanager
def counted(adapter: LLaDALM, device: str) -> Iterator[Forwards]:
    """Record every forward of the wrapped model (its input width, its wall time)."""
    record, start = Forwards(), [0.0]

    def before(module, args, kwargs):
        sync(device)
        record.tokens.append(int(kwargs["input_ids"].shape[1]))
        start[0] = time.perf_counter()

    def after(module, args, kwargs, output):
        sync(device)
        record.seconds += time.perf_counter() - start[0]

    handles = [
        adapter.model.register_forward_pre_hook(before, with_kwargs=True),
        adapter.model.register_forward_hook(after, with_kwargs=True),
    ]
    try:
        yield record
    finally:
        for h in handles:
            h.remove()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_once(adapter, ids, mask, config: SamplerConfig, device: str) -> tuple[float, Forwards]:
    """One ``sample`` call (the same noise every time): its wall time and its forwards."""
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad(), counted(adapter, device) as forwards:
        sync(device)
        t0 = time.perf_counter()
        sample(adapter, ids, mask, config, gen)
        sync(device)
        return time.perf_counter() - t0, forwards


def run_modes(adapter, ids, mask, configs: dict, repeats: int, device: str) -> dict:
    """One warm-up round, then ``repeats`` rounds, each running every mode once in turn (so a
    slow spell of a shared machine falls on all modes alike); medians over the rounds."""
    runs: dict[str, list[tuple[float, Forwards]]] = {name: [] for name in configs}
    for i in range(repeats + 1):
        for name, config in configs.items():
            wall, forwards = run_once(adapter, ids, mask, config, device)
            if i > 0:
                runs[name].append((wall, forwards))
        print(f"  round {i}{' (warm-up)' if i == 0 else ''} done", flush=True)
    results = {}
    for name, done in runs.items():
        results[name] = {
            "wall_s": statistics.median(w for w, _ in done),
            "wall_s_all": [w for w, _ in done],
            "forward_s": statistics.median(f.seconds for _, f in done),
            "forwards": len(done[-1][1].tokens),
            "tokens_per_forward": done[-1][1].tokens,
        }
    return results


def top_ops(prof, device: str, count: int) -> list[dict]:
    """The ``count`` ops with the largest self time (device time on a GPU), with shares."""
    events = prof.key_averages()
    on_gpu = device.startswith("cuda")

    def self_us(e) -> float:
        if not on_gpu:
            return float(e.self_cpu_time_total)
        device_us = getattr(e, "self_device_time_total", None)  # older torch: self_cuda_...
        return float(device_us if device_us is not None else e.self_cuda_time_total)

    total = sum(self_us(e) for e in events) or 1.0
    rows = sorted(events, key=self_us, reverse=True)[:count]
    return [
        {"op": e.key, "self_ms": self_us(e) / 1e3, "share": self_us(e) / total, "calls": e.count}
        for e in rows
    ]


def profile_forwards(adapter, ids, gen_length: int, block: int, device: str) -> dict:
    """Time and profile one full (cache-refresh) forward and one dual-window forward."""
    from torch.profiler import ProfilerActivity, profile

    masked = torch.full((ids.shape[0], gen_length), adapter.mask_token_id, device=ids.device)
    x = torch.cat([ids, masked], dim=1)  # (B, T): the state at the first step
    lo, hi = ids.shape[1], ids.shape[1] + block  # the first block
    attn = torch.ones_like(x, dtype=torch.bool)
    with torch.no_grad():
        _, cache = adapter.forward_cached(x, attn, lo, hi)
        result = {}
        for name, use in (("full", None), ("dual_window", cache)):
            for _ in range(2):  # warm-up
                adapter.forward_cached(x, attn, lo, hi, use)
            times = []
            for _ in range(5):
                sync(device)
                t0 = time.perf_counter()
                adapter.forward_cached(x, attn, lo, hi, use)
                sync(device)
                times.append(time.perf_counter() - t0)
            activities = [ProfilerActivity.CPU]
            if device.startswith("cuda"):
                activities.append(ProfilerActivity.CUDA)
            with profile(activities=activities) as prof:
                adapter.forward_cached(x, attn, lo, hi, use)
                sync(device)
            result[name] = {
                "median_s": statistics.median(times),
                "top_ops": top_ops(prof, device, 12),
            }
    return result


def summarise(results: dict, shape: Shape, batch: int, keys: int) -> None:
    """Add FLOPs and the ratios to plain (measured, in the forward only, arithmetic)."""
    for r in results.values():
        r["tokens"] = sum(r["tokens_per_forward"])
        r["gflops"] = sum(shape.flops(batch, n, keys) for n in r["tokens_per_forward"]) / 1e9
        r["outside_forward_s"] = r["wall_s"] - r["forward_s"]
    plain = results["plain"]
    for r in results.values():
        r["speedup"] = plain["wall_s"] / r["wall_s"]
        r["forward_speedup"] = plain["forward_s"] / r["forward_s"]
        r["arithmetic_speedup"] = plain["gflops"] / r["gflops"]
        r["share_of_limit"] = r["speedup"] / r["arithmetic_speedup"]


def print_table(results: dict) -> None:
    print(
        f"{'mode':16s} {'wall s':>8s} {'x plain':>8s} {'arith x':>8s} {'of limit':>8s} "
        f"{'fwd x':>7s} {'forwards':>8s} {'tok/fwd':>8s} {'GFLOP':>9s} {'in fwd s':>9s} "
        f"{'outside s':>9s}"
    )
    for name, r in results.items():
        print(
            f"{name:16s} {r['wall_s']:8.2f} {r['speedup']:8.2f} {r['arithmetic_speedup']:8.2f} "
            f"{r['share_of_limit']:8.0%} {r['forward_speedup']:7.2f} {r['forwards']:8d} "
            f"{r['tokens'] / r['forwards']:8.1f} {r['gflops']:9.1f} {r['forward_s']:9.2f} "
            f"{r['outside_forward_s']:9.2f}"
        )


def print_profile(prof: dict, shape: Shape, batch: int, keys: int, block: int) -> None:
    full, window = prof["full"], prof["dual_window"]
    flop_ratio = shape.flops(batch, keys, keys) / shape.flops(batch, block, keys)
    time_ratio = full["median_s"] / window["median_s"]
    print(
        f"\none full forward {full['median_s'] * 1e3:.1f} ms, one dual-window forward "
        f"{window['median_s'] * 1e3:.1f} ms: {time_ratio:.1f}x faster for {flop_ratio:.1f}x "
        f"fewer FLOPs ({time_ratio / flop_ratio:.0%} of the FLOP ratio)"
    )
    for name in ("full", "dual_window"):
        print(f"top ops by self time, {name} forward:")
        for op in prof[name]["top_ops"]:
            print(
                f"  {op['op'][:44]:44s} {op['self_ms']:9.2f} ms {op['share']:6.1%} x{op['calls']}"
            )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="cpu")
    for name in ("layers", "width", "heads", "mlp", "vocab"):
        parser.add_argument(f"--{name}", type=int, help=f"override the shape's {name}")
    parser.add_argument("--prompt", type=int, default=200, help="prompt tokens")
    parser.add_argument("--gen-length", type=int, default=256)
    parser.add_argument("--block-length", type=int, default=32)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1, help="sequences per sample call")
    parser.add_argument("--threshold", type=float, default=0.9, help="parallel decoding's")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--logit-std", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/llada_cache.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    dims = {k: getattr(args, k) or v for k, v in SHAPES[args.shape].items()}
    shape = Shape(**dims)
    dtype = getattr(torch, args.dtype)
    adapter = build_model(shape, args.device, dtype, args.logit_std, args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, shape.vocab - 2, (args.batch, args.prompt), generator=gen)
    ids, mask = ids.to(args.device), torch.ones_like(ids, dtype=torch.bool).to(args.device)
    keys = args.prompt + args.gen_length
    print(
        f"LLaDA-shaped, {shape}, {shape.params_per_token() / 1e6:.1f}M params per token, "
        f"{args.dtype} on {args.device}; batch {args.batch}, prompt {args.prompt}, "
        f"gen {args.gen_length}, blocks of {args.block_length}, {args.steps} steps",
        flush=True,
    )
    configs = {}
    for name in ["plain", *[m for m in args.modes if m != "plain"]]:
        cache, parallel = MODES[name]
        configs[name] = SamplerConfig(
            gen_length=args.gen_length,
            block_length=args.block_length,
            steps=args.steps,
            temperature=args.temperature,
            cache=cache,
            parallel_threshold=args.threshold if parallel else None,
            batch_size=args.batch,
        )
    results = run_modes(adapter, ids, mask, configs, args.repeats, args.device)
    summarise(results, shape, args.batch, keys)
    print_table(results)
    prof = None
    if not args.no_profile:
        prof = profile_forwards(adapter, ids, args.gen_length, args.block_length, args.device)
        print_profile(prof, shape, args.batch, keys, args.block_length)
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads",
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "args": vars(args),
        "shape": dims,
        "params_per_token": shape.params_per_token(),
        "flops_formula": "B * n * (2 * params_per_token + layers * 4 * d * T) per forward",
    }
    out = {"meta": meta, "modes": results, "profile": prof}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
