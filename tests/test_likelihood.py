"""Likelihood estimators against exact enumeration on a 5-token vocabulary and L = 4.

With L = 4 every mask (15 nonempty subsets) and every reveal order (24) can be enumerated,
so the ELBO, the random-order log-likelihood and SPG's bound are computed exactly and the
Monte Carlo estimators are checked to converge to the quantity their docstrings name.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math

import pytest
import torch

from tests.conftest import make_tiny
from trafl.core.batch import Estimate, Rollout, completion_mask_from_eos
from trafl.likelihood import ESTIMATORS, Estimator, slice_draw
from trafl.likelihood.diffusion import masked_token_logp
from trafl.models import TinyDiffusionLM
from trafl.sampling import SamplerConfig, Trajectory, left_pad, sample

L = 4
COUPLINGS = ["iid", "complementary", "antithetic"]


def tiny() -> tuple[TinyDiffusionLM, torch.Tensor, torch.Tensor]:
    model = make_tiny(alphabet="ab", seed=5, scale=2.0)
    ids, mask = left_pad([model.tokenizer.encode("ab")], model.pad_token_id)
    return model, ids, mask


def completion(model: TinyDiffusionLM, text: str) -> torch.Tensor:
    """(1, L) ids of ``text`` EOS-filled to L."""
    return torch.tensor([model.tokenizer.encode(text) + [model.eos_token_id] * (L - len(text))])


def make_batch(model, ids, mask, y: torch.Tensor, rows: int) -> Rollout:
    """``rows`` copies of one (prompt, completion) with a dummy trajectory."""
    y = y.expand(rows, -1)
    zeros, cm = torch.zeros(y.shape), completion_mask_from_eos(y, model.eos_token_id)
    traj = Trajectory(torch.zeros(y.shape, dtype=torch.long), zeros, zeros)
    group = torch.zeros(rows, dtype=torch.long)
    return Rollout(
        ids.expand(rows, -1),
        mask.expand(rows, -1),
        y,
        traj,
        completion_mask=cm,
        rewards=zeros[:, 0],
        group=group,
    )


@torch.no_grad()
def exact(model, ids, mask, y: torch.Tensor, n: int) -> dict:
    """Exact quantities of the first n positions (the rest always hidden): ELBO, log p of the
    random-order process, and per position the log-probs of y_k over the 24 orders."""
    subsets = [s for m in range(1, n + 1) for s in itertools.combinations(range(n), m)]
    masks = torch.zeros(len(subsets), L, dtype=torch.bool)
    for r, s in enumerate(subsets):
        masks[r, list(s)] = True
    masks[:, n:] = True
    k = len(subsets)
    table = masked_token_logp(model, ids.expand(k, -1), mask.expand(k, -1), y.expand(k, -1), masks)
    row = {s: table[r] for r, s in enumerate(subsets)}
    # ELBO = sum_M B(|M|, n-|M|+1) sum_{i in M} log p (tests/test_diffusion.py) = E_order[...]
    elbo = sum(row[s][list(s)].sum().item() / (len(s) * math.comb(n, len(s))) for s in subsets)
    paths, per_pos = [], {i: [] for i in range(n)}
    for order in itertools.permutations(range(n)):
        steps = [row[tuple(sorted(order[j:]))][pos].item() for j, pos in enumerate(order)]
        paths.append(sum(steps))
        for pos, v in zip(order, steps, strict=True):
            per_pos[pos].append(v)
    log_p = torch.logsumexp(torch.tensor(paths), 0).item() - math.log(len(paths))
    return {"elbo": elbo, "log_p": log_p, "per_pos": per_pos}


def eubo(per_pos: dict, b: float) -> float:
    """(1/b) * sum_k log E_order[p(y_k | revealed before k)^b]: SPG's EUBO, exactly."""
    logs = [
        torch.logsumexp(b * torch.tensor(v), 0).item() - math.log(len(v)) for v in per_pos.values()
    ]
    return sum(logs) / b


def mc(values: torch.Tensor) -> tuple[float, float]:
    return values.mean().item(), values.std().item() / math.sqrt(values.shape[0])


def estimator(name: str, **kw: object) -> Estimator:
    cls = ESTIMATORS.get(name)
    return cls(cls.Config(**kw))


# ---------------------------------------------------------------- masks and their couplings


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_each_mask_is_marginally_a_llada_draw_and_pairs_are_coupled(coupling):
    """Every member: count uniform on {1..n}, subset uniform (P(M) = 1 / (n * C(n, |M|)))."""
    model, ids, mask = tiny()
    rows = 6000
    for text, n in (("abba", 4), ("ab", 3)):  # "ab" + EOS-filled: 3 positions up to EOS
        batch = make_batch(model, ids, mask, completion(model, text), rows)
        est = estimator("mask_mean", num_masks=2, coupling=coupling, positions="until_eos")
        masks = est.draw(batch, torch.Generator().manual_seed(1))["masks"]  # (N, 2, L)
        assert not masks[:, :, n:].any()  # never beyond the row's own length
        for member in range(2):
            codes = (masks[:, member, :n].long() * (2 ** torch.arange(n))).sum(-1)
            freq = torch.bincount(codes, minlength=2**n).float() / rows
            assert freq[0] == 0  # never empty
            for code in range(1, 2**n):
                size = bin(code).count("1")
                p = 1 / (n * math.comb(n, size))
                assert abs(freq[code] - p) < 4 * math.sqrt(p * (1 - p) / rows) + 1e-9
        a, b = masks[:, 0, :n], masks[:, 1, :n]
        if coupling == "complementary":  # complements, except the full mask paired with itself
            full = a.all(-1)
            assert ((a ^ b).all(-1) | (full & b.all(-1))).all()
            assert full.float().mean().item() == pytest.approx(1 / n, abs=0.02)
        if coupling == "antithetic":
            assert (a.sum(-1) + b.sum(-1) == n + 1).all()
            assert ((a & b).sum(-1) == 1).all() and (a | b).all()


def test_mask_mean_reports_the_length_it_averages_over():
    """Estimate.length = n, the positions a per-token score is a mean over: L with
    positions="all", the row's length up to and including its first EOS with "until_eos"
    (TraFL scales each row's residual by it)."""
    model, ids, mask = tiny()
    for text, n_eos in (("abba", 4), ("ab", 3)):
        batch = make_batch(model, ids, mask, completion(model, text), 2)
        length = batch.completion_ids.shape[1]
        for positions, n in (("all", length), ("until_eos", n_eos)):
            est = estimator("mask_mean", num_masks=2, positions=positions)
            out = est.estimate(model, batch, est.draw(batch, torch.Generator().manual_seed(0)))
            assert out.length is not None and out.length.tolist() == [float(n)] * 2


# ---------------------------------------------------------------- convergence to exact values


CASES = [(name, c, "abba", True) for name in ("elbo", "mask_mean") for c in COUPLINGS]
CASES += [("mask_mean", "complementary", "ba", True), ("mask_mean", "complementary", "abba", False)]


@torch.no_grad()
@pytest.mark.parametrize(("name", "coupling", "text", "full_mask"), CASES)
def test_mask_estimators_converge_to_the_exact_elbo(name, coupling, text, full_mask):
    """E[elbo] = ELBO and E[mask_mean] = ELBO / n over the n positions up to EOS ("ba" + EOS:
    n = 3 with positions="until_eos"); never drawing the full mask is detectably biased."""
    model, ids, mask = tiny()
    y, n = completion(model, text), min(len(text) + 1, L)
    ex = exact(model, ids, mask, y, n)
    assert ex["elbo"] < ex["log_p"]  # Jensen over orders
    target = ex["elbo"] / n if name == "mask_mean" else ex["elbo"]
    batch = make_batch(model, ids, mask, y, 4000)
    kw = dict(num_masks=2, coupling=coupling, positions="until_eos", full_mask=full_mask)
    est = estimator(name, **kw)
    mean, se = mc(est.estimate(model, batch, est.draw(batch, torch.Generator().manual_seed(2))).seq)
    assert se < 0.005 * abs(target)  # tight enough to mean something
    if full_mask:
        assert abs(mean - target) < 4 * se, (mean, target, se)
    else:
        assert mean < target - 4 * se, (mean, target, se)


@torch.no_grad()
def test_blockwise_bounds_sandwich_the_random_order_log_likelihood():
    """One block, no prompt masking: E[seq] = ELBO / L <= log p / L; each position's EUBO
    average is unbiased for E_order[p_k^b]; the exact EUBO exceeds the ELBO for any b and
    log p for b >= L (Hoelder); with many draws ``upper`` approaches it from below."""
    model, ids, mask = tiny()
    y = completion(model, "abba")
    ex = exact(model, ids, mask, y, L)
    b = 1.5
    assert eubo(ex["per_pos"], 1.0) >= ex["elbo"]
    assert eubo(ex["per_pos"], b) >= eubo(ex["per_pos"], 1.0)  # grows with b
    assert eubo(ex["per_pos"], L) >= ex["log_p"] >= ex["elbo"]
    batch = make_batch(model, ids, mask, y, 4000)
    est = estimator("blockwise", prompt_mask_prob=0.0, positions="all", eubo_b=b)
    out = est.estimate(model, batch, est.draw(batch, torch.Generator().manual_seed(4)))
    mean, se = mc(out.seq)
    assert abs(mean - ex["elbo"] / L) < 4 * se
    terms = out.extras["log_eubo_terms"].exp() * out.extras["eubo_mask"]  # (N, L)
    for k in range(L):
        moment = torch.logsumexp(b * torch.tensor(ex["per_pos"][k]), 0).exp().item() / 24
        m, s = mc(terms[:, k])
        assert abs(m - moment) < 4 * s, (k, m, moment, s)
    target = eubo(ex["per_pos"], b) / L
    batch = make_batch(model, ids, mask, y, 200)
    est = estimator("blockwise", num_draws=32, prompt_mask_prob=0.0, positions="all")
    m, s = mc(est.estimate(model, batch, est.draw(batch, torch.Generator().manual_seed(5))).upper)
    assert target - 0.03 < m < target + 4 * s, (m, target, s)


def test_blockwise_masks_follow_spg_block_structure():
    model, ids, mask = tiny()
    batch = make_batch(model, ids, mask, completion(model, "abab"), 500)
    est = estimator("blockwise", block_length=2, prompt_mask_prob=0.0, positions="all")
    d = est.draw(batch, torch.Generator().manual_seed(6))
    masks = d["masks"]  # (N, 2, L)
    first = masks[..., 2:].all(-1) & masks[..., :2].any(-1)  # block 0 chosen: block 1 masked
    second = ~masks[..., :2].any(-1) & masks[..., 2:].any(-1)  # block 1 chosen: block 0 clean
    assert (first ^ second).all() and not d["prompt_masks"].any()
    assert (first[:, 0] != first[:, 1]).all()  # m = 2 draws take the two blocks (a permutation)
    # until_eos: after the EOS everything is hidden and unscored; only block 0 holds tokens
    batch = make_batch(model, ids, mask, completion(model, "a"), 50)
    est = estimator("blockwise", block_length=2, prompt_mask_prob=1.0)
    d = est.draw(batch, torch.Generator().manual_seed(7))
    assert d["masks"][..., 2:].all() and d["masks"][..., :2].any(-1).all()
    assert d["prompt_masks"].all()  # rate 1: every (non-padding) prompt token hidden
    with pytest.raises(ValueError, match="multiple of block_length 3; valid block lengths"):
        estimator("blockwise", block_length=3).draw(batch, torch.Generator())


# ---------------------------------------------------------------- one-step (d1)


def test_one_step_masks_prompt_at_rate_p_never_padding_and_all_completion_tokens():
    model = make_tiny(alphabet="ab", seed=3)
    tok = model.tokenizer
    ids, mask = left_pad([tok.encode("abab"), tok.encode("b")] * 1000, tok.pad_token_id)
    batch = make_batch(model, ids, mask, completion(model, "ab"), 2000)
    est = estimator("one_step")
    hidden = est.draw(batch, torch.Generator().manual_seed(8))["prompt_masks"]  # (N, P)
    assert not (hidden & ~mask).any()  # padding never masked
    rate, se = mc(hidden[mask].float())
    assert abs(rate - 0.15) < 4 * se
    small, d = batch.rows(slice(0, 4)), {"prompt_masks": hidden[:4]}
    out = est.estimate(model, small, d)
    noisy_prompt = small.prompt_ids.masked_fill(d["prompt_masks"], model.mask_token_id)
    all_masked = torch.ones(4, L, dtype=torch.bool)
    expect = masked_token_logp(
        model, noisy_prompt, small.prompt_mask, small.completion_ids, all_masked
    )
    torch.testing.assert_close(out.token_logp, expect)
    assert out.token_mask.equal(small.completion_mask)  # d1 counts tokens up to the first EOS
    torch.testing.assert_close(out.seq, (expect * small.completion_mask).sum(1))


# ---------------------------------------------------------------- exact trajectory replay


def sampled(remasking: str = "low_confidence", steps: int = 8):
    """4 rows sampled from a tiny model (L = 8, two blocks of 4), with their trajectories."""
    model = make_tiny(alphabet="ab", seed=1)
    prompts = [model.tokenizer.encode(t) for t in ("ab", "b", "abba", "ba")]
    ids, mask = left_pad(prompts, model.pad_token_id)
    cfg = SamplerConfig(gen_length=8, block_length=4, steps=steps, remasking=remasking)
    r = sample(model, ids, mask, cfg, torch.Generator().manual_seed(0))
    cm = completion_mask_from_eos(r.completion_ids, model.eos_token_id)
    rows = torch.arange(4)
    return model, Rollout(
        ids,
        mask,
        r.completion_ids,
        r.trajectory,
        completion_mask=cm,
        rewards=rows * 0.0,
        group=rows,
    )


@torch.no_grad()
@pytest.mark.parametrize(("remasking", "steps"), [("low_confidence", 8), ("random", 4)])
def test_trajectory_replay_reproduces_the_sampler_and_a_plain_loop(remasking, steps):
    model, batch = sampled(remasking, steps)
    out = estimator("trajectory", steps_per_forward=3).estimate(model, batch, {})
    torch.testing.assert_close(out.token_logp, batch.trajectory.token_logp, atol=1e-5, rtol=0)
    reveal = batch.trajectory.reveal_step
    for i in range(batch.num_rows):  # reference: one state per step, one row at a time
        total = 0.0
        for s in range(steps):
            row = batch.rows(slice(i, i + 1))
            state = reveal[i : i + 1] >= s  # (1, L)
            lp = masked_token_logp(
                model, row.prompt_ids, row.prompt_mask, row.completion_ids, state
            )
            total += lp[0, reveal[i] == s].sum().item()
        assert out.seq[i].item() == pytest.approx(total, abs=1e-4)
    eos = estimator("trajectory", positions="until_eos").estimate(model, batch, {})
    torch.testing.assert_close(eos.seq, (out.token_logp * batch.completion_mask).sum(1))


def test_fresh_orders_hand_out_the_recorded_steps_uniformly():
    """order=fresh: each draw gives every row its recorded multiset of reveal steps (as many
    positions a step as the sampler revealed), in a uniformly random order, and the estimate is
    the recorded-path replay along that order; the recorded mode draws nothing."""
    model, batch = sampled("random", 4)  # L = 8, two positions a step
    assert estimator("trajectory").draw(batch, torch.Generator().manual_seed(0)) == {}
    fresh = estimator("trajectory", order="fresh", steps_per_forward=3)
    draw = fresh.draw(batch, torch.Generator().manual_seed(0))
    recorded = batch.trajectory.reveal_step
    assert torch.equal(draw["reveal"].sort(dim=1).values, recorded.sort(dim=1).values)
    assert not torch.equal(draw["reveal"], recorded)
    moved = dataclasses.replace(batch.trajectory, reveal_step=draw["reveal"])
    replay = estimator("trajectory").estimate(
        model, dataclasses.replace(batch, trajectory=moved), {}
    )
    with torch.no_grad():
        torch.testing.assert_close(fresh.estimate(model, batch, draw).seq, replay.seq)


@torch.no_grad()
def test_fresh_orders_average_to_the_exact_random_order_elbo():
    """With one position a step (L = 4, 24 orders), a fresh order is uniform over the 24, and
    the mean of seq over fresh orders is E_order[log P(y | order)] = the exact ELBO."""
    model, ids, mask = tiny()
    y = completion(model, "ab")
    rows = 4800
    batch = make_batch(model, ids, mask, y, rows)
    steps = torch.arange(L).expand(rows, -1)  # recorded: position i revealed at step i
    batch = dataclasses.replace(
        batch, trajectory=dataclasses.replace(batch.trajectory, reveal_step=steps)
    )
    fresh = estimator("trajectory", order="fresh")
    draw = fresh.draw(batch, torch.Generator().manual_seed(3))
    orders = [tuple(r) for r in draw["reveal"].argsort(dim=1).tolist()]
    counts = [orders.count(o) for o in itertools.permutations(range(L))]
    # each count is Binomial(4800, 1/24): mean 200, sd sqrt(4800 * 1/24 * 23/24) = 13.8
    assert min(counts) > 200 - 5 * 13.9 and max(counts) < 200 + 5 * 13.9
    mean, se = mc(fresh.estimate(model, batch, draw).seq)
    assert mean == pytest.approx(exact(model, ids, mask, y, L)["elbo"], abs=5 * se)


# ---------------------------------------------------------------- properties of every estimator


def all_estimators() -> list[Estimator]:
    return [
        estimator("mask_mean"),
        estimator("mask_mean", coupling="antithetic", positions="until_eos"),
        estimator("elbo", coupling="iid", num_masks=3),
        estimator("one_step", prompt_mask_prob=0.5),
        estimator("blockwise", block_length=4),
        estimator("trajectory"),
        estimator("trajectory", order="fresh"),
    ]


def test_every_registered_estimator_is_covered_and_follows_the_interface():
    assert {e.config.name for e in all_estimators()} == set(ESTIMATORS.names())
    for name in ESTIMATORS:
        cls = ESTIMATORS.get(name)
        assert dataclasses.fields(cls.Config)[0].name == "name" and cls.Config().name == name
        assert isinstance(cls(), Estimator)


def fields(e: Estimate) -> list[torch.Tensor]:
    parts = [e.seq, e.per_draw, e.token_logp, e.upper]
    return [p for p in parts if p is not None]


@torch.no_grad()
def test_shared_draw_cancels_between_identical_models_and_microbatches_agree():
    model, batch = sampled()
    ref = copy.deepcopy(model)
    for est in all_estimators():
        draw = est.draw(batch, torch.Generator().manual_seed(9))
        policy = est.estimate(model, batch, draw)
        assert (policy.seq - est.estimate(ref, batch, draw).seq).eq(0).all(), est.config
        other = est.estimate(model, batch, est.draw(batch, torch.Generator().manual_seed(10)))
        if draw:  # stochastic: another draw gives another value
            assert not torch.equal(policy.seq, other.seq), est.config
        slices = (slice(0, 1), slice(1, 4))
        parts = [est.estimate(model, batch.rows(s), slice_draw(draw, s)) for s in slices]
        for full, *pieces in zip(fields(policy), *map(fields, parts), strict=True):
            torch.testing.assert_close(full, torch.cat(pieces), atol=1e-5, rtol=1e-5)


def test_gradients_flow_through_every_estimator():
    model, batch = sampled()
    for est in all_estimators():
        model.zero_grad()
        out = est.estimate(model, batch, est.draw(batch, torch.Generator().manual_seed(11)))
        loss = out.seq.sum() + (out.upper.sum() if out.upper is not None else 0.0)
        loss.backward()
        grad = model.embed.weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_config_errors_list_the_valid_choices():
    with pytest.raises(ValueError, match="num_masks must be even"):
        estimator("mask_mean", num_masks=3)
    with pytest.raises(ValueError, match="'iid', 'complementary', 'antithetic'"):
        estimator("elbo", coupling="paired")
    with pytest.raises(ValueError, match="'all', 'until_eos'"):
        estimator("one_step", positions="eos")
    with pytest.raises(ValueError, match="prompt_mask_prob"):
        estimator("blockwise", prompt_mask_prob=1.5)
    with pytest.raises(ValueError, match="steps_per_forward"):
        estimator("trajectory", steps_per_forward=0)
    with pytest.raises(ValueError, match="invalid order 'random'; valid: 'recorded', 'fresh'"):
        estimator("trajectory", order="random")
    with pytest.raises(ValueError, match="unknown estimator 'nope'; valid: blockwise, elbo"):
        ESTIMATORS.get("nope")
