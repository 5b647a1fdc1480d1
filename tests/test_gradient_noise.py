"""scripts/gradient_noise.py: its statistics against plain loops and against Gaussian
gradients of known signal and noise, its decay against torch's AdamW, and its first gradient
against the one the run's next step applied."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import gradient_noise  # noqa: E402


def test_statistics_match_a_plain_loop():
    """Three batches (the third out of the signal's one pair), written out by hand."""
    draws = [
        (torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.0])),
        (torch.tensor([0.0, 1.0]), torch.tensor([2.0, 1.0])),
        (torch.tensor([-1.0, 4.0]), torch.tensor([1.0, 2.0])),
    ]
    # batch means (2, 1), (1, 1), (0, 3): one pair, <(2, 1), (1, 1)> = 3
    second = (1 + 4 + 9 + 0 + 0 + 1 + 4 + 1 + 1 + 16 + 1 + 4) / 6  # mean ||g_ij||^2 = 7
    mask = ((4 + 4) / 2 + (4 + 0) / 2 + (4 + 4) / 2) / 3  # mean ||g_i1 - g_i2||^2 / 2 = 10 / 3
    out = gradient_noise.signal_noise(draws)
    assert out["signal"] == 3.0 and out["pairs"] == 1 and math.isnan(out["signal_se"])
    assert out["noise"] == pytest.approx(second - 3.0, rel=1e-12)
    assert out["mask_noise"] == pytest.approx(mask, rel=1e-12)
    assert out["snr"] == pytest.approx(3.0 / (second - 3.0), rel=1e-12)


def test_gap_drift_matches_a_plain_loop():
    """<x_i, h_j> averaged over (i, j); se^2 = var(row means) / I + var(column means) / J
    (sample variances); the decay's part <decay, mean h>."""
    steps = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0])]
    gaps = [torch.tensor([2.0, 1.0]), torch.tensor([0.0, -1.0])]
    table = [[float(x @ h) for h in gaps] for x in steps]  # [[2, 0], [2, -2], [3, -1]]
    rows = [sum(r) / 2 for r in table]  # 1, 0, 1
    cols = [sum(c) / 3 for c in zip(*table, strict=True)]  # 7/3, -1

    def var(xs: list[float]) -> float:
        mean = sum(xs) / len(xs)
        return sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)

    decay = torch.tensor([0.2, 0.4], dtype=torch.float64)
    out = gradient_noise.gap_drift(steps, gaps, decay)
    assert out["drift"] == pytest.approx(4.0 / 6, rel=1e-12)
    assert out["drift_se"] == pytest.approx(math.sqrt(var(rows) / 3 + var(cols) / 2), rel=1e-12)
    assert out["drift_decay"] == pytest.approx(0.2 * 1.0 + 0.4 * 0.0, rel=1e-12)
    assert out["gap_batches"] == 2
    assert "drift_decay" not in gradient_noise.gap_drift(steps, gaps)


def test_cross_fitted_steps_match_a_plain_loop():
    """Four batches of one coordinate: each half's step is scaled by the other half's root
    mean square gradient, never its own."""
    draws = [(torch.tensor([a]), torch.tensor([b])) for a, b in [(1, 3), (2, 2), (0, 4), (2, 0)]]
    lr, eps = 0.1, 1e-8
    rms_first = math.sqrt((1 + 9 + 4 + 4) / 4)  # the first two batches' draws
    rms_second = math.sqrt((0 + 16 + 4 + 0) / 4)
    means = [2.0, 2.0, 2.0, 1.0]
    expected = [-lr * m / (rms_second + eps) for m in means[:2]]
    expected += [-lr * m / (rms_first + eps) for m in means[2:]]
    steps = gradient_noise.cross_fitted_steps(draws, lr, eps)
    assert [float(x) for x in steps] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="at least 4"):
        gradient_noise.cross_fitted_steps(draws[:3], lr, eps)


def test_one_batch_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        gradient_noise.signal_noise([(torch.zeros(2), torch.zeros(2))])


def test_known_signal_and_noise_are_recovered():
    """g_ij = mu + R_i + M_ij: rollout noise R shared by a batch's two draws, mask noise M
    independent per draw. Truth: signal ||mu||^2, noise d (sr^2 + sm^2), mask part d sm^2.
    Each tolerance is 4 standard deviations of its estimator, from the Gaussian moments:
    a pair product of two batch means (cov c I, c = sr^2 + sm^2 / 2) has variance
    2 c ||mu||^2 + d c^2; ||M_1 - M_2||^2 / 2 is sm^2 chi2_d (variance 2 d sm^4); a single-draw
    ||g||^2 has variance 2 d s^2 + 4 s ||mu||^2 (s = sr^2 + sm^2), and the mean of 2n of them,
    pairwise correlated, has at most the sd of a mean of n."""
    gen = torch.Generator().manual_seed(12)
    d, n, sr, sm = 400, 200, 0.3, 0.2
    mu = torch.randn(d, generator=gen, dtype=torch.float64) * 0.05
    draws = []
    for _ in range(n):
        r = torch.randn(d, generator=gen, dtype=torch.float64) * sr
        m1, m2 = (torch.randn(d, generator=gen, dtype=torch.float64) * sm for _ in range(2))
        draws.append((mu + r + m1, mu + r + m2))
    out = gradient_noise.signal_noise(draws)
    mu2, c, s = float(mu @ mu), sr**2 + sm**2 / 2, sr**2 + sm**2
    signal_sd = math.sqrt((2 * c * mu2 + d * c**2) / (n // 2))
    mask_sd = math.sqrt(2 * d * sm**4 / n)
    second_sd = math.sqrt((2 * d * s**2 + 4 * s * mu2) / n)
    assert abs(out["signal"] - mu2) < 4 * signal_sd
    assert out["signal_se"] == pytest.approx(signal_sd, rel=0.25)  # sd of 100 products: +-7 %
    assert abs(out["mask_noise"] - d * sm**2) < 4 * mask_sd
    assert abs(out["noise"] - d * s) < 4 * (second_sd + signal_sd)


def test_decay_step_is_adamw_decoupled_decay():
    """With zero gradients from a fresh state AdamW's first update is its decay alone:
    theta (1 - lr wd) - theta = decay_step (float64: equal but for rounding, ~1e-16 of theta);
    the parameters asked for in another order than the groups', one group without decay."""
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
    b = torch.nn.Parameter(torch.randn(2, 2, dtype=torch.float64))
    lr, wd = 0.1, 0.05
    opt = torch.optim.AdamW(
        [{"params": [a], "weight_decay": wd}, {"params": [b], "weight_decay": 0.0}], lr=lr
    )
    trainer = SimpleNamespace(optimizer=opt)
    expected = gradient_noise.decay_step(trainer, [b, a])
    before = torch.cat([b.detach().flatten(), a.detach().flatten()])
    a.grad, b.grad = torch.zeros_like(a), torch.zeros_like(b)
    opt.step()
    after = torch.cat([b.detach().flatten(), a.detach().flatten()])
    assert torch.allclose(after - before, expected, rtol=0, atol=1e-14)
    assert torch.equal(expected[:4], torch.zeros(4, dtype=torch.float64))
    assert gradient_noise.update_settings(trainer, [a]) == (lr, 1e-8)


def test_the_first_gradient_is_the_runs_next_step(tmp_path):
    """On a tiny run saved at steps 1 and 2 (no clipping), the script's first gradient at
    checkpoint-1 is the one step 2 applied, read back from AdamW's first moments:
    g = (m_2 - beta1 m_1) / (1 - beta1). float32 moments: each holds ~6e-8 of its size, the
    difference divides by 0.1, so 1e-5 of the largest moment is a margin of about 8 over it."""
    from tests.conftest import make_tiny
    from trafl.commands.train import Trainer
    from trafl.commands.train_config import TrainConfig
    from trafl.core.config_files import load_config

    model = tmp_path / "model"
    make_tiny(seed=3).save_pretrained(model)
    run = tmp_path / "run"
    overrides = [f"model={model}", f"out_dir={run}", "rollout.prompts_per_step=2",
                 "rollout.group_size=4", "rollout.sampler.gen_length=8", "rollout.sampler.steps=4",
                 "device=cpu", "save_completions_every=0", "objective.name=trafl", "steps=2",
                 "ckpt_every=1", "keep_checkpoints=3", "optim.grad_clip=0"]  # fmt: skip
    Trainer(load_config(TrainConfig, None, overrides)).train()
    gradient_noise.main([str(run), "--steps", "1", "--batches", "4", "--out", str(tmp_path)])
    (result,) = json.loads((tmp_path / "gradient_noise.json").read_text())
    assert result["step"] == 1 and {"policy", "objective"} <= set(result)
    drift = result.get("drift_adam")  # absent only if fewer than 2 of 16 batches mixed rewards
    assert drift is None or (math.isfinite(drift["drift"]) and drift["gap_batches"] >= 2)

    states = [torch.load(run / f"checkpoint-{s}" / "state.pt", weights_only=False) for s in (1, 2)]
    moments = [
        torch.cat([v["exp_avg"].flatten() for _, v in sorted(st["optimizer"]["state"].items())])
        for st in states
    ]
    beta1 = states[0]["optimizer"]["param_groups"][0]["betas"][0]
    applied = (moments[1] - beta1 * moments[0]) / (1 - beta1)
    trainer = gradient_noise.checkpoint_trainer(run, 1, tmp_path / "scratch")
    trainer.step = 1
    params = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    first, _ = gradient_noise.batch_gradients(trainer, {"all": params})["all"]
    assert torch.allclose(first, applied, rtol=0, atol=1e-5 * float(moments[1].abs().max()))


def test_the_committed_instrument_run_prints_its_tables(capsys):
    """docs/TARGET.md quotes ``--table`` on the committed result: the policy's and the
    objective's rows at every checkpoint in order of step, then each checkpoint's drift."""
    committed = ROOT / "results" / "target" / "gradient" / "long2000-s0.json"
    gradient_noise.main(["-", "--table", str(committed)])
    rows = [r for r in capsys.readouterr().out.splitlines() if r[2:3].isdigit()]
    assert [int(r.split("|")[1]) for r in rows] == [
        200,
        200,
        1000,
        1000,
        2000,
        2000,
        200,
        1000,
        2000,
    ]
    assert [r.split("|")[2].strip() for r in rows[:2]] == ["policy", "objective"]
