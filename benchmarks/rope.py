"""Rotary embeddings: the strided real form against one complex multiply (models/tiny.py).

    python benchmarks/rope.py

Times both on a (256, 4 heads, 47 tokens, 32) query tensor, the shape of the shipped Countdown
model sampling 256 sequences at L = 32, and checks that they agree to float32 rounding.
"""

from __future__ import annotations

import time

import torch

from trafl.models.tiny import rotary


def rotary_strided(x: torch.Tensor, theta: float) -> torch.Tensor:
    """The form trafl used before: rotate (x[..., 0::2], x[..., 1::2]) and interleave back."""
    d, t = x.shape[-1], x.shape[-2]
    inv_freq = theta ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    angles = torch.arange(t, dtype=torch.float32)[:, None] * inv_freq
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


def timed(fn, x: torch.Tensor, repeats: int = 50) -> float:
    fn(x, 1e4)
    start = time.perf_counter()
    for _ in range(repeats):
        fn(x, 1e4)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    torch.manual_seed(0)
    q = torch.randn(256, 47, 3, 4, 32).permute(2, 0, 3, 1, 4)[0]  # a strided view, as in Block
    gap = float((rotary(q, 1e4) - rotary_strided(q, 1e4)).abs().max())
    old, new = timed(rotary_strided, q), timed(rotary, q)
    print(
        f"strided {old * 1e3:.2f} ms, complex {new * 1e3:.2f} ms per call "
        f"({old / new:.1f}x), max difference {gap:.1e}, {torch.get_num_threads()} threads"
    )


if __name__ == "__main__":
    main()
