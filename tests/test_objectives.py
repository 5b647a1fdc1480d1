"""Objectives: the core claim on an enumerable toy, micro-batch invariance, parity with the
published reductions, clipping, and config errors.

Shapes: N rows (B prompts x G samples, problem-major), L completion length, K mask draws,
H hidden size.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import pytest
import torch

from trafl.core.batch import Estimate
from trafl.core.config import ConfigError, from_dict
from trafl.objectives import (
    OBJECTIVES,
    DiffuGRPOConfig,
    ESPOConfig,
    LossInputs,
    Objective,
    SPGConfig,
    TraFLConfig,
    WD1Config,
    build_objective,
    sequence_tilt,
)
from trafl.objectives.advantages import advantages, group_softmax

# --------------------------------------------------------------------------- the toy

# Joint reference over the 9 sequences (y1, y2) of length 2 over 3 tokens; rows are y1.
# The three correct outcomes have reference mass 0.15, 0.06 and 0.02; an incorrect one
# holds the largest mass (0.30), so the base accuracy is 0.23.
P_REF = torch.tensor([[0.30, 0.15, 0.10], [0.12, 0.08, 0.06], [0.02, 0.07, 0.10]])
REWARD = torch.zeros(3, 3)
REWARD[0, 1] = REWARD[1, 2] = REWARD[2, 0] = 1.0
REF_FIRST = P_REF.sum(1).log()  # (3,) logits of y1
REF_SECOND = (P_REF / P_REF.sum(1, keepdim=True)).log()  # (3, 3) logits of y2 given y1


def joint_logp(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """(9,) log pi(y1, y2) of the autoregressive tabular policy (it can represent any joint)."""
    return (first.log_softmax(0)[:, None] + second.log_softmax(1)).flatten()


def tilted_target(beta: float) -> torch.Tensor:
    """(9,) log pi*(y) = log pi_ref(y) + beta r(y) - log Z, exactly."""
    logits = P_REF.log().flatten() + beta * REWARD.flatten()
    return logits - logits.logsumexp(0)


def kl(logp: torch.Tensor, logq: torch.Tensor) -> float:
    return float((logp.exp() * (logp - logq)).sum())


def entropy(logp: torch.Tensor) -> float:
    return float(-(logp.exp() * logp).sum())


def toy_estimate(
    first: torch.Tensor,
    second: torch.Tensor,
    y1: torch.Tensor,
    y2: torch.Tensor,
    lengths: torch.Tensor | None = None,
) -> Estimate:
    """EXACT log-probs: token_logp = per-token factors, seq = their sum, per_draw = seq x 4.
    With ``lengths`` (3, 3): a per-token score, seq = log pi(y) / n(y), as ``mask_mean`` with
    ``positions=until_eos`` (n = each row's own length) gives in expectation."""
    token_logp = torch.stack([first.log_softmax(0)[y1], second.log_softmax(1)[y1, y2]], 1)
    seq = token_logp.sum(1)  # (N,)
    n = seq.shape[0]
    mask = torch.ones(n, 2, dtype=torch.bool)
    row_length = None
    if lengths is not None:
        row_length = lengths[y1, y2]  # (N,)
        seq = seq / row_length
    return Estimate(
        seq=seq,
        token_logp=token_logp,
        token_mask=mask,
        per_draw=seq[:, None].expand(n, 4),
        length=row_length,
    )


def train_toy(
    config: Any,
    steps: int = 100,
    lr: float = 0.05,
    prompts: int = 4,
    group_size: int = 8,
    lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    """On-policy training of the tabular policy (initialised at the reference) with Adam;
    returns the final (9,) log-probs. gen_length = 1: s is log pi itself (sequence units);
    with ``lengths``, s = log pi / n(y) per row and gen_length = 2 (the longest)."""
    torch.manual_seed(0)
    first = REF_FIRST.clone().requires_grad_(True)
    second = REF_SECOND.clone().requires_grad_(True)
    objective = build_objective(config, hidden_size=4)
    opt = torch.optim.Adam([{"params": [first, second], "lr": lr}, *objective.param_groups(lr)])
    n = prompts * group_size
    group = torch.arange(prompts).repeat_interleave(group_size)  # (N,)
    for _ in range(steps):
        with torch.no_grad():
            idx = torch.multinomial(joint_logp(first, second).exp(), n, replacement=True)
        y1, y2 = idx // 3, idx % 3
        rewards = REWARD[y1, y2]  # (N,)
        inputs = LossInputs(
            policy=toy_estimate(first, second, y1, y2, lengths),
            old=None,
            ref=toy_estimate(REF_FIRST, REF_SECOND, y1, y2, lengths),
            rewards=rewards,
            prepared=objective.prepare(rewards, group, group_size),
            group=group,
            group_size=group_size,
            gen_length=1 if lengths is None else 2,
        )
        loss, _ = objective.loss(inputs)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return joint_logp(first, second).detach()


@pytest.mark.parametrize(
    "config",
    [
        TraFLConfig(beta=2.0, log_z="scalar", reward_norm="none", log_z_lr=0.05),
        TraFLConfig(beta=2.0, log_z="vargrad", reward_norm="center"),
    ],
    ids=["scalar-none", "vargrad-center"],
)
def test_trafl_reaches_the_tilted_target(config: TraFLConfig) -> None:
    """THE CORE CLAIM IN MINIATURE: with exact log-probs, TraFL converges to
    pi* = pi_ref exp(beta r) / Z, keeping the reference's relative mass on correct outcomes."""
    logp = train_toy(config)
    assert kl(logp, tilted_target(2.0)) < 0.02


def test_trafl_centred_reward_with_learned_log_z_tilts_by_g_minus_1_over_g() -> None:
    """Centring on a group mean that includes the sample keeps (G-1)/G of the tilt in the
    expected gradient: the fixed point is pi_ref exp(beta (G-1)/G r) (documented in Config)."""
    config = TraFLConfig(beta=2.0, log_z="scalar", reward_norm="center", log_z_lr=0.05)
    logp = train_toy(config, prompts=16)  # more samples: centred rewards leave residual noise
    assert kl(logp, tilted_target(2.0 * 7 / 8)) < 0.25 * kl(logp, tilted_target(2.0))


# outcome lengths for the per-row test: the correct outcomes have lengths 2, 2 and 1
TOY_LENGTHS = torch.tensor([[1.0, 2.0, 2.0], [1.0, 1.0, 2.0], [1.0, 2.0, 2.0]])


@pytest.mark.parametrize(
    "config",
    [
        TraFLConfig(beta=2.0, log_z="scalar", reward_norm="none", log_z_lr=0.05),
        TraFLConfig(beta=2.0, log_z="vargrad", reward_norm="center"),
    ],
    ids=["scalar-none", "vargrad-center"],
)
def test_trafl_per_row_lengths_reach_the_sequence_tilt(config: TraFLConfig) -> None:
    """A per-token s averaged over each row's own length (positions=until_eos): with the
    residual scaled per row (TraFL.length_scale) the fixed point is still pi_ref exp(b r) / Z
    with the sequence tilt b = beta, whatever the lengths. The same run told only the padded
    length (Estimate.length = None, the old tilt_scale) ends at a length-dependent target."""
    fixed = train_toy(config, lengths=TOY_LENGTHS, steps=200)
    assert kl(fixed, tilted_target(2.0)) < 1e-3  # measured ~1e-7: exact up to Adam's noise
    # the old behaviour: every row divided by L = 2, log Z unscaled
    objective_cls = type(build_objective(config, hidden_size=4))
    old = objective_cls.length_scale
    try:
        objective_cls.length_scale = lambda self, inputs: 1.0  # type: ignore[method-assign]
        unfixed = train_toy(config, lengths=TOY_LENGTHS, steps=200)
    finally:
        objective_cls.length_scale = old  # type: ignore[method-assign]
    assert kl(unfixed, tilted_target(2.0)) > 0.02  # measured 0.032


def test_trafl_sequence_tilt() -> None:
    """b of the fixed point: (G-1)/G beta under center with a learned log Z (the test above
    this one measures it), beta for center_loo, none and vargrad, beta L in token units."""
    assert sequence_tilt(TraFLConfig(beta=32.0), 8, 16) == pytest.approx(28.0)
    assert sequence_tilt(TraFLConfig(beta=4.0, reward_norm="center_loo"), 8, 16) == 4.0
    assert sequence_tilt(TraFLConfig(beta=4.0, log_z="vargrad"), 8, 16) == 4.0
    assert (
        sequence_tilt(TraFLConfig(beta=2.0, beta_units="token", reward_norm="none"), 8, 16) == 32.0
    )
    assert sequence_tilt(TraFLConfig(reward_norm="center_std"), 8, 16) is None


def test_trafl_balance_monitor_against_a_direct_computation() -> None:
    """loss_at_ref = the group variance of the tilt; log ratios in sequence nats per kind."""
    objective = build_objective(TraFLConfig(beta=8.0, log_z="scalar"), H)
    batch = random_batch()
    prepared = objective.prepare(batch["rewards"], batch["group"], G)
    inputs = inputs_for(batch, prepared, slice(None))
    _, metrics = objective.loss(inputs)
    r = batch["rewards"]
    tilt = 8.0 / L * (r - r.view(-1, G).mean(1).repeat_interleave(G))  # (N,) per token
    by_group = tilt.view(-1, G)
    expected_at_ref = float(((by_group - by_group.mean(1, keepdim=True)) ** 2).mean())
    # float32 sums of 8 terms against the same sums: a few ulp (~1e-7 relative) apart
    assert metrics["loss_at_ref"] == pytest.approx(expected_at_ref, rel=1e-6)
    d = (batch["policy"].seq - batch["ref"].seq).detach() * L  # (N,) sequence nats
    assert metrics["log_ratio_success"] == pytest.approx(float(d[r > 0].mean()), rel=1e-6)
    assert metrics["log_ratio_failure"] == pytest.approx(float(d[r <= 0].mean()), rel=1e-6)


def test_reward_maximisation_collapses_on_the_toy() -> None:
    """diffu-GRPO without KL concentrates on one outcome; pi* keeps three."""
    logp = train_toy(DiffuGRPOConfig(beta_kl=0.0))
    assert logp.exp().max() > 0.9
    assert entropy(logp) < 0.25 * entropy(tilted_target(2.0))


# --------------------------------------------------------------------------- random inputs

N, G, L, K, H = 8, 4, 5, 4, 6


def random_batch(seed: int = 0) -> dict[str, Any]:
    """Leaves with grad for the policy; old = policy + noise (ratios on both sides of the clip
    range); varied completion lengths; two groups of four with mixed rewards."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * scale

    lengths = torch.tensor([5, 3, 4, 1, 2, 5, 5, 3])
    mask = torch.arange(L)[None, :] < lengths[:, None]  # (N, L)
    token_logp = (-rand(N, L).abs() - 0.1).requires_grad_(True)  # (N, L)
    per_draw = (-rand(N, K).abs() - 0.5).requires_grad_(True)  # (N, K)
    seq = (-rand(N).abs() - 1.0).requires_grad_(True)  # (N,)
    upper = (-rand(N).abs() - 0.5).requires_grad_(True)  # (N,)
    policy = Estimate(
        seq=seq, token_logp=token_logp, token_mask=mask, per_draw=per_draw, upper=upper
    )

    def shifted(scale: float) -> Estimate:
        return Estimate(
            seq=(seq + rand(N, scale=scale)).detach(),
            token_logp=(token_logp + rand(N, L, scale=scale)).detach(),
            token_mask=mask,
            per_draw=(per_draw + rand(N, K, scale=scale)).detach(),
            upper=(upper + rand(N, scale=scale)).detach(),
        )

    return {
        "policy": policy,
        "old": shifted(0.6),
        "ref": shifted(1.0),
        "rewards": torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.5, 1.0, 1.0]),
        "group": torch.arange(N // G).repeat_interleave(G),
        "lengths": lengths,
        "hidden": rand(N, H).requires_grad_(True),
        "leaves": [seq, token_logp, per_draw, upper],
    }


def inputs_for(batch: dict[str, Any], prepared: dict[str, torch.Tensor], rows: slice) -> LossInputs:
    return LossInputs(
        policy=batch["policy"].rows(rows),
        old=batch["old"].rows(rows),
        ref=batch["ref"].rows(rows),
        rewards=batch["rewards"][rows],
        prepared={k: v[rows] for k, v in prepared.items()},
        group=batch["group"][rows],
        group_size=G,
        gen_length=L,
        prompt_hidden=batch["hidden"][rows],
    )


def default_configs() -> list[Any]:
    return [OBJECTIVES.get(name).Config() for name in OBJECTIVES.names()]


VARIANTS = [
    *[TraFLConfig(log_z=z) for z in ("prompt_mlp", "scalar", "vargrad")],
    TraFLConfig(log_z="prompt_mlp", detach_backbone=False, beta_units="token"),
    *[TraFLConfig(log_z=z, unbiased_square=True) for z in ("scalar", "vargrad")],
    TraFLConfig(unbiased_square=True, paired_draws=False, reward_norm="center_std"),
    TraFLConfig(reward_norm="center_loo", importance_clip=1.2),
    *[DiffuGRPOConfig(token_reduction=t) for t in ("group", "batch", "sequence")],
    DiffuGRPOConfig(scale_rewards=True, beta_kl=0.0),
    *[SPGConfig(token_reduction=t) for t in ("batch", "sequence")],
    SPGConfig(eubo_mix=0.0),
    SPGConfig(eubo_mix=1.0),
    WD1Config(temperature=0.5),
    ESPOConfig(baseline="mean", clip_eps_high=0.3),
]


def build(config: Any, seed: int = 1) -> Objective:
    """The objective, with its parameters (log Z head) randomised so they get gradients."""
    objective = build_objective(config, hidden_size=H)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in objective.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return objective


def gradients(objective: Objective, batch: dict[str, Any], mb_groups: int) -> list[torch.Tensor]:
    """Gradients of sum_mb loss_mb * n_mb / N, as the trainer backpropagates them."""
    prepared = objective.prepare(batch["rewards"], batch["group"], G, lengths=batch["lengths"])
    wrt = [*batch["leaves"], batch["hidden"], *objective.parameters()]
    total = torch.zeros(())
    for start in range(0, N, mb_groups * G):
        rows = slice(start, start + mb_groups * G)
        loss, _ = objective.loss(inputs_for(batch, prepared, rows))
        total = total + loss * (mb_groups * G) / N
    grads = torch.autograd.grad(total, wrt, allow_unused=True)
    return [torch.zeros_like(w) if g is None else g for g, w in zip(grads, wrt, strict=True)]


def config_id(config: Any) -> str:
    """``trafl(log_z=scalar,unbiased_square=True)``: the name and the non-default fields."""
    default = type(config)()
    changed = [
        f"{f.name}={getattr(config, f.name)}"
        for f in dataclasses.fields(config)
        if getattr(config, f.name) != getattr(default, f.name)
    ]
    return f"{config.name}({','.join(changed)})"


@pytest.mark.parametrize("config", default_configs() + VARIANTS, ids=config_id)
def test_gradient_does_not_depend_on_micro_batching(config: Any) -> None:
    objective = build(config)
    batch = random_batch()
    whole = gradients(objective, batch, mb_groups=N // G)
    split = gradients(objective, batch, mb_groups=1)
    assert any(g.abs().sum() > 0 for g in whole)
    for a, b in zip(whole, split, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_every_registered_objective_smoke(name: str) -> None:
    """Finite loss, gradient on the policy, float metrics, sane declarations."""
    cls = OBJECTIVES.get(name)
    config = cls.Config()
    first = dataclasses.fields(config)[0]
    assert first.name == "name" and config.name == name
    objective = build_objective(config, hidden_size=H)
    assert isinstance(objective.estimator_name, str) and objective.default_inner_updates >= 1
    batch = random_batch(seed=3)
    prepared = objective.prepare(batch["rewards"], batch["group"], G, lengths=batch["lengths"])
    loss, metrics = objective.loss(inputs_for(batch, prepared, slice(None)))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(t.grad is not None and t.grad.abs().sum() > 0 for t in batch["leaves"])
    assert metrics and all(type(v) is float and math.isfinite(v) for v in metrics.values())
    for group in objective.param_groups(base_lr=1e-3):
        assert group["lr"] > 0 and all(p.requires_grad for p in group["params"])


# --------------------------------------------------------------------------- TraFL specifics


@pytest.mark.parametrize("log_z", ["prompt_mlp", "scalar", "vargrad"])
def test_trafl_residual_is_log_z_when_policy_is_reference(log_z: str) -> None:
    """Policy == reference and equal rewards within groups: delta = log Z (0 at init)."""
    objective = build_objective(TraFLConfig(log_z=log_z), hidden_size=H)
    batch = random_batch()
    rewards = torch.tensor([1.0] * G + [0.0] * G)
    prepared = objective.prepare(rewards, batch["group"], G)
    inputs = inputs_for(batch, prepared, slice(None))
    inputs = dataclasses.replace(inputs, old=None, ref=inputs.policy.detach(), rewards=rewards)
    loss, metrics = objective.loss(inputs)
    assert loss.item() == 0.0 and metrics["delta_abs"] == 0.0
    if log_z == "scalar":
        with torch.no_grad():
            objective.head.value.fill_(0.7)  # type: ignore[union-attr]
        loss, metrics = objective.loss(inputs)
        assert loss.item() == pytest.approx(0.49) and metrics["log_z"] == pytest.approx(0.7)


def test_trafl_beta_units() -> None:
    """Sequence units divide by L for a per-token score; token units are the paper's form."""
    units = {
        ("sequence", "per_token"): 2.0 / 16,
        ("token", "per_token"): 2.0,
        ("sequence", "sequence"): 2.0,
        ("token", "sequence"): 2.0 * 16,
    }
    for (beta_units, score_units), expected in units.items():
        cfg = TraFLConfig(beta=2.0, beta_units=beta_units, score_units=score_units)
        assert build_objective(cfg, H).tilt_scale(16) == pytest.approx(expected)
    assert OBJECTIVES.get("trafl_path").Config().score_units == "sequence"


def test_trafl_importance_weight_is_clipped_and_detached() -> None:
    objective = build_objective(TraFLConfig(log_z="vargrad", importance_clip=2.0), H)
    batch = random_batch()
    prepared = objective.prepare(batch["rewards"], batch["group"], G)
    inputs = inputs_for(batch, prepared, slice(None))
    on_policy, _ = objective.loss(dataclasses.replace(inputs, old=None))
    stale = dataclasses.replace(inputs.policy.detach(), seq=inputs.policy.seq.detach() - 5.0)
    reused, metrics = objective.loss(dataclasses.replace(inputs, old=stale))
    torch.testing.assert_close(reused, 2.0 * on_policy)
    assert metrics["weight_clipped"] == 1.0


def test_trafl_unbiased_square_uses_disjoint_halves() -> None:
    objective = build_objective(TraFLConfig(log_z="scalar", unbiased_square=True, beta=0.0), H)
    policy = Estimate(seq=torch.zeros(G), per_draw=torch.tensor([[1.0, 2.0, 3.0, 5.0]] * G))
    ref = Estimate(seq=torch.zeros(G), per_draw=torch.zeros(G, 4))
    rewards, group = torch.zeros(G), torch.zeros(G, dtype=torch.long)
    inputs = LossInputs(
        policy, None, ref, rewards, objective.prepare(rewards, group, G), group, G, L
    )
    loss, _ = objective.loss(inputs)
    assert loss.item() == pytest.approx(1.5 * 4.0)  # pairs (1, 2) and (3, 5): means 1.5, 4
    short = dataclasses.replace(
        inputs, policy=Estimate(seq=torch.zeros(G), per_draw=torch.zeros(G, 2))
    )
    with pytest.raises(ValueError, match="K >= 4"):
        objective.loss(short)


@pytest.mark.parametrize("paired", [True, False])
def test_trafl_unbiased_square_drops_the_variance_that_squaring_a_mask_mean_adds(paired) -> None:
    """By exact enumeration over mask draws: every draw of s_theta - s_ref is 0 or 2 with
    probability 1/2, independently (mean 1, variance 1). The square of the K = 4 mean has
    expectation 1 + 1/4; the product of two disjoint halves' means, 1 (the squared mean)."""
    plain, unbiased = (
        build_objective(
            TraFLConfig(log_z="scalar", beta=0.0, unbiased_square=u, paired_draws=paired), H
        )
        for u in (False, True)
    )
    rewards, group = torch.zeros(G), torch.zeros(G, dtype=torch.long)
    losses = {False: [], True: []}
    for draws in itertools.product([0.0, 2.0], repeat=4):  # 16 equally likely draws
        per_draw = torch.tensor([draws] * G)
        policy = Estimate(seq=per_draw.mean(1), per_draw=per_draw)
        ref = Estimate(seq=torch.zeros(G), per_draw=torch.zeros(G, 4))
        for u, objective in ((False, plain), (True, unbiased)):
            prepared = objective.prepare(rewards, group, G)
            inputs = LossInputs(policy, None, ref, rewards, prepared, group, G, L)
            losses[u].append(objective.loss(inputs)[0].item())  # log Z = 0 at the start
    assert sum(losses[False]) / 16 == 1.25  # exact: every value is a multiple of 1/16
    assert sum(losses[True]) / 16 == 1.0


# --------------------------------------------------------------------------- baselines


def test_baselines_match_their_published_reductions() -> None:
    """On one group (their device micro-batch), each loss equals the formula in its code."""
    batch, rows = random_batch(), slice(0, G)
    pol, old, ref = batch["policy"].rows(rows), batch["old"].rows(rows), batch["ref"].rows(rows)
    r, mask = batch["rewards"][rows], pol.token_mask.float()
    adv = r - r.mean()

    def close(x: float) -> object:
        return pytest.approx(x, rel=1e-5, abs=1e-6)

    def ours(config: Any) -> float:
        objective = build_objective(config, H)
        prepared = objective.prepare(batch["rewards"], batch["group"], G, batch["lengths"])
        return objective.loss(inputs_for(batch, prepared, rows))[0].item()

    # d1: (per_token_loss * completion_mask).sum() / completion_mask.sum()
    ratio = (pol.token_logp - old.token_logp).exp()
    d = ref.token_logp - pol.token_logp
    per_token = -torch.min(ratio * adv[:, None], ratio.clamp(0.5, 1.5) * adv[:, None])
    per_token = per_token + 0.04 * (d.exp() - d - 1)
    assert ours(DiffuGRPOConfig()) == close(((per_token * mask).sum() / mask.sum()).item())
    # wd1: -((logps * mask).sum(-1) * softmax(A)).sum() + ((logps * mask).sum(-1) * softmax(-A)).sum()
    s = (pol.token_logp * mask).sum(-1)
    expected = -(s * adv.softmax(0)).sum() + (s * (-adv).softmax(0)).sum()
    assert ours(WD1Config()) == close(expected.item())
    # SPG: (-A * l * |o|).sum() / |o|.sum(), l = ELBO if A > 0 else 0.5 EUBO + 0.5 ELBO
    length = mask.sum(1)
    bound = torch.where(adv > 0, pol.seq, 0.5 * pol.upper + 0.5 * pol.seq)
    assert ours(SPGConfig()) == close(((-adv * bound * length).sum() / length.sum()).item())
    # ESPO: -min(...).sum() / B + beta * k2.sum() / (B * L), leave-one-out advantages
    loo = r - (r.sum() - r) / (G - 1)
    rho = ((pol.seq - old.seq) / L).exp()
    policy_term = -torch.min(rho * loo, rho.clamp(0.8, 1.2) * loo).sum() / G
    k2 = (pol.seq - ref.seq).square() / 2
    assert ours(ESPOConfig()) == close((policy_term + 0.01 * k2.sum() / (G * L)).item())


def test_advantage_helpers() -> None:
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 3.0, 3.0, 3.0, 3.0])
    torch.testing.assert_close(advantages(r, 4), torch.tensor([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]))
    loo = advantages(r, 4, "leave_one_out")
    torch.testing.assert_close(loo, advantages(r, 4) * 4 / 3)
    w = group_softmax(r, 4)
    torch.testing.assert_close(w.view(2, 4).sum(1), torch.ones(2))


@pytest.mark.parametrize("objective_name", ["diffu_grpo", "espo"])
def test_ppo_clip_stops_the_gradient_beyond_the_trust_region(objective_name: str) -> None:
    """Rows whose ratio left [1 - eps, 1 + eps] in the direction of their advantage get no
    gradient; rows that left it the other way still do."""
    config = (
        DiffuGRPOConfig(beta_kl=0.0) if objective_name == "diffu_grpo" else ESPOConfig(beta_kl=0.0)
    )
    objective = build_objective(config, H)
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0])  # advantages +, -, +, -
    log_ratio = torch.tensor([1.0, -1.0, -1.0, 1.0])  # out above, below, below, above
    per_token = objective_name == "diffu_grpo"
    length = 1 if per_token else L
    logp = torch.full((G, length), -1.0, requires_grad=True)
    policy = Estimate(
        seq=logp.sum(1), token_logp=logp, token_mask=torch.ones(G, length, dtype=torch.bool)
    )
    old_logp = (logp - log_ratio[:, None]).detach()  # sequence: (ELBO - old) / L = log_ratio
    old = Estimate(seq=old_logp.sum(1), token_logp=old_logp)
    group = torch.zeros(G, dtype=torch.long)
    prepared = objective.prepare(rewards, group, G)
    inputs = LossInputs(policy, old, None, rewards, prepared, group, G, length)
    loss, metrics = objective.loss(inputs)
    loss.backward()
    grad = logp.grad.abs().sum(1)  # type: ignore[union-attr]
    assert grad[0] == 0 and grad[1] == 0
    assert grad[2] > 0 and grad[3] > 0
    assert metrics["clip_frac"] == 0.5


# --------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("cls", "key", "valid"),
    [
        (TraFLConfig, "log_z", ["prompt_mlp", "scalar", "vargrad"]),
        (TraFLConfig, "reward_norm", ["center", "center_loo", "center_std", "none"]),
        (TraFLConfig, "beta_units", ["sequence", "token"]),
        (DiffuGRPOConfig, "token_reduction", ["group", "batch", "sequence"]),
        (SPGConfig, "token_reduction", ["group", "batch", "sequence"]),
        (ESPOConfig, "baseline", ["leave_one_out", "mean"]),
    ],
)
def test_config_errors_list_valid_choices(cls: type, key: str, valid: list[str]) -> None:
    for make in (lambda: cls(**{key: "bogus"}), lambda: from_dict(cls, {key: "bogus"})):
        with pytest.raises(ValueError) as info:
            make()
        assert all(choice in str(info.value) for choice in valid)
    with pytest.raises(ConfigError):
        from_dict(cls, {"no_such_key": 1})


def test_unknown_objective_lists_registered_names() -> None:
    with pytest.raises(ValueError) as info:
        OBJECTIVES.get("grpo_typo")
    assert all(name in str(info.value) for name in OBJECTIVES.names())


def test_inputs_are_validated() -> None:
    objective = build_objective(TraFLConfig(), H)
    batch = random_batch()
    prepared = objective.prepare(batch["rewards"], batch["group"], G)
    with pytest.raises(ValueError, match="prompt_hidden"):
        objective.loss(
            dataclasses.replace(inputs_for(batch, prepared, slice(None)), prompt_hidden=None)
        )
    with pytest.raises(ValueError, match="problem-major"):
        objective.prepare(batch["rewards"], batch["group"].flip(0).roll(1), G)
    with pytest.raises(ValueError, match="lengths"):
        build_objective(SPGConfig(token_reduction="batch"), H).prepare(
            batch["rewards"], batch["group"], G
        )
