"""TraFL: Trajectory Flow baLancing (arXiv 2605.13935; docs/METHOD.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from trafl.objectives.advantages import STD_EPS, advantages, group_mean, group_std
from trafl.objectives.base import (
    OBJECTIVES,
    LossInputs,
    Objective,
    ObjectiveConfig,
    check_choice,
)
from trafl.objectives.log_z import LOG_Z_KINDS, PromptMLPLogZ, ScalarLogZ, vargrad_log_z

REWARD_NORMS = ("center", "center_loo", "center_std", "none")


@dataclass
class TraFLConfig(ObjectiveConfig):
    """TraFL's knobs. The paper fixes none of these values; every default is OUR choice:

    - ``beta`` (32.0, ``beta_units="sequence"``): the tilt of pi* = pi_ref exp(beta r) / Z on
      whole sequences. With the per-token surrogate s = ELBO / n the residual then uses
      beta r~ / n, n being each row's own normaliser (L, or its length up to the first EOS
      with ``estimator.positions=until_eos``), so the target does not depend on length.
      32 is OUR default; the prototype of METHOD.md section 6 used 2 per token averaged up to
      the first EOS (about 8 tokens at L = 16), a sequence tilt of about 16. With a 0/1
      reward and G = 8, ``center`` makes the fixed point's tilt b = 32 * 7/8 = 28
      (:func:`sequence_tilt`), so pi* is the reference conditioned on success wherever the
      base has a success rate above 1e-12; such a tilt may be unreachable in a few hundred
      steps (docs/TARGET.md measures how far a run gets). ``beta_units="token"`` puts
      beta r~ in the residual as the paper writes it (a sequence tilt of beta * n).
    - ``score_units``: what the estimator's ``seq`` is, ``per_token`` (mask-mean ELBO / L) or
      ``sequence`` (a whole-sequence log-prob, e.g. the exact trajectory); it fixes the
      conversion of beta, nothing else.
    - ``reward_norm`` (``center``): r~ = r - mean_G r, as the paper. Centring includes the
      sample's own reward, so with a learned log Z the fixed point is pi_ref exp(beta (G-1)/G r):
      the expected gradient keeps only (1 - 1/G) of the tilt. ``center_loo``
      (r - mean of the others) has the exact fixed point pi*, as has ``none``; ``center_std``
      also divides by std_G + 1e-4 (a reward-scale-free tilt, target no longer pi*).
      With ``log_z="vargrad"`` centring is absorbed by log Z and every choice but
      ``center_std`` is exact.
    - ``log_z`` (``prompt_mlp``), ``log_z_hidden`` (64), ``log_z_lr`` (1e-2, its own optimizer
      group, no weight decay), ``detach_backbone`` (True: log Z does not train the policy).
    - ``importance_clip`` (2.0): w = min(exp(s_theta - s_old), clip), detached, when rollouts
      are reused (the trainer passes ``old``); w = 1 when ``old`` is None. FlowRL clips too.
    - ``unbiased_square`` (False): replace delta^2 by delta_a * delta_b, residuals from two
      disjoint halves of the K mask draws, which removes the Var/K that squaring a K-mask mean
      adds. ``paired_draws`` (True): draws come as complementary pairs in adjacent columns
      (2j, 2j+1), and each pair stays within one half (needs K >= 4).
    """

    name: str = "trafl"
    beta: float = 32.0
    beta_units: Literal["sequence", "token"] = "sequence"
    score_units: Literal["per_token", "sequence"] = "per_token"
    reward_norm: Literal["center", "center_loo", "center_std", "none"] = "center"
    log_z: Literal["prompt_mlp", "scalar", "vargrad"] = "prompt_mlp"
    log_z_lr: float = 1e-2
    log_z_hidden: int = 64
    detach_backbone: bool = True
    importance_clip: float = 2.0
    unbiased_square: bool = False
    paired_draws: bool = True

    def __post_init__(self) -> None:
        check_choice("beta_units", self.beta_units, ("sequence", "token"))
        check_choice("score_units", self.score_units, ("per_token", "sequence"))
        check_choice("reward_norm", self.reward_norm, REWARD_NORMS)
        check_choice("log_z", self.log_z, LOG_Z_KINDS)
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if self.log_z_lr <= 0 or self.log_z_hidden < 1:
            raise ValueError("log_z_lr must be > 0 and log_z_hidden >= 1")
        if self.importance_clip <= 0:
            raise ValueError(f"importance_clip must be > 0, got {self.importance_clip}")


def _halves(per_draw: torch.Tensor, paired: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, K) -> two (n,) means over disjoint column sets, complementary pairs kept whole."""
    k = per_draw.shape[1]
    unit = 2 if paired else 1
    if k % unit or k // unit < 2:
        need = "an even K >= 4 (two complementary pairs)" if paired else "K >= 2"
        raise ValueError(f"unbiased_square needs {need} mask draws, got K={k}")
    cut = unit * (k // unit // 2)
    return per_draw[:, :cut].float().mean(1), per_draw[:, cut:].float().mean(1)  # (n,), (n,)


@OBJECTIVES.register("trafl")
class TraFL(Objective):
    """Trajectory balance towards the reward-tilted reference (TraFL, arXiv 2605.13935).

    Target pi*(y|x) = pi_ref(y|x) exp(beta r(x, y)) / Z(x). Per row::

        delta = log Z_phi(x) + s_theta(y|x) - s_ref(y|x) - beta' r~(x, y)
        loss  = mean_rows( w * delta^2 )

    s is the estimator's sequence score (``seq``: the mask-mean ELBO / L by default), r~ the
    normalised reward, beta' = beta converted to the units of s (see :class:`TraFLConfig`),
    w the clipped importance weight. With exact log-probs and on-policy samples the expected
    gradient is 2 grad KL(pi_theta || pi*), whose only fixed point is pi*.
    """

    Config = TraFLConfig
    needs_reference = True
    needs_old = True
    estimator_name = "mask_mean"
    default_inner_updates = 1
    group_relative = True
    off_policy = True

    @classmethod
    def min_group_size(cls, config: TraFLConfig) -> int:
        """2 when r~ is centred on the group or log Z is the group's mean (vargrad): with G = 1
        either makes every residual blind to the reward. 1 for raw rewards (``reward_norm=
        none``) with a learned log Z."""
        return 2 if config.reward_norm != "none" or config.log_z == "vargrad" else 1

    def __init__(self, config: TraFLConfig, hidden_size: int) -> None:
        super().__init__(config, hidden_size)
        self.config: TraFLConfig = config
        self.needs_prompt_hidden = config.log_z == "prompt_mlp"
        self.prompt_hidden_grad = self.needs_prompt_hidden and not config.detach_backbone
        self.head: torch.nn.Module | None = None
        if config.log_z == "prompt_mlp":
            self.head = PromptMLPLogZ(hidden_size, config.log_z_hidden)
        elif config.log_z == "scalar":
            self.head = ScalarLogZ()

    def prepare(
        self,
        rewards: torch.Tensor,
        group: torch.Tensor,
        group_size: int,
        lengths: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        out = super().prepare(rewards, group, group_size, lengths)
        r = rewards.detach().float()  # (N,)
        norm = self.config.reward_norm
        if norm == "center":
            r_tilde = r - group_mean(r, group_size)
        elif norm == "center_loo":
            r_tilde = advantages(r, group_size, "leave_one_out")
        elif norm == "center_std":
            r_tilde = (r - group_mean(r, group_size)) / (group_std(r, group_size) + STD_EPS)
        else:
            r_tilde = r
        out["reward_tilde"] = r_tilde  # (N,)
        return out

    def tilt_scale(self, gen_length: int) -> float:
        """beta' such that beta' r~ is in the units of s for a row of length ``gen_length``
        (see TraFLConfig); :meth:`length_scale` carries it to rows of other lengths."""
        cfg = self.config
        seq_beta = cfg.beta * (gen_length if cfg.beta_units == "token" else 1)
        return seq_beta / (gen_length if cfg.score_units == "per_token" else 1)

    def length_scale(self, inputs: LossInputs) -> torch.Tensor | float:
        """(n,) L / n_row for a per-token s averaged over each row's own n positions
        (``positions=until_eos``), else 1. A per-token residual is the sequence residual
        divided by n: delta = (L log Z + n (s_theta - s_ref) - b r~) / n, so both the log Z
        term and a sequence tilt are scaled by L / n per row; then delta = 0 on every row
        exactly at pi*, whatever the lengths. With n = L on every row (``positions=all``)
        this is 1.0 and the residual is the paper's, bit for bit."""
        length = inputs.policy.length
        if self.config.score_units != "per_token" or length is None:
            return 1.0
        return inputs.gen_length / length.float()  # (n,)

    def log_z(self, inputs: LossInputs, score: torch.Tensor, scale: Any = 1.0) -> torch.Tensor:
        """(n,) log Z (per token for a per-token s) for residual ``log Z * scale + score``."""
        if isinstance(self.head, PromptMLPLogZ):
            hidden = inputs.prompt_hidden
            assert hidden is not None  # check_inputs
            return self.head(hidden.detach() if self.config.detach_backbone else hidden)
        if isinstance(self.head, ScalarLogZ):
            return self.head(inputs.num_rows)
        return vargrad_log_z(score / scale, inputs.group_size)  # the group mean of n score / L

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
        self.check_inputs(inputs)
        ref, pol, cfg = inputs.ref, inputs.policy, self.config
        assert ref is not None  # check_inputs
        scale = self.length_scale(inputs)  # (n,) L / n_row, or 1.0
        tilt = self.tilt_scale(inputs.gen_length) * inputs.prepared["reward_tilde"].float()  # (n,)
        if cfg.beta_units == "sequence":
            tilt = tilt * scale  # (n,) b r~ / n_row: the same sequence tilt for every length
        if inputs.old is None:
            w = torch.ones_like(tilt)  # (n,) on-policy: no reuse
        else:
            log_w = (pol.seq.float() - inputs.old.seq.float()).detach()  # (n,)
            w = log_w.exp().clamp(max=cfg.importance_clip)  # (n,)
        if cfg.unbiased_square:
            if pol.per_draw is None or ref.per_draw is None:
                raise ValueError("unbiased_square needs per_draw estimates (n, K) for policy/ref")
            pol_a, pol_b = _halves(pol.per_draw, cfg.paired_draws)  # (n,), (n,)
            ref_a, ref_b = _halves(ref.per_draw, cfg.paired_draws)
            score_a, score_b = pol_a - ref_a - tilt, pol_b - ref_b - tilt  # (n,)
            log_z_a = self.log_z(inputs, score_a, scale)  # (n,)
            log_z_b = self.log_z(inputs, score_b, scale)  # (n,)
            delta_a, delta_b = log_z_a * scale + score_a, log_z_b * scale + score_b  # (n,)
            square, delta = delta_a * delta_b, 0.5 * (delta_a + delta_b)  # (n,)
            log_z = 0.5 * (log_z_a + log_z_b)  # (n,)
        else:
            score = pol.seq.float() - ref.seq.float() - tilt  # (n,)
            log_z = self.log_z(inputs, score, scale)  # (n,)
            delta = log_z * scale + score  # (n,)
            square = delta.square()  # (n,)
        loss = (w * square).mean()
        metrics = self.balance_monitor(inputs, tilt, loss) | {
            "loss": loss.item(),
            "log_z": log_z.detach().mean().item(),
            "delta_abs": delta.detach().abs().mean().item(),
            "log_ratio": (pol.seq.float() - ref.seq.float()).detach().mean().item(),
            "weight": w.mean().item(),
            "weight_clipped": (w >= cfg.importance_clip).float().mean().item(),
        }
        return loss, metrics

    def balance_monitor(
        self, inputs: LossInputs, tilt: torch.Tensor, loss: torch.Tensor
    ) -> dict[str, float]:
        """How far the rows are from balance (docs/TARGET.md):

        - ``loss_at_ref``: the loss at theta = ref with the best log Z per prompt, the group
          variance of the tilt; ``loss / loss_at_ref`` is 1 at the reference and falls
          towards the estimator's noise floor as the policy balances;
        - ``log_ratio_success`` / ``log_ratio_failure``: mean D = log pi_theta - log pi_ref in
          sequence nats (s_theta - s_ref times n for a per-token s) on rows with reward > 0
          and reward <= 0; at pi* their gap is the sequence tilt b (0/1 rewards). NaN when
          no row of the micro-batch is of that kind (the trainer averages over the others).
        """
        pol, ref = inputs.policy, inputs.ref
        assert ref is not None
        tilt = tilt.detach().float()  # (n,)
        centred = tilt - group_mean(tilt, inputs.group_size)  # (n,)
        ratio = (pol.seq.float() - ref.seq.float()).detach()  # (n,) in the units of s
        if self.config.score_units == "per_token":
            n = pol.length if pol.length is not None else inputs.gen_length
            ratio = ratio * n  # (n,) sequence nats
        success = inputs.rewards.float() > 0  # (n,)
        nan = torch.tensor(float("nan"))

        def mean_of(rows: torch.Tensor) -> float:
            return float(ratio[rows].mean()) if bool(rows.any()) else float(nan)

        return {
            "loss_at_ref": float(centred.square().mean()),
            "log_ratio_success": mean_of(success),
            "log_ratio_failure": mean_of(~success),
        }

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        if self.head is None:
            return []
        params = list(self.head.parameters())
        return [{"params": params, "lr": self.config.log_z_lr, "weight_decay": 0.0}]


def sequence_tilt(config: TraFLConfig, group_size: int, length: int) -> float | None:
    """b such that the fixed point is pi_ref(y|x) exp(b r(x, y)) / Z(x): sequence nats per unit
    of reward (TraFLConfig's docstring). ``center`` keeps (G-1)/G of beta unless log Z is the
    group's vargrad mean; ``beta_units="token"`` means beta per position (b = beta * length,
    exact for ``positions=all``). None for ``center_std``, whose fixed point is not a tilt."""
    if config.reward_norm == "center_std":
        return None
    b = config.beta * (length if config.beta_units == "token" else 1)
    if config.reward_norm == "center" and config.log_z != "vargrad":
        b *= (group_size - 1) / group_size
    return b
