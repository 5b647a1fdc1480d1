"""The sampler's fast modes (KV caches, parallel decoding) against the exact sampler."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tests.conftest import make_tiny
from tests.test_sampler import PROMPTS, prompts_batch, run
from trafl.core.batch import completion_mask_from_eos
from trafl.likelihood.trajectory import TrajectoryLogp
from trafl.sampling import SamplerConfig

EXACT = [
    SamplerConfig(gen_length=12, block_length=4, steps=6, temperature=0.0),
    SamplerConfig(gen_length=8, temperature=0.0),
    SamplerConfig(gen_length=12, block_length=6, steps=12, temperature=1.0),
]


def replay(model, out) -> torch.Tensor:
    """Exact per-token log-probs of the recorded path (the ``trajectory`` estimator)."""
    batch = out.rows(slice(None))
    batch.completion_mask = completion_mask_from_eos(out.completion_ids, model.eos_token_id)
    return TrajectoryLogp().estimate(model, batch, {}).token_logp  # (N, L)


def test_window_forward_on_a_fresh_cache_equals_the_full_forward():
    model = make_tiny(seed=2)
    ids, mask = prompts_batch(model)  # left-padded: the key padding mask is exercised
    x = torch.cat([ids, torch.randint(0, model.config.vocab_size, (ids.shape[0], 10))], 1)
    attn = torch.cat([mask, torch.ones(ids.shape[0], 10, dtype=torch.bool)], 1)
    with torch.no_grad():
        full = model(x, attn).logits
        logits, cache = model.forward_cached(x, attn, 5, 9)
        torch.testing.assert_close(logits, full[:, 5:9], rtol=0, atol=0)
        for lo, hi in [(ids.shape[1], x.shape[1]), (ids.shape[1] + 2, ids.shape[1] + 6)]:
            window, _ = model.forward_cached(x, attn, lo, hi, cache)
            torch.testing.assert_close(window, full[:, lo:hi], rtol=1e-5, atol=1e-5)
        # a stale cache is used, not silently recomputed: change a token outside the window
        y = x.clone()
        y[:, -1] = (y[:, -1] + 1) % model.config.vocab_size
        stale, _ = model.forward_cached(y, attn, 5, 9, cache)
        assert torch.equal(stale, logits)
        assert not torch.allclose(model(y, attn).logits[:, 5:9], logits)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("config", EXACT)
def test_cache_with_refresh_every_step_equals_the_plain_sampler(tiny_model, config, mode):
    plain = run(tiny_model, config, seed=4)
    cached = run(tiny_model, replace(config, cache=mode, cache_refresh_every=1), seed=4)
    assert torch.equal(cached.completion_ids, plain.completion_ids)
    assert torch.equal(cached.trajectory.reveal_step, plain.trajectory.reveal_step)
    torch.testing.assert_close(cached.trajectory.token_logp, plain.trajectory.token_logp)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_cached_modes_are_an_approximation_that_follows_the_schedule(mode):
    model = make_tiny(seed=1)
    config = SamplerConfig(gen_length=12, block_length=4, steps=12, temperature=1.0, cache=mode)
    out = run(model, config, seed=5)
    steps = out.trajectory.reveal_step
    assert out.num_steps == 12 and ((steps >= 0) & (steps < 12)).all()
    for b in range(3):  # one reveal per step, blocks left to right
        assert sorted(steps[:, 4 * b : 4 * b + 4].flatten().tolist()) == sorted(
            list(range(4 * b, 4 * b + 4)) * len(PROMPTS)
        )
    # the first step of each block is a full forward: exact there, approximate after
    exact = replay(model, out)
    first = (steps % 4) == 0
    torch.testing.assert_close(out.trajectory.token_logp[first], exact[first])
    assert not torch.allclose(out.trajectory.token_logp[~first], exact[~first], atol=1e-4)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_parallel_threshold_one_equals_one_token_per_step(tiny_model, temperature):
    base = SamplerConfig(gen_length=12, block_length=4, steps=12, temperature=temperature)
    one = run(tiny_model, base, seed=6)
    par = run(tiny_model, replace(base, steps=3, parallel_threshold=1.0), seed=6)
    assert par.num_steps == 12
    assert torch.equal(par.completion_ids, one.completion_ids)
    assert torch.equal(par.trajectory.reveal_step, one.trajectory.reveal_step)


def test_parallel_decoding_reveals_what_passes_the_threshold_and_replays_exactly():
    model = make_tiny(seed=3, scale=3.0)  # peaked: some positions pass a moderate threshold
    config = SamplerConfig(
        gen_length=16, block_length=8, steps=2, temperature=1.0, parallel_threshold=0.5
    )
    out = run(model, config, seed=7)
    steps, logp = out.trajectory.reveal_step, out.trajectory.token_logp
    assert out.num_steps < 16  # fewer denoiser calls than tokens
    assert (out.completion_ids != model.mask_token_id).all()
    for row in range(len(PROMPTS)):
        for s in steps[row].unique().tolist():
            now = steps[row] == s
            # several at once only when all of them were confident enough
            if int(now.sum()) > 1:
                assert (logp[row][now].exp() >= 0.5).all()
    assert (steps[:, :8].max(1).values < steps[:, 8:].min(1).values).all()  # blocks in order
    torch.testing.assert_close(logp, replay(model, out), atol=1e-5, rtol=1e-5)


def test_threshold_below_every_confidence_reveals_a_block_per_step(tiny_model):
    config = SamplerConfig(gen_length=12, block_length=4, steps=3, parallel_threshold=1e-12)
    out = run(tiny_model, config, seed=0)
    assert out.num_steps == 3
    assert torch.equal(
        out.trajectory.reveal_step, torch.arange(3).repeat_interleave(4).expand(3, 12)
    )


def test_bf16_autocast_samples_a_valid_trajectory_close_to_float32(tiny_model):
    config = SamplerConfig(gen_length=8, block_length=4, steps=4, temperature=0.0, bf16=True)
    out = run(tiny_model, config)
    assert (out.trajectory.reveal_step >= 0).all() and out.num_steps == 4
    assert (out.completion_ids != tiny_model.mask_token_id).all()
    # the recorded (bf16) log-probs are those of the float32 model along the same path, to
    # bf16 rounding
    torch.testing.assert_close(
        out.trajectory.token_logp, replay(tiny_model, out), atol=0.1, rtol=0.05
    )


def test_fast_mode_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="parallel_threshold must be in"):
        SamplerConfig(parallel_threshold=0.0)
    with pytest.raises(ValueError, match="low_confidence"):
        SamplerConfig(parallel_threshold=0.9, remasking="random")
    with pytest.raises(ValueError, match="valid: none, prefix, dual"):
        SamplerConfig(cache="suffix")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cache_refresh_every"):
        SamplerConfig(cache_refresh_every=0)


def test_cache_on_a_model_without_one_is_a_clear_error(tiny_model):
    class NoCache(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.mask_token_id = inner.mask_token_id

        def forward(self, *args, **kwargs):
            return self.inner(*args, **kwargs)

    ids, mask = prompts_batch(tiny_model)
    from trafl.sampling import sample

    with pytest.raises(ValueError, match="use cache=none"):
        sample(NoCache(tiny_model), ids, mask, SamplerConfig(gen_length=4, cache="dual"))


# --- the llada and dream adapters (tiny random LLaDA-, Llama- and Dream-shaped models) ---

HF_KINDS = ["llada_remote", "llama", "dream"]


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """LLaDA's own modeling code (trust_remote_code), a Llama run by the ``llada`` adapter and a
    Qwen2 run by the ``dream`` adapter (shifted logits); one thread, as in test_hf_models."""
    from tests.hf_fixtures import save_llada, save_llama, save_qwen2
    from trafl.models import ModelConfig, load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("hf_cache")
    configs = {
        "llada_remote": ModelConfig(path=str(save_llada(root / "llada")), trust_remote_code=True),
        "llama": ModelConfig(path=str(save_llama(root / "llama")), type="llada"),
        "dream": ModelConfig(path=str(save_qwen2(root / "qwen2")), type="dream"),
    }
    yield {kind: load_model(cfg) for kind, cfg in configs.items()}
    torch.set_num_threads(threads)


@pytest.mark.parametrize("kind", HF_KINDS)
def test_hf_window_forward_on_a_fresh_cache_equals_the_full_forward(hf_models, kind):
    model = hf_models[kind]
    ids, mask = prompts_batch(model)  # left-padded
    n, p = ids.shape
    x = torch.cat([ids, torch.randint(10, 60, (n, 10))], 1)
    attn = torch.cat([mask, torch.ones(n, 10, dtype=torch.bool)], 1)
    with torch.no_grad():
        full = model(x, attn).logits  # aligned (Dream's shift undone)
        logits, cache = model.forward_cached(x, attn, p + 2, p + 6)
        assert torch.equal(logits, full[:, p + 2 : p + 6])  # the recording forward is the plain one
        for lo, hi in [(p, p + 10), (p + 2, p + 6), (p + 1, p + 4)]:
            window, _ = model.forward_cached(x, attn, lo, hi, cache)
            torch.testing.assert_close(window, full[:, lo:hi], rtol=1e-5, atol=1e-5)
        y = x.clone()  # a stale cache is used, not silently recomputed
        y[:, -1] = (y[:, -1] + 1) % 60 + 10
        stale, _ = model.forward_cached(y, attn, p + 2, p + 6, cache)
        assert torch.equal(stale, logits)
        assert not torch.allclose(model(y, attn).logits[:, p + 2 : p + 6], logits)


@pytest.mark.parametrize("kind", HF_KINDS)
def test_hf_windows_written_in_place_equal_a_splice_into_an_untouched_cache(hf_models, kind):
    """A window's keys are written over the cache in place; a later window elsewhere must still
    see the refresh's keys under the earlier window, as if every window were spliced into a
    fresh copy: each call equals the same window on a newly recorded cache, bit for bit."""
    model = hf_models[kind]
    ids, mask = prompts_batch(model)
    n, p = ids.shape
    x = torch.cat([ids, torch.randint(10, 60, (n, 10))], 1)
    attn = torch.cat([mask, torch.ones(n, 10, dtype=torch.bool)], 1)
    y = x.clone()
    y[:, p:] = (y[:, p:] + 7) % 50 + 10  # every generated token differs from the recorded ones
    with torch.no_grad():
        _, cache = model.forward_cached(x, attn, p + 1, p + 2)
        for lo, hi in [(p + 2, p + 6), (p + 2, p + 6), (p + 5, p + 9), (p + 2, p + 6)]:
            window, _ = model.forward_cached(y, attn, lo, hi, cache)
            _, fresh = model.forward_cached(x, attn, p + 1, p + 2)
            reference, _ = model.forward_cached(y, attn, lo, hi, fresh)
            assert torch.equal(window, reference), (lo, hi)


HF_EXACT = [
    SamplerConfig(gen_length=12, block_length=4, steps=6, temperature=0.0),
    SamplerConfig(gen_length=12, block_length=6, steps=12, temperature=1.0),
]


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("config", HF_EXACT)
@pytest.mark.parametrize("kind", HF_KINDS)
def test_hf_cache_with_refresh_every_step_equals_the_plain_sampler(hf_models, kind, config, mode):
    """Bit for bit, in float32, completions and trajectories (fixed generator at T = 1)."""
    model = hf_models[kind]
    plain = run(model, config, seed=4)
    cached = run(model, replace(config, cache=mode, cache_refresh_every=1), seed=4)
    assert torch.equal(cached.completion_ids, plain.completion_ids)
    assert torch.equal(cached.trajectory.reveal_step, plain.trajectory.reveal_step)
    assert torch.equal(cached.trajectory.token_logp, plain.trajectory.token_logp)
    assert torch.equal(cached.trajectory.sample_logp, plain.trajectory.sample_logp)


@pytest.mark.parametrize("kind", HF_KINDS)
def test_hf_per_block_cache_is_exact_where_the_arithmetic_says(hf_models, kind):
    """Refreshed once per block: (a) with one step per block every step is a full forward, so
    the cached sampler equals the plain one bit for bit; (b) with several steps per block the
    first step of each block is exact (its log-probs equal the exact replay's) and the later
    ones read stale keys of the positions outside the window, so they may differ."""
    model = hf_models[kind]
    one = SamplerConfig(gen_length=6, block_length=1, steps=6, temperature=1.0)
    plain = run(model, one, seed=8)
    for mode in ("prefix", "dual"):
        cached = run(model, replace(one, cache=mode), seed=8)
        assert torch.equal(cached.completion_ids, plain.completion_ids)
        assert torch.equal(cached.trajectory.token_logp, plain.trajectory.token_logp)
    config = SamplerConfig(gen_length=12, block_length=4, steps=12, temperature=1.0, cache="dual")
    out = run(model, config, seed=5)
    exact, steps = replay(model, out), out.trajectory.reveal_step
    first = (steps % 4) == 0
    torch.testing.assert_close(out.trajectory.token_logp[first], exact[first])
    assert not torch.allclose(out.trajectory.token_logp[~first], exact[~first], atol=1e-4)


@pytest.mark.parametrize("kind", ["llada_remote", "dream"])
def test_hf_parallel_threshold_one_equals_one_token_per_step(hf_models, kind):
    model = hf_models[kind]
    base = SamplerConfig(gen_length=8, block_length=4, steps=8, temperature=1.0)
    one = run(model, base, seed=6)
    par = run(model, replace(base, steps=2, parallel_threshold=1.0), seed=6)
    assert par.num_steps == 8
    assert torch.equal(par.completion_ids, one.completion_ids)
    assert torch.equal(par.trajectory.reveal_step, one.trajectory.reveal_step)


def test_cfg_through_the_cache_equals_cfg_without(hf_models):
    """Guidance doubles the batch; the cache holds both halves, so refresh-every-step is exact."""
    model = hf_models["llada_remote"]
    config = SamplerConfig(gen_length=8, block_length=4, steps=8, temperature=1.0, cfg_scale=1.0)
    plain = run(model, config, seed=2)
    cached = run(model, replace(config, cache="dual", cache_refresh_every=1), seed=2)
    assert torch.equal(cached.completion_ids, plain.completion_ids)
    assert torch.equal(cached.trajectory.token_logp, plain.trajectory.token_logp)


def test_cache_on_a_model_without_a_cache_hook_is_a_clear_error(hf_models):
    model = hf_models["llama"]
    ids, mask = prompts_batch(model)
    from trafl.sampling import sample

    forward = type(model.model).forward
    try:  # a model whose forward takes no KV cache
        type(model.model).forward = lambda self, input_ids=None, **kw: forward(self, input_ids)
        model._cache_kwarg = None
        with pytest.raises(ValueError, match="use cache=none"):
            sample(model, ids, mask, SamplerConfig(gen_length=4, cache="prefix"))
    finally:
        type(model.model).forward = forward
        model._cache_kwarg = "cache"
