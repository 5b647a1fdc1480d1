"""Batched generation with per-sequence lengths: a row of a mixed batch is the row alone."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tests.conftest import make_tiny
from tests.test_sampler import PROMPTS, Spy, prompts_batch
from trafl.models.base import denoiser_logits
from trafl.sampling import SamplerConfig, at_length, generate, left_pad, row_plans, sample

LENGTHS = [8, 4, 12]  # one per prompt of PROMPTS


def generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_at_length_scales_steps_for_one_block_and_keeps_steps_per_block_with_blocks():
    one_block = SamplerConfig(gen_length=32, steps=16, temperature=1.0)
    assert at_length(one_block, 32) is one_block
    assert (at_length(one_block, 24).gen_length, at_length(one_block, 24).resolved_steps()) == (
        24,
        12,
    )
    assert at_length(one_block, 1).resolved_steps() == 1  # never zero steps
    assert at_length(one_block, 24).block_length is None  # one block of the row's own length
    blocks = SamplerConfig(gen_length=32, block_length=8, steps=8)  # 2 steps per block
    short = at_length(blocks, 16)
    assert (short.resolved_block_length(), short.resolved_steps()) == (8, 4)
    plans = row_plans(blocks, [32, 16, 8], 3)
    assert [p.num_blocks for p in plans] == [4, 2, 1]
    assert all(p.schedule == (4, 4) for p in plans)
    assert plans[1].span(1) == (8, 16) and plans[1].span(2) is None


def test_an_explicit_block_of_gen_length_is_one_block():
    config = SamplerConfig(gen_length=16, block_length=16, steps=8)
    short = at_length(config, 8)
    assert (short.resolved_block_length(), short.resolved_steps()) == (8, 4)


def test_exact_confidence_ties_break_the_same_way_in_a_batch_and_alone():
    """A very confident model rounds exp(logp) to exactly 1.0 for several positions; which of
    them is revealed must not depend on the window width or the other rows' counts."""
    config = SamplerConfig(gen_length=12, steps=6, temperature=0.0)
    ties = 0
    for seed in range(3):
        model = make_tiny(seed=seed, scale=30.0)
        ids, mask = prompts_batch(model)
        out = sample(model, ids, mask, config, None, [12, 4, 8])
        for i, length in enumerate([12, 4, 8]):
            alone = sample(model, ids[i : i + 1], mask[i : i + 1], at_length(config, length))
            assert torch.equal(
                out.trajectory.reveal_step[i, :length], alone.trajectory.reveal_step[0]
            )
            ties += int((alone.trajectory.token_logp[0] == 0).sum())  # exp(logp) == 1.0
    assert ties > 0  # the case is exercised


def test_length_errors_name_the_problem():
    blocks = SamplerConfig(gen_length=12, block_length=4, steps=6)
    with pytest.raises(ValueError, match="multiple of block_length 4"):
        at_length(blocks, 6)
    with pytest.raises(ValueError, match=r"in 1\.\.gen_length=12"):
        at_length(blocks, 16)
    with pytest.raises(ValueError, match=r"in 1\.\.gen_length=12"):
        at_length(blocks, 0)
    with pytest.raises(ValueError, match="2 lengths for 3 rows"):
        row_plans(blocks, [4, 8], 3)


@pytest.mark.parametrize(
    "config",
    [
        SamplerConfig(gen_length=12, block_length=4, steps=6, temperature=0.0),
        SamplerConfig(gen_length=12, block_length=6, steps=4, temperature=1.0),
        SamplerConfig(gen_length=8, block_length=4, steps=8, temperature=0.7, remasking="random"),
    ],
)
def test_all_rows_at_full_length_equal_the_plain_sampler(tiny_model, config):
    ids, mask = prompts_batch(tiny_model)
    for gen in (lambda: torch.Generator().manual_seed(5), lambda: generators([1, 2, 3])):
        plain = sample(tiny_model, ids, mask, config, gen())
        full = sample(tiny_model, ids, mask, config, gen(), [config.gen_length] * 3)
        assert torch.equal(plain.completion_ids, full.completion_ids)
        assert torch.equal(plain.trajectory.reveal_step, full.trajectory.reveal_step)
        assert torch.equal(plain.trajectory.token_logp, full.trajectory.token_logp)
        assert torch.equal(plain.trajectory.sample_logp, full.trajectory.sample_logp)
        assert plain.num_steps == full.num_steps and plain.lengths is None
        assert full.lengths.tolist() == [config.gen_length] * 3


MIXED = [
    SamplerConfig(gen_length=12, steps=6, temperature=1.0),  # one block per row, steps scale
    SamplerConfig(gen_length=12, temperature=0.0),
    SamplerConfig(gen_length=12, block_length=4, steps=6, temperature=1.0),
    SamplerConfig(gen_length=12, block_length=4, steps=12, temperature=0.8, remasking="random"),
    SamplerConfig(gen_length=12, steps=12, temperature=1.0, top_p=0.9),
    SamplerConfig(gen_length=12, block_length=4, temperature=1.0, parallel_threshold=0.3),
    SamplerConfig(gen_length=12, temperature=1.0, parallel_threshold=0.5),
    SamplerConfig(gen_length=12, block_length=4, steps=6, temperature=1.0, cache="prefix"),
    SamplerConfig(gen_length=12, block_length=4, steps=6, temperature=1.0, cache="dual"),
    SamplerConfig(gen_length=12, steps=6, temperature=0.0, cache="dual"),
]


@pytest.mark.parametrize("config", MIXED, ids=lambda c: repr(c)[14:90])
def test_a_row_in_a_mixed_batch_equals_the_row_sampled_alone(config):
    """Per-row generators: the same noise, schedule and tokens as the row alone (same prompt
    width), in every mode, including the approximate caches."""
    model = make_tiny(seed=4)
    ids, mask = prompts_batch(model)
    seeds = [11, 12, 13]
    out = sample(model, ids, mask, config, generators(seeds), LENGTHS)
    traj = out.trajectory
    for i, length in enumerate(LENGTHS):
        alone = sample(
            model,
            ids[i : i + 1],
            mask[i : i + 1],
            at_length(config, length),
            generators(seeds[i : i + 1]),
        )
        assert out.completion_ids[i, :length].tolist() == alone.completion_ids[0].tolist()
        assert torch.equal(traj.reveal_step[i, :length], alone.trajectory.reveal_step[0])
        torch.testing.assert_close(traj.token_logp[i, :length], alone.trajectory.token_logp[0])
        torch.testing.assert_close(traj.sample_logp[i, :length], alone.trajectory.sample_logp[0])
        # past its length: EOS, never revealed, no log-prob
        assert (out.completion_ids[i, length:] == model.eos_token_id).all()
        assert (traj.reveal_step[i, length:] == -1).all()
        assert (traj.token_logp[i, length:] == 0).all() and (
            traj.sample_logp[i, length:] == 0
        ).all()
    assert out.num_steps == int(traj.reveal_step.max()) + 1


@pytest.mark.parametrize(
    "config",
    [
        SamplerConfig(gen_length=12, steps=6, temperature=1.0),
        SamplerConfig(gen_length=12, block_length=4, temperature=1.0, parallel_threshold=0.3),
    ],
)
def test_mixed_lengths_trajectory_replays_exactly(config):
    """Each row's recorded log-probs are those of the denoiser at the state before the row's
    own step, with the positions past its length outside attention."""
    model = make_tiny(seed=4)
    ids, mask = prompts_batch(model)
    out = sample(model, ids, mask, config, generators([1, 2, 3]), LENGTHS)
    traj, p = out.trajectory, ids.shape[1]
    exists = torch.arange(config.gen_length)[None] < torch.tensor(LENGTHS)[:, None]
    attn = torch.cat([mask, exists], 1)
    for s in range(out.num_steps):
        hidden = (traj.reveal_step >= s) & exists
        state = out.completion_ids.masked_fill(hidden, model.mask_token_id)
        logp = denoiser_logits(model, torch.cat([ids, state], 1), attn, p).log_softmax(-1)
        token = logp.gather(-1, out.completion_ids[..., None])[..., 0]
        now = traj.reveal_step == s
        torch.testing.assert_close(traj.token_logp[now], token[now], atol=1e-5, rtol=1e-5)


def test_finished_rows_leave_the_denoiser_calls(tiny_model):
    spy = Spy(tiny_model)
    ids, mask = prompts_batch(tiny_model)
    config = SamplerConfig(gen_length=12, temperature=0.0)  # one token per step per row
    out = sample(spy, ids, mask, config, None, LENGTHS)
    assert [x.shape[0] for x, _ in spy.calls] == [3] * 4 + [2] * 4 + [1] * 4
    assert out.num_steps == 12 and out.num_calls == 12
    rows_left = [[8, 4, 12]] * 4 + [[8, 12]] * 4 + [[12]] * 4
    for (x, attn), left in zip(spy.calls, rows_left, strict=True):
        assert x.shape[1] == ids.shape[1] + 12  # one width; past a row's length: no attention
        assert attn[:, ids.shape[1] :].sum(1).tolist() == left


def test_generate_passes_lengths_through_micro_batches(tiny_model):
    config = SamplerConfig(gen_length=12, steps=6, temperature=1.0, batch_size=2)
    prompts = PROMPTS * 2
    lengths = LENGTHS * 2
    gens = generators(range(6))
    rollout, texts = generate(tiny_model, prompts, config, gens, lengths=lengths)
    assert rollout.lengths.tolist() == lengths
    assert ((rollout.trajectory.reveal_step >= 0).sum(1)).tolist() == lengths
    one = replace(config, batch_size=6)
    whole, whole_texts = generate(tiny_model, prompts, one, generators(range(6)), lengths=lengths)
    assert torch.equal(rollout.completion_ids, whole.completion_ids) and texts == whole_texts
    with pytest.raises(ValueError, match="5 lengths for 6 prompts"):
        generate(tiny_model, prompts, config, lengths=lengths[:5])


def test_left_pad_width_and_lengths_compose(tiny_model):
    """A mixed batch of left-padded prompts keeps each row's prompt untouched."""
    ids, mask = left_pad(
        [tiny_model.tokenizer.encode(p) for p in PROMPTS], tiny_model.pad_token_id, width=20
    )
    out = sample(
        tiny_model, ids, mask, SamplerConfig(gen_length=12, temperature=0.0), None, LENGTHS
    )
    assert torch.equal(out.prompt_ids, ids)
    assert (out.completion_ids != tiny_model.mask_token_id).all()


def test_a_row_that_waits_for_the_others_in_parallel_decoding_keeps_its_own_step_count():
    """Parallel decoding ends a block when every row has revealed it; a row that finished
    early neither counts the steps it waits nor draws noise in them, so it equals itself alone
    (here rows 1 and 2 reveal block 0 in one step while row 0 needs three)."""
    model = make_tiny(seed=4, scale=2.0)
    ids, mask = prompts_batch(model)
    config = SamplerConfig(gen_length=12, block_length=4, temperature=1.0, parallel_threshold=0.2)
    lengths, seeds = [12, 8, 12], [11, 12, 13]
    out = sample(model, ids, mask, config, generators(seeds), lengths)
    first_block = out.trajectory.reveal_step[:, :4].amax(1).tolist()
    assert first_block[0] > first_block[1] == first_block[2] == 0  # the rows do wait
    # a block takes as many calls as its slowest row; the calls in which a row waits are not
    # its steps (every parallel step reveals at least one position)
    calls = 0
    for b in range(3):
        block = out.trajectory.reveal_step[:, 4 * b : 4 * b + 4]
        took = [int(r.max() - r.min()) + 1 for r in block if (r >= 0).all()]
        calls += max(took)
    assert out.num_calls == calls >= out.num_steps
    for i, length in enumerate(lengths):
        alone = sample(
            model,
            ids[i : i + 1],
            mask[i : i + 1],
            at_length(config, length),
            generators(seeds[i : i + 1]),
        )
        assert out.completion_ids[i, :length].tolist() == alone.completion_ids[0].tolist()
        assert torch.equal(out.trajectory.reveal_step[i, :length], alone.trajectory.reveal_step[0])


def test_training_estimators_refuse_rollouts_with_per_sequence_lengths(tiny_model):
    from tests.test_sampler_fast import replay

    ids, mask = prompts_batch(tiny_model)
    out = sample(
        tiny_model, ids, mask, SamplerConfig(gen_length=12, temperature=0.0), None, LENGTHS
    )
    with pytest.raises(ValueError, match="per-sequence lengths"):
        replay(tiny_model, out)


def test_concat_keeps_per_row_lengths_and_fills_full_ones(tiny_model):
    from trafl.sampling import concat_rollouts

    ids, mask = prompts_batch(tiny_model)
    config = SamplerConfig(gen_length=12, steps=6, temperature=0.0)
    plain = sample(tiny_model, ids, mask, config)
    mixed = sample(tiny_model, ids, mask, config, None, LENGTHS)
    both = concat_rollouts([plain, mixed])
    assert both.lengths.tolist() == [12, 12, 12, *LENGTHS]
    assert both.num_calls == plain.num_calls + mixed.num_calls
    assert concat_rollouts([plain, plain]).lengths is None
