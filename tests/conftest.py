"""Shared fixtures: small random denoisers whose outputs are peaked enough to be informative."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from trafl.models import CharTokenizer, TinyConfig, TinyDiffusionLM, load_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# one CPU thread, here and in every process a test starts (CLI runs, ranks, benchmarks), unless
# OMP_NUM_THREADS says otherwise: on an idle machine two threads gain little on these tiny
# models (the whole suite took the same time), and beside busy processes they made a test
# 2.2 times slower (benchmarks/RESULTS.md, "Threads for the test suite")
if not os.environ.get("OMP_NUM_THREADS", "").isdigit() or int(os.environ["OMP_NUM_THREADS"]) < 1:
    os.environ["OMP_NUM_THREADS"] = "1"  # unset, or not a count torch takes
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def make_tiny(
    alphabet: str | None = None, seed: int = 0, scale: float = 1.0, **arch
) -> TinyDiffusionLM:
    """A random tiny model with unit-scale weights, so that logits differ from position to
    position and are far from uniform (a freshly initialised model is nearly uniform and
    position-blind, which hides ordering bugs behind ties). ``scale`` sharpens it further."""
    torch.manual_seed(seed)
    tok = CharTokenizer(alphabet) if alphabet else CharTokenizer()
    shape = dict(hidden_size=32, num_layers=2, num_heads=2, mlp_hidden=64) | arch
    model = TinyDiffusionLM(TinyConfig(vocab_size=tok.vocab_size, **shape), tok)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0.0, scale / p.shape[1] ** 0.5)
        model.embed.weight.mul_(model.config.hidden_size**0.5 / 4)
    return model.eval()


@pytest.fixture
def tiny_model() -> TinyDiffusionLM:
    return make_tiny()


def assert_same_weights(a: Path, b: Path) -> None:
    """The models saved in folders ``a`` and ``b`` hold the same tensors, bit for bit (resume
    and continuation invariances: the same arithmetic in the same order gives the same bits)."""
    sa, sb = load_model(a).state_dict(), load_model(b).state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], atol=0, rtol=0)
