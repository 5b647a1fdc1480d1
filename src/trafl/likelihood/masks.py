"""Coupled random masks over the completion (shared by ``mask_mean`` and ``elbo``).

Each mask is drawn the way LLaDA's likelihood evaluation draws one (Nie et al. 2025, Alg. 3):
a mask count l uniform on {1..n}, then a uniform subset of that size among the n valid
positions of the row (n = L, or the row's own length up to EOS). The couplings pair masks to
cut variance while keeping EVERY member marginally distributed like that, so any average over
the K masks keeps the expectation of a single mask:

- ``iid``: K independent masks.
- ``complementary``: K/2 pairs (M, U \\ M), U the valid positions. Drawing l on {1..n} would
  leave an empty complement when l = n, so the full mask (drawn with probability 1/n) is paired
  with itself; both members are then nonempty and each is still marginally uniform-count,
  because |U \\ M| = n - l runs over {1..n-1} exactly as l does. (Drawing l on {1..n-1} instead
  would never score the full mask and bias the estimate; ``full_mask=False`` does that.)
- ``antithetic``: K/2 pairs from one uniform random order of U: M = its first l positions,
  M' = its last n + 1 - l. The counts l and n + 1 - l are both uniform on {1..n}, sum to n + 1,
  and the two masks overlap in exactly one position (the l-th of the order): a small mask is
  paired with a large one, so their per-mask errors are negatively correlated.

Pairs are interleaved along K: masks 2j and 2j+1 form pair j. So ``masks[:, :K//2]`` and
``masks[:, K//2:]`` are independent halves when K is a multiple of 4 (or for ``iid``).

``full_mask`` (METHOD.md lists "whether the full mask is ever drawn" as unknown for TraFL):
True (default) draws l on {1..n} as above. False excludes the full mask: l on {1..n-1}
(``iid``, ``complementary``) or {2..n-1} (``antithetic``, so that neither member is full);
rows too short for that (n = 1, or n <= 2 for antithetic) fall back to the full mask. Excluding
it biases the estimators (their expectation drops the l = n term).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from trafl.likelihood.base import check_choice, random_ranks, uniform_ints

Coupling = Literal["iid", "complementary", "antithetic"]
COUPLINGS: tuple[str, ...] = get_args(Coupling)


def check_masks_config(num_masks: int, coupling: str) -> None:
    """Validate a mask count and coupling (ValueErrors that say what is valid)."""
    check_choice("coupling", coupling, COUPLINGS)
    if num_masks < 1:
        raise ValueError(f"num_masks must be >= 1, got {num_masks}")
    if coupling != "iid" and num_masks % 2:
        raise ValueError(
            f"coupling {coupling!r} draws masks in pairs, so num_masks must be even; got "
            f"{num_masks} (use an even num_masks or coupling='iid')"
        )


def draw_masks(
    valid: torch.Tensor,  # (N, L) bool, the positions masks are drawn over
    num_masks: int,
    coupling: str,
    generator: torch.Generator,
    full_mask: bool = True,
) -> torch.Tensor:
    """K coupled masks per row over its valid positions, (N, K, L) bool (see module doc)."""
    check_masks_config(num_masks, coupling)
    n, length = valid.shape
    num_valid = valid.sum(dim=1)  # (N,)
    draws = num_masks if coupling == "iid" else num_masks // 2
    ranks = random_ranks(valid, draws, generator)  # (N, D, L)

    low = 2 if (coupling == "antithetic" and not full_mask) else 1
    high = num_valid if full_mask else num_valid - 1  # (N,)
    too_short = high < low  # (N,) rows that cannot avoid the full mask
    counts = uniform_ints(low, torch.maximum(high, torch.full_like(high, low)), draws, generator)
    counts = torch.where(too_short[:, None], num_valid[:, None], counts)  # (N, D)
    first = ranks < counts[..., None]  # (N, D, L)
    if coupling == "iid":
        return first

    if coupling == "complementary":
        second = valid[:, None, :] & ~first  # (N, D, L)
        is_full = (counts == num_valid[:, None])[..., None]  # (N, D, 1)
        second = torch.where(is_full, first, second)  # the full mask is its own partner
    else:  # antithetic: the last n + 1 - l positions of the same order
        second = valid[:, None, :] & (ranks >= counts[..., None] - 1)  # (N, D, L)
    return torch.stack([first, second], dim=2).reshape(n, num_masks, length)  # (N, K, L)
