"""``blockwise``: SPG's block-wise masks and its two evidence bounds (Wang et al. 2025).

SPG ("SPG: Sandwiched Policy Gradient for Masked Diffusion Language Models", arXiv 2510.09541)
maximises a lower bound for samples with positive advantage and minimises an upper bound for the
others. This module follows the released code (facebookresearch/SPG, ``spg/spg_trainer.py``:
``forward_process`` with ``forward_type="block_random"`` and ``_get_per_seq_logps``).

Masks. The completion is cut into blocks of ``block_length`` (L must be a multiple). Each of
the m = ``num_draws`` draws j picks a block b_j (the first m entries of a random permutation of
the blocks, taken modulo the number of blocks that hold valid tokens), then

- later blocks: fully masked;
- block b_j: l_j uniform on {1..v} of its v valid positions masked, a uniform subset;
- earlier blocks and the prompt: clean, except that each token is masked with probability
  ``prompt_mask_prob`` (SPG's ``use_mask_prompt``: its code applies it to everything outside
  the masked region, so earlier completion blocks too; padding is never masked here);
- with ``positions="until_eos"`` (SPG's default) the positions after the first EOS are always
  masked and never scored; ``"all"`` treats the L EOS-filled positions as valid.

Let M_j be the valid masked positions of draw j, t_j = |M_j| / n (n valid positions) and
p_jk = p_theta(y_k | y_{~M_j}, x). The two per-token bounds (SPG's ``per_seq_logps``):

    seq   (lower, ELBO) = (1/m) * sum_j (1/|M_j|) * sum_{k in M_j} log p_jk,
    upper (EUBO)        = (1/b) * mean_{k in C} log( (1/m) * sum_j 1[k in M_j] * p_jk^b / t_j ),

b = ``eubo_b`` (1.5), C = positions masked in at least one draw (the code's ``loss_mask``;
METHOD.md's "mean_k" is over these). Both are per-token: SPG's loss multiplies them by the
completion length, ``-sum_i A_i * l_i * |o_i| / sum_i |o_i|``, and uses ``upper`` (or
0.5 * upper + 0.5 * seq) for A_i <= 0.

What they bound (block_length = L, prompt_mask_prob = 0, so each mask is a LLaDA draw):
E[seq] = ELBO / n <= log p(y|x) / n for the random-order process, and each position's
average is unbiased for E_order[p(y_k | revealed before k)^b], so as m grows ``upper`` tends to
(1/(b n)) * sum_k log E_order[p_k^b]. That limit is >= ELBO / n for every b > 0 (power mean
>= geometric mean), grows with b, and is >= log p(y|x) / n for b >= n by the generalised
Hoelder inequality E[prod_k Y_k] <= prod_k E[Y_k^n]^(1/n). With finite m the log of the
average is biased low (Jensen). With several blocks, later blocks are scored while fully
masked, as in SPG's code (its ``block_mask`` is computed but not used).

Deviations from the code: m may exceed the number of blocks (SPG asserts it does not; here
further independent permutations are appended); p^b / t is combined in log space (logsumexp),
where SPG's ``p.pow(b)`` can underflow to 0 and silently drop a position from C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trafl.core.batch import Estimate, Rollout
from trafl.likelihood.base import (
    ESTIMATORS,
    Draw,
    EstimatorConfig,
    Positions,
    check_positions,
    check_probability,
    masked_mean,
    random_ranks,
    score_masks,
    uniform_ints,
    valid_positions,
)
from trafl.models.base import DiffusionLM


@dataclass
class BlockwiseConfig(EstimatorConfig):
    name: str = "blockwise"
    num_draws: int = 2  # m, SPG's num_t
    block_length: int = 32  # clipped to L; L must be a multiple
    eubo_b: float = 1.5  # SPG's eubo_beta
    prompt_mask_prob: float = 0.15  # SPG's p_mask_prompt (its recipes' value is not public)
    positions: Positions = "until_eos"  # SPG masks and ignores everything after the first EOS

    def __post_init__(self) -> None:
        if self.num_draws < 1:
            raise ValueError(f"num_draws must be >= 1, got {self.num_draws}")
        if self.block_length < 1:
            raise ValueError(f"block_length must be >= 1, got {self.block_length}")
        if self.eubo_b <= 0:
            raise ValueError(f"eubo_b must be > 0, got {self.eubo_b}")
        check_probability("prompt_mask_prob", self.prompt_mask_prob)
        check_positions(self.positions)


def block_size(block_length: int, gen_length: int) -> int:
    """The block length clipped to L; a ValueError unless it divides L."""
    block = min(block_length, gen_length)
    if gen_length % block:
        raise ValueError(
            f"blockwise: the completion length {gen_length} must be a multiple of block_length "
            f"{block}; valid block lengths: "
            + ", ".join(str(d) for d in range(1, gen_length + 1) if gen_length % d == 0)
        )
    return block


def pick_blocks(
    num_valid_blocks: torch.Tensor, num_blocks: int, num_draws: int, generator: torch.Generator
) -> torch.Tensor:
    """SPG's block choice: the first m entries of random permutations of the blocks, modulo
    the number of blocks holding valid tokens, (N, m) long."""
    n = num_valid_blocks.shape[0]
    perms = -(-num_draws // num_blocks)  # ceil: SPG asserts m <= num_blocks; we append more
    keys = torch.rand((n, perms, num_blocks), generator=generator, device=num_valid_blocks.device)
    order = keys.argsort(dim=-1).reshape(n, -1)[:, :num_draws]  # (N, m)
    return order % num_valid_blocks[:, None]  # (N, m)


@ESTIMATORS.register("blockwise")
class Blockwise:
    """SPG's block-wise masks; ``seq`` = lower bound (ELBO), ``upper`` = EUBO, per token."""

    Config = BlockwiseConfig

    def __init__(self, config: BlockwiseConfig | None = None) -> None:
        self.config = config if config is not None else BlockwiseConfig()

    def draw(self, batch: Rollout, generator: torch.Generator) -> Draw:
        """{"masks": (N, m, L) bool, "prompt_masks": (N, m, P) bool}: hidden positions."""
        c = self.config
        valid = valid_positions(batch, c.positions)  # (N, L)
        n, length = valid.shape
        block = block_size(c.block_length, length)
        num_valid = valid.sum(dim=1)  # (N,)
        blocks = pick_blocks((num_valid - 1) // block + 1, length // block, c.num_draws, generator)
        block_of = torch.arange(length, device=valid.device) // block  # (L,)
        rel = block_of[None, None, :] - blocks[..., None]  # (N, m, L) <0 earlier, 0 chosen
        in_block = (rel == 0) & valid[:, None, :]  # (N, m, L)
        block_valid = in_block.sum(dim=-1)  # (N, m) >= 1
        counts = uniform_ints(1, block_valid.reshape(-1), 1, generator).view(n, -1)  # (N, m)
        ranks = random_ranks(in_block.reshape(n * c.num_draws, length), 1, generator)
        chosen = ranks.view(n, c.num_draws, length) < counts[..., None]  # (N, m, L)
        p = c.prompt_mask_prob
        u = torch.rand(rel.shape, generator=generator, device=valid.device)  # (N, m, L)
        earlier = (rel < 0) & (u < p)  # (N, m, L) SPG masks context outside the region too
        masks = (rel > 0) | chosen | earlier | ~valid[:, None, :]  # (N, m, L)
        prompt_mask = batch.prompt_mask.bool()[:, None, :]  # (N, 1, P)
        shape = (n, c.num_draws, prompt_mask.shape[-1])
        u = torch.rand(shape, generator=generator, device=valid.device)  # (N, m, P)
        return {"masks": masks, "prompt_masks": prompt_mask & (u < p)}

    def estimate(self, model: DiffusionLM, batch: Rollout, draw: Draw) -> Estimate:
        b = self.config.eubo_b
        valid = valid_positions(batch, self.config.positions)  # (N, L)
        scored = draw["masks"] & valid[:, None, :]  # (N, m, L) M_j
        logp = score_masks(model, batch, draw["masks"], draw["prompt_masks"])  # (N, m, L)
        per_draw = masked_mean(logp, scored)  # (N, m) lower bound of each draw
        log_t = torch.log(scored.sum(dim=-1) / valid.sum(dim=-1, keepdim=True))  # (N, m)
        terms = torch.where(scored, b * logp - log_t[..., None], -math.inf)  # (N, m, L)
        covered = scored.any(dim=1)  # (N, L) C
        terms = torch.where(covered[:, None, :], terms, 0.0)  # keep logsumexp finite off C
        log_avg = torch.logsumexp(terms, dim=1) - math.log(terms.shape[1])  # (N, L)
        log_avg = torch.where(covered, log_avg, 0.0)  # (N, L)
        upper = masked_mean(log_avg, covered) / b  # (N,)
        return Estimate(
            seq=per_draw.mean(dim=1),  # (N,)
            per_draw=per_draw,
            upper=upper,
            extras={"log_eubo_terms": log_avg, "eubo_mask": covered},
        )
