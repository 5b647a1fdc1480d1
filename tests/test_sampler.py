"""The sampler against its specification and against a plain re-implementation of LLaDA."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tests.conftest import make_tiny
from trafl.models.base import denoiser_logits
from trafl.sampling import SamplerConfig, left_pad, reveal_schedule, sample
from trafl.sampling.sampler import top_p_filter

PROMPTS = ["3 7 12 -> 25:", "1 2 -> 3:", "10 4 6 8 -> 99:"]


def prompts_batch(model, prompts=PROMPTS):
    return left_pad([model.tokenizer.encode(p) for p in prompts], model.pad_token_id)


def run(model, config, seed=0, prompts=PROMPTS):
    ids, mask = prompts_batch(model, prompts)
    return sample(model, ids, mask, config, torch.Generator().manual_seed(seed))


CONFIGS = [
    SamplerConfig(gen_length=8, temperature=0.0),
    SamplerConfig(gen_length=12, block_length=4, steps=6, temperature=0.0),
    SamplerConfig(gen_length=12, block_length=6, steps=4, temperature=1.0),
    SamplerConfig(gen_length=8, block_length=4, steps=8, temperature=0.7, remasking="random"),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_every_position_revealed_once_blocks_in_order_schedule_followed(tiny_model, config):
    out = run(tiny_model, config)
    steps = out.trajectory.reveal_step  # (N, L)
    n, length = steps.shape
    block = config.resolved_block_length()
    steps_per_block = config.resolved_steps() // (length // block)
    assert out.num_steps == config.resolved_steps()
    assert ((steps >= 0) & (steps < out.num_steps)).all()
    assert (out.completion_ids != tiny_model.mask_token_id).all()
    for b in range(length // block):
        span = steps[:, b * block : (b + 1) * block]
        assert (span >= b * steps_per_block).all() and (span < (b + 1) * steps_per_block).all()
        schedule = reveal_schedule(block, steps_per_block)
        for s, k in enumerate(schedule):
            assert ((span == b * steps_per_block + s).sum(dim=1) == k).all()


class Spy(torch.nn.Module):
    """Wraps a model and records every input it is called with."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, []

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        self.calls.append((input_ids.clone(), attention_mask.clone()))
        return self.model(input_ids, attention_mask, output_hidden_states)


def test_prompt_never_changes_and_low_confidence_reveals_most_confident(tiny_model):
    spy = Spy(tiny_model)
    config = SamplerConfig(gen_length=12, block_length=4, steps=6, temperature=0.0)
    ids, mask = prompts_batch(tiny_model)
    out = sample(spy, ids, mask, config)
    p = ids.shape[1]
    assert len(spy.calls) == 6
    steps = out.trajectory.reveal_step
    for s, (x, attn) in enumerate(spy.calls):
        assert torch.equal(x[:, :p], ids) and torch.equal(attn[:, :p], mask)
        block = s // 2
        lo, hi = block * 4, (block + 1) * 4
        probs = denoiser_logits(tiny_model, x, attn, p, None).softmax(-1).max(-1).values  # (N, L)
        masked = x[:, p:] == tiny_model.mask_token_id
        for i in range(x.shape[0]):
            revealed = set((steps[i] == s).nonzero().flatten().tolist())
            candidates = [j for j in range(lo, hi) if masked[i, j]]
            ranked = sorted(candidates, key=lambda j: -probs[i, j].item())
            assert revealed == set(ranked[: len(revealed)])
            # nothing outside the current block is touched at this step
            assert all(lo <= j < hi for j in revealed)


def test_temperature_zero_is_deterministic(tiny_model):
    config = SamplerConfig(gen_length=12, block_length=4, steps=12, temperature=0.0)
    a, b = run(tiny_model, config, seed=0), run(tiny_model, config, seed=123)
    assert torch.equal(a.completion_ids, b.completion_ids)
    assert torch.equal(a.trajectory.reveal_step, b.trajectory.reveal_step)
    hot = SamplerConfig(gen_length=12, block_length=4, steps=12, temperature=1.0)
    assert not torch.equal(
        run(tiny_model, hot, 0).completion_ids, run(tiny_model, hot, 1).completion_ids
    )


@pytest.mark.parametrize("config", CONFIGS)
def test_recorded_logp_equals_replay(tiny_model, config):
    """Rebuild each step's state from the trajectory and recompute the revealed tokens' log-probs."""
    out = run(tiny_model, config, seed=3)
    ids, mask = prompts_batch(tiny_model)
    p, traj = ids.shape[1], out.trajectory
    attn = torch.cat([mask, torch.ones_like(out.completion_ids, dtype=torch.bool)], 1)
    for s in range(out.num_steps):
        state = out.completion_ids.masked_fill(traj.reveal_step >= s, tiny_model.mask_token_id)
        logp = denoiser_logits(tiny_model, torch.cat([ids, state], 1), attn, p).log_softmax(-1)
        token = logp.gather(-1, out.completion_ids[..., None])[..., 0]  # (N, L)
        now = traj.reveal_step == s
        torch.testing.assert_close(traj.token_logp[now], token[now], atol=1e-5, rtol=1e-5)
        if config.temperature > 0:
            tempered = (logp / config.temperature).log_softmax(-1)
            expect = tempered.gather(-1, out.completion_ids[..., None])[..., 0]
            torch.testing.assert_close(traj.sample_logp[now], expect[now], atol=1e-4, rtol=1e-4)


def llada_reference(model, prompt: list[int], gen_length, block_length, steps) -> list[int]:
    """A deliberately plain, one-sequence transcription of LLaDA's ``generate`` at temperature 0
    (full-sequence logits, confidence -inf beyond the block end, top-k on confidence)."""
    mask_id = model.mask_token_id
    x = torch.tensor([prompt + [mask_id] * gen_length])
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    for b in range(num_blocks):
        start = len(prompt) + b * block_length
        end = start + block_length
        n_masked = int((x[0, start:end] == mask_id).sum())
        base, rem = divmod(n_masked, steps_per_block)
        for i in range(steps_per_block):
            k = base + (1 if i < rem else 0)
            is_mask = x == mask_id
            logits = model(x).logits.double()
            logits[..., mask_id] = float("-inf")
            x0 = logits.argmax(-1)
            conf = torch.gather(torch.softmax(logits, -1), -1, x0[..., None])[..., 0]
            conf[:, end:] = float("-inf")
            x0 = torch.where(is_mask, x0, x)
            conf = torch.where(is_mask, conf, torch.tensor(float("-inf"), dtype=conf.dtype))
            idx = torch.topk(conf[0], k).indices
            x[0, idx] = x0[0, idx]
    return x[0, len(prompt) :].tolist()


@pytest.mark.parametrize(
    ("length", "block", "steps"), [(8, 8, 8), (12, 4, 6), (12, 6, 12), (8, 2, 4)]
)
def test_matches_plain_llada_loop_at_temperature_zero(length, block, steps):
    model = make_tiny(seed=1)
    config = SamplerConfig(gen_length=length, block_length=block, steps=steps, temperature=0.0)
    out = run(model, config)
    for i, prompt in enumerate(PROMPTS):
        ref = llada_reference(model, model.tokenizer.encode(prompt), length, block, steps)
        assert out.completion_ids[i].tolist() == ref


def test_left_padding_does_not_change_a_sequence(tiny_model):
    config = SamplerConfig(gen_length=8, block_length=4, steps=8, temperature=0.0)
    batched = run(tiny_model, config)
    for i, prompt in enumerate(PROMPTS):
        alone = run(tiny_model, config, prompts=[prompt])
        assert torch.equal(alone.completion_ids[0], batched.completion_ids[i])


def test_tiny_top_p_is_greedy(tiny_model):
    greedy = run(tiny_model, SamplerConfig(gen_length=8, temperature=0.0))
    nucleus = run(tiny_model, SamplerConfig(gen_length=8, temperature=1.0, top_p=1e-6))
    assert torch.equal(greedy.completion_ids, nucleus.completion_ids)


def test_top_p_filter_keeps_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]], dtype=torch.float64))
    kept = torch.isfinite(top_p_filter(logits, 0.75))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(top_p_filter(logits, 0.81))
    assert kept.tolist() == [[True, True, True, False]]


def test_one_token_samples_follow_tempered_softmax():
    """Gumbel-max in float64 draws from softmax(logits / T): compare frequencies on one token."""
    model = make_tiny(alphabet="abc", seed=2, scale=3.0)
    temperature, n = 0.8, 20000
    ids, mask = left_pad([model.tokenizer.encode("ab")] * n, model.pad_token_id)
    out = sample(
        model,
        ids,
        mask,
        SamplerConfig(gen_length=1, temperature=temperature),
        torch.Generator().manual_seed(0),
    )
    x = torch.cat([ids[:1], torch.tensor([[model.mask_token_id]])], 1)
    probs = (denoiser_logits(model, x, None, 2).double()[0, 0] / temperature).softmax(-1)
    freq = torch.bincount(out.completion_ids[:, 0], minlength=probs.numel()).double() / n
    se = (probs * (1 - probs) / n).sqrt()
    assert ((freq - probs).abs() <= 5 * se + 1e-9).all(), (freq, probs)
    assert probs.max() < 0.95  # the check is informative: several tokens carry mass


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="multiple of block_length"):
        SamplerConfig(gen_length=10, block_length=4)
    with pytest.raises(ValueError, match="multiple of the 3 blocks"):
        SamplerConfig(gen_length=12, block_length=4, steps=4)
    with pytest.raises(ValueError, match="exceed"):
        SamplerConfig(gen_length=4, steps=8)


@pytest.fixture
def one_thread():
    """A model this small gains nothing from a second thread; on a loaded 2-core machine the
    two spin-wait (0.03 s became 2 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class EosBias(Spy):
    """A denoiser whose EOS logit is raised by ``bias``: EOS is its most likely token."""

    def __init__(self, model, bias=8.0):
        super().__init__(model)
        self.bias = bias

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        out = super().forward(input_ids, attention_mask, output_hidden_states)
        out.logits[..., self.model.eos_token_id] += self.bias
        return out


def test_cfg_scale_guides_the_first_step_as_computed_by_hand(tiny_model, one_thread):
    """LLaDA's guidance: un + (s + 1) * (cond - un), un from the prompt replaced by masks."""
    config = SamplerConfig(gen_length=6, temperature=0.0, cfg_scale=1.5)
    spy = Spy(tiny_model)
    ids, mask = prompts_batch(tiny_model)
    out = sample(spy, ids, mask, config)
    both, _ = spy.calls[0]  # one call of 2N rows: the sequences, then their unconditional twins
    n, p = ids.shape
    x = torch.cat([ids, torch.full((n, 6), tiny_model.mask_token_id)], 1)
    un = x.clone()
    un[:, :p][mask] = tiny_model.mask_token_id  # real prompt tokens masked, padding kept
    assert torch.equal(both, torch.cat([x, un]))
    attn = torch.cat([mask, torch.ones(n, 6, dtype=torch.bool)], 1)
    with torch.no_grad():
        cond = tiny_model(x, attn).logits[:, p:].float()  # two separate forwards, by hand
        uncond = tiny_model(un, attn).logits[:, p:].float()
    guided = uncond + 2.5 * (cond - uncond)
    guided[..., tiny_model.mask_token_id] = float("-inf")
    logp = guided.double().log_softmax(-1)  # (N, L, V)
    best, token = logp.max(-1)  # greedy candidates and their log-probs
    first = best.argmax(-1)  # the most confident position is revealed at step 0
    rows = torch.arange(n)
    assert (out.trajectory.reveal_step[rows, first] == 0).all()
    assert torch.equal(out.completion_ids[rows, first], token[rows, first])
    torch.testing.assert_close(
        out.trajectory.token_logp[rows, first], best[rows, first].float(), atol=1e-5, rtol=1e-5
    )
    plain = sample(tiny_model, ids, mask, replace(config, cfg_scale=0.0))
    assert not torch.equal(out.completion_ids, plain.completion_ids)


def test_suppress_eos_never_reveals_eos_and_ranks_as_llada(tiny_model, one_thread):
    """LLaDA's logits_eos_inf: EOS at -inf in the law sampled from and in the confidence; the
    recorded token log-prob stays the denoiser's (exact replay)."""
    eosy = EosBias(tiny_model)
    config = SamplerConfig(gen_length=6, temperature=0.0)
    eos = tiny_model.eos_token_id
    assert (sample(eosy, *prompts_batch(tiny_model), config).completion_ids == eos).any()
    out = sample(eosy, *prompts_batch(tiny_model), replace(config, suppress_eos=True))
    assert not (out.completion_ids == eos).any()
    ids, mask = prompts_batch(tiny_model)
    n, p = ids.shape
    x = torch.cat([ids, torch.full((n, 6), tiny_model.mask_token_id)], 1)
    attn = torch.cat([mask, torch.ones(n, 6, dtype=torch.bool)], 1)
    with torch.no_grad():
        logits = denoiser_logits(eosy, x, attn, p).double()  # (N, L, V)
    law = logits.clone()
    law[..., eos] = float("-inf")
    conf, token = law.softmax(-1).max(-1)  # LLaDA's p of the greedy non-EOS candidate
    first = conf.argmax(-1)
    rows = torch.arange(n)
    assert (out.trajectory.reveal_step[rows, first] == 0).all()
    assert torch.equal(out.completion_ids[rows, first], token[rows, first])
    denoiser_logp = logits.log_softmax(-1).gather(-1, token[..., None])[..., 0]
    torch.testing.assert_close(
        out.trajectory.token_logp[rows, first], denoiser_logp[rows, first].float()
    )


def test_llada_option_errors_name_the_problem():
    with pytest.raises(ValueError, match="cfg_scale must be >= 0"):
        SamplerConfig(cfg_scale=-1.0)
