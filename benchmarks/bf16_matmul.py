"""float32 vs bfloat16 matmul speed on this machine's CPU (why trafl runs float32 on CPUs).

.venv/bin/python benchmarks/bf16_matmul.py
"""

from __future__ import annotations

import time

import torch


def main() -> None:
    a, b = torch.randn(4096, 256), torch.randn(256, 768)
    for dtype in (torch.float32, torch.bfloat16):
        x, y = a.to(dtype), b.to(dtype)
        x @ y  # warm-up
        start = time.perf_counter()
        for _ in range(20):
            x @ y
        print(f"{dtype}: {(time.perf_counter() - start) / 20 * 1000:.1f} ms per 4096x256 @ 256x768")


if __name__ == "__main__":
    main()
