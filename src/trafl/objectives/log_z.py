"""Heads for TraFL's log-partition function log Z(x).

Trajectory balance needs the log normaliser of the tilted target pi_ref exp(beta r) / Z(x).
TraFL (arXiv 2605.13935) says only that it is "learned, prompt-dependent"; these are the
forms trafl offers (choice ``log_z`` of the TraFL config):

- ``prompt_mlp``: FlowRL's form, a small MLP on the mean-pooled prompt hidden states of the
  policy backbone: LayerNorm (no affine) -> Linear(H, h) -> SiLU -> Linear(h, 1). The input
  norm is OUR addition: mean-pooled hidden states of large backbones have outlier dimensions
  of magnitude 10-100, and normalising them lets one log Z learning rate serve every backbone.
  The last layer is zero-initialised so log Z starts at 0.
- ``scalar``: one learned number for the whole run (not per prompt); an ablation.
- ``vargrad``: no parameters. log Z is profiled out per group as
  ``-mean_G(s_theta - s_ref - beta r~)``, so the loss is the within-group variance of the
  residual (VarGrad, Richter et al. 2020; for GFlowNets, Malkin et al. 2023, arXiv
  2210.00580). Computed in the objective, with gradient through s_theta as in VarGrad.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOG_Z_KINDS: tuple[str, ...] = ("prompt_mlp", "scalar", "vargrad")


class PromptMLPLogZ(torch.nn.Module):
    """log Z_phi(x) = MLP(LayerNorm(mean-pooled prompt hidden states))."""

    def __init__(self, hidden_size: int, width: int) -> None:
        super().__init__()
        if hidden_size < 1 or width < 1:
            raise ValueError(f"log Z MLP needs hidden_size, width >= 1; got {hidden_size}, {width}")
        self.inp = torch.nn.Linear(hidden_size, width)
        self.out = torch.nn.Linear(width, 1)
        torch.nn.init.zeros_(self.out.weight)  # log Z = 0 at the start
        torch.nn.init.zeros_(self.out.bias)

    def forward(self, prompt_hidden: torch.Tensor) -> torch.Tensor:
        h = prompt_hidden.float()  # (n, H)
        h = F.layer_norm(h, h.shape[-1:])  # (n, H)
        return self.out(F.silu(self.inp(h))).squeeze(-1)  # (n,)


class ScalarLogZ(torch.nn.Module):
    """One learned log Z shared by every prompt."""

    def __init__(self) -> None:
        super().__init__()
        self.value = torch.nn.Parameter(torch.zeros(()))

    def forward(self, num_rows: int) -> torch.Tensor:
        return self.value.expand(num_rows)  # (n,)


def vargrad_log_z(score: torch.Tensor, group_size: int) -> torch.Tensor:
    """(n,) log Z = -mean_G(score) per group, score = s_theta - s_ref - beta r~ (with grad)."""
    per_group = score.view(-1, group_size).mean(1, keepdim=True)  # (B, 1)
    return (-per_group).expand(-1, group_size).reshape(-1)  # (n,)
