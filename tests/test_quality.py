"""The primary quality metric: fixed held-out crops, seeded and deterministic, exactly 0 for a zero
residual (bicubic), and consistent with the v-parametrisation it reads."""
import math

import numpy as np
import pytest
import torch

from rcai.diffusion import q_sample
from rcai.diffusion.parametrisation import to_eps, to_x0, training_target
from rcai.presets import get_preset
from rcai.space.space import SearchSpace
from rcai.space.subnet import SubnetSpec
from rcai.train.quality import QualityConfig, eval_set, gain_stats, quality
from rcai.train.setup import schedule_of

CFG = QualityConfig(crops=16, draws=2, grid=4)


@pytest.fixture(scope="module")
def micro():
    p = get_preset("micro")
    return p, schedule_of(p), eval_set(p, crops=16)


def _model(p, seed=0):
    torch.manual_seed(seed)
    return SubnetSpec(p, SearchSpace.of(p).base_arch()).build()


def test_v_parametrisation_round_trips():
    torch.manual_seed(0)
    x0, eps = torch.randn(4, 3, 8, 8) * 0.3, torch.randn(4, 3, 8, 8)
    gamma = torch.tensor([0.999, 0.5, 1e-2, 4.5e-5], dtype=torch.float64)
    v = training_target("v", x0, eps, gamma)
    y = q_sample(x0, gamma, eps)
    level = gamma.sqrt().float().view(-1, 1)
    torch.testing.assert_close(to_x0("v", v, y, level), x0, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(to_eps("v", v.numpy(), y.numpy(), level.numpy()), eps.numpy(), atol=1e-5)
    assert training_target("eps", x0, eps, gamma) is eps


def test_eval_set_is_fixed_and_held_out(micro):
    p, _, ev = micro
    assert len(ev) == 16 and ev.files == ["0003.png", "0007.png", "0012.png", "0016.png"]  # built-in photos held out
    again = eval_set(p, crops=16)
    assert torch.equal(again.hr, ev.hr) and torch.equal(again.lr_up, ev.lr_up)


def test_zero_residual_scores_exactly_zero(micro):
    p, schedule, ev = micro
    q = quality(_model(p), ev, schedule, CFG)  # the head starts at zero: v = 0, the posterior mean is bicubic
    assert q["gain_db"] == 0.0 and q["gain_lo"] == 0.0 and q["psnr"] == pytest.approx(q["bicubic_psnr"])


def test_metric_is_deterministic_and_sees_the_network(micro):
    p, schedule, ev = micro
    model = _model(p)
    with torch.no_grad():
        for prm in model.head.parameters():
            prm.normal_(0, 0.05)
    a, b = quality(model, ev, schedule, CFG), quality(model, ev, schedule, CFG)
    assert a == b  # same weights, same seed: same figures
    assert a["gain_db"] < 0  # a head that emits noise is worse than bicubic
    other = quality(model, ev, schedule, QualityConfig(**{**CFG.to_dict(), "seed": 1}))
    assert other["denoise_mse"] != a["denoise_mse"]


def test_pooled_gain_and_interval():
    mse_b = np.full(50, 2.0)
    g = gain_stats(np.full(50, 1.0), mse_b)
    assert g["gain_db"] == pytest.approx(10 * math.log10(2)) and g["gain_lo"] == pytest.approx(g["gain_hi"])
    noisy = gain_stats(np.random.default_rng(0).uniform(0.5, 1.5, 50), mse_b)
    assert noisy["gain_lo"] < noisy["gain_db"] < noisy["gain_hi"]
