"""The masked-diffusion forward process and its ELBO (LLaDA's SFT form).

Forward process: draw a mask ratio ``t ~ U(eps, 1)`` per sequence and mask each completion
token independently with probability t; the prompt is never masked. The negative ELBO
(Nie et al. 2025, Eq. 3 / SFT Eq. 5) is

    -ELBO(y | x) = E_t E_{M ~ q_t} [ (1/t) * sum_{i in M} -log p_theta(y_i | y_{~M}, x) ],

and LLaDA's SFT loss divides it by the completion length. The same pieces (masks drawn once,
log-probs of the masked tokens) are what the RL likelihood estimators reuse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trafl.models.base import DiffusionLM, denoiser_logits


def sample_mask_ratio(
    n: int, eps: float, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """t ~ U(eps, 1) per sequence, (N,) float32. eps > 0 keeps the 1/t weight finite."""
    u = torch.rand(n, generator=generator, device=device)
    return eps + (1 - eps) * u


def forward_masks(
    t: torch.Tensor, length: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Mask each of ``length`` positions independently with probability t: (N, L) bool."""
    u = torch.rand((t.shape[0], length), generator=generator, device=t.device)
    return u < t[:, None]


def masked_token_logp(
    model: DiffusionLM,
    prompt_ids: torch.Tensor,  # (N, P)
    prompt_mask: torch.Tensor,  # (N, P) bool
    completion_ids: torch.Tensor,  # (N, L)
    masks: torch.Tensor,  # (N, L) bool, True = masked
) -> torch.Tensor:
    """log p_theta(y_i | y with ``masks`` hidden, x) at every position, (N, L) float32.

    Values at unmasked positions are computed too (the denoiser sees the token there) and
    must be ignored by the caller: multiply by ``masks``."""
    noisy = completion_ids.masked_fill(masks, model.mask_token_id)  # (N, L)
    ids = torch.cat([prompt_ids, noisy], dim=1)  # (N, P+L)
    attn = torch.cat([prompt_mask.bool(), torch.ones_like(masks)], dim=1)
    logits = denoiser_logits(model, ids, attn, start=prompt_ids.shape[1])  # (N, L, V)
    return -F.cross_entropy(logits.transpose(1, 2), completion_ids, reduction="none")  # (N, L)


def elbo_sample(
    model: DiffusionLM,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,  # (N, L)
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One Monte Carlo draw of the (unnormalised) ELBO of each completion, (N,).

    E[elbo_sample] = ELBO <= log p(y|x) of the random-order one-token-per-step process."""
    n, length = completion_ids.shape
    t = sample_mask_ratio(n, eps, generator, completion_ids.device)  # (N,)
    masks = forward_masks(t, length, generator)  # (N, L)
    logp = masked_token_logp(model, prompt_ids, prompt_mask, completion_ids, masks)
    return (logp * masks).sum(dim=1) / t  # (N,)


def sft_loss(
    model: DiffusionLM,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,  # (N, L), EOS-filled to L (EOS tokens are trained, as in LLaDA)
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """LLaDA's SFT loss: the negative ELBO divided by the completion length, batch mean."""
    length = completion_ids.shape[1]
    return (
        -elbo_sample(model, prompt_ids, prompt_mask, completion_ids, eps, generator).mean() / length
    )
