"""Diffusion layer: schedule, SR3 training loss, samplers (parametrized over the registry), loop."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from rcai.diffusion import (
    DDIMSampler,
    DDPMSampler,
    NoiseSchedule,
    ScheduleConfig,
    TorchDenoiser,
    diffusion_loss,
    get_sampler,
    list_samplers,
    sample,
    sample_gamma,
    sample_timesteps,
)
from rcai.errors import RcaiError

SMALL = NoiseSchedule(ScheduleConfig(T=50, beta_start=1e-4, beta_end=0.2))


# -- schedule ------------------------------------------------------------------------------------
def test_default_schedule_matches_report():
    s = NoiseSchedule()
    assert s.T == 2000 and s.betas.dtype == np.float64 and s.betas.shape == (2000,)
    assert s.betas[0] == pytest.approx(1e-6, rel=1e-12)
    assert s.betas[-1] == pytest.approx(0.01, rel=1e-12)
    assert np.all(np.diff(s.alpha_bars) < 0)
    assert s.alpha_bar(0) == 1.0 and s.alpha_bar(1) == pytest.approx(1 - 1e-6)
    # ᾱ_T = Π(1-β_t) ≈ exp(-Σβ - Σβ²/2 - ...) ≈ 4.386e-5 for the report's schedule
    assert s.alpha_bar(2000) == pytest.approx(4.38598e-5, rel=1e-4)
    assert s.posterior_variance[0] == 0.0
    assert np.all(s.posterior_variance[1:] < s.betas[1:])
    with pytest.raises(RcaiError):
        s.alpha_bar(2001)


def test_schedule_config_json_roundtrip_and_validation():
    c = ScheduleConfig(T=10, beta_start=1e-3, beta_end=0.1)
    assert ScheduleConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    for bad in ({"T": 0}, {"beta_start": 0.2, "beta_end": 0.1}, {"beta_end": 1.5}):
        with pytest.raises(RcaiError):
            ScheduleConfig(**bad)
    with pytest.raises(RcaiError, match="unknown keys"):
        ScheduleConfig.from_dict({"T": 5, "steps": 3})


# -- training ------------------------------------------------------------------------------------
def test_gamma_within_bracket():
    s = NoiseSchedule()
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([1, 2, 3, 1000, 1999, 2000] * 500)
    gamma = sample_gamma(s, t, g).numpy()
    lo, hi = s.alpha_bar_table[t.numpy()], s.alpha_bar_table[t.numpy() - 1]
    assert np.all(gamma >= lo) and np.all(gamma <= hi)
    assert np.all(gamma < 1.0)  # 1-γ stays positive even at t=1
    # spread over the bracket, not stuck at an end
    u = (gamma - lo) / (hi - lo)
    assert 0.4 < u.mean() < 0.6 and u.min() < 0.05 and u.max() > 0.95
    with pytest.raises(RcaiError):
        sample_gamma(s, torch.tensor([0]), g)


class TinyDenoiser(nn.Module):
    """Two convs with the noise level added as a bias (enough to learn something)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(6, width, 3, padding=1)
        self.film = nn.Linear(1, width)
        self.c2 = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        assert noise_level.shape == (x.shape[0], 1) and noise_level.dtype == torch.float32
        h = self.c1(x) + self.film(noise_level)[:, :, None, None]
        return self.c2(torch.nn.functional.silu(h))


def test_training_steps_lower_the_loss():
    torch.manual_seed(0)
    s = NoiseSchedule()
    hr = torch.rand(4, 3, 16, 16) * 2 - 1
    lr_up = torch.nn.functional.avg_pool2d(hr, 2).repeat_interleave(2, 2).repeat_interleave(2, 3)
    net = TinyDenoiser()

    def eval_loss() -> float:
        with torch.no_grad():  # the same t, γ, ε every time
            return float(diffusion_loss(net, s, lr_up, hr, torch.Generator().manual_seed(123)))

    before = eval_loss()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(60):
        opt.zero_grad()
        loss = diffusion_loss(net, s, lr_up, hr, g)
        assert loss.dim() == 0
        loss.backward()
        opt.step()
    assert eval_loss() < 0.8 * before


def test_diffusion_loss_rejects_shape_mismatch():
    with pytest.raises(RcaiError):
        diffusion_loss(TinyDenoiser(), SMALL, torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 16, 16))


def test_l2_loss_is_the_squared_error_and_l1_the_absolute_error_on_the_same_draws():
    s, net = SMALL, TinyDenoiser()
    hr = torch.rand(2, 3, 16, 16) * 2 - 1
    lr_up = torch.zeros_like(hr)
    seen = {}

    def spy(x, level):
        seen["pred"] = net(x, level)
        return seen["pred"]

    with torch.no_grad():
        l1 = float(diffusion_loss(spy, s, lr_up, hr, torch.Generator().manual_seed(5), loss="l1"))
        pred = seen["pred"]
        l2 = float(diffusion_loss(spy, s, lr_up, hr, torch.Generator().manual_seed(5), loss="l2"))
    g = torch.Generator().manual_seed(5)  # the same draws as diffusion_loss: t, γ, ε
    gamma = sample_gamma(s, sample_timesteps(s, 2, g), g)
    eps = torch.randn(hr.shape, generator=g, dtype=hr.dtype)
    assert torch.equal(pred, seen["pred"])
    assert l1 == pytest.approx(float((pred - eps).abs().mean()), rel=1e-6)
    assert l2 == pytest.approx(float(((pred - eps) ** 2).mean()), rel=1e-6)
    assert gamma.shape == (2,)
    with pytest.raises(RcaiError, match="loss must be one of"):
        diffusion_loss(spy, s, lr_up, hr, loss="huber")


def test_preset_validates_its_loss_and_tiny_trains_with_l2():
    from dataclasses import replace

    from rcai.presets import get_preset

    assert get_preset("tiny").loss == "l2" and get_preset("rcai-report").loss == "l1"
    with pytest.raises(RcaiError, match="loss must be 'l1' or 'l2'"):
        replace(get_preset("tiny"), loss="l3")


# -- samplers ------------------------------------------------------------------------------------
def oracle(x0_star: np.ndarray):
    """The exact ε-predictor when the data is the single image x0_star: ε = (x - √ᾱ x0)/√(1-ᾱ)."""

    def f(x6: np.ndarray, level: np.ndarray) -> np.ndarray:
        a = level.astype(np.float64)[:, :, None, None]
        return ((x6[:, 3:] - a * x0_star) / np.sqrt(1.0 - a * a)).astype(np.float32)

    return f


def smooth_denoiser(x6: np.ndarray, level: np.ndarray) -> np.ndarray:
    """A deterministic, input-dependent stand-in for a trained net."""
    return (0.7 * x6[:, 3:] + 0.2 * np.tanh(x6[:, :3]) * level[:, :, None, None]).astype(np.float32)


@pytest.fixture
def lr_up():
    return np.random.default_rng(5).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)


@pytest.mark.parametrize("name", list_samplers())
def test_registered_sampler_contract(name, lr_up):
    smp = get_sampler(name, SMALL)
    assert list(smp.timesteps) == list(range(50, 0, -1))  # default: every step
    assert smp.noise_level(50) == pytest.approx(np.sqrt(SMALL.alpha_bar(50)))
    again = get_sampler(schedule=SMALL, **json.loads(json.dumps(smp.config())))
    assert type(again) is type(smp) and list(again.timesteps) == list(smp.timesteps)
    a = sample(smooth_denoiser, lr_up, SMALL, sampler=name, seed=3, eta=1.0)
    b = sample(smooth_denoiser, lr_up, SMALL, sampler=name, seed=3, eta=1.0)
    c = sample(smooth_denoiser, lr_up, SMALL, sampler=name, seed=4, eta=1.0)
    assert a.image.shape == lr_up.shape and a.image.dtype == np.float32
    assert np.array_equal(a.image, b.image) and not np.allclose(a.image, c.image)
    assert a.image.min() >= -1 and a.image.max() <= 1


@pytest.mark.parametrize("name,steps", [("ddpm", None), ("ddim", None), ("ddim", 7)])
def test_sampler_recovers_the_single_training_image(name, steps):
    x0 = np.random.default_rng(0).uniform(-0.9, 0.9, (1, 3, 6, 6)).astype(np.float32)
    for sched in (SMALL, NoiseSchedule()):
        out = sample(oracle(x0), np.zeros_like(x0), sched, sampler=name, steps=steps, seed=1, eta=0.5)
        np.testing.assert_allclose(out.image, x0, atol=2e-3)


def test_ddim_eta1_full_steps_equals_ddpm(lr_up):
    ddpm = sample(smooth_denoiser, lr_up, SMALL, sampler="ddpm", seed=11, clip_output=False)
    ddim = sample(smooth_denoiser, lr_up, SMALL, sampler="ddim", eta=1.0, seed=11, clip_output=False)
    np.testing.assert_allclose(ddim.image, ddpm.image, rtol=1e-4, atol=1e-4)
    clipped = [sample(smooth_denoiser, lr_up, SMALL, sampler=n, eta=1.0, seed=11, clip_x0=True).image
               for n in ("ddpm", "ddim")]
    np.testing.assert_allclose(clipped[0], clipped[1], rtol=1e-4, atol=1e-4)


def test_ddim_few_steps_calls_denoiser_s_times(lr_up):
    calls: list[tuple[int, int, float]] = []
    out = sample(smooth_denoiser, lr_up, SMALL, sampler="ddim", steps=7, step_callback=lambda *a: calls.append(a))
    assert len(calls) == 7 and [c[0] for c in calls] == list(range(7))
    assert [c[1] for c in calls] == list(out.timesteps)
    ts = list(out.timesteps)
    assert ts[0] == 50 and ts == sorted(set(ts), reverse=True) and min(ts) >= 1
    assert all(c[2] >= 0 for c in calls)
    # eta=0 is deterministic: the seed only sets y_T
    again = sample(smooth_denoiser, lr_up, SMALL, sampler="ddim", steps=7)
    assert np.array_equal(out.image, again.image)


def test_intermediates_at_requested_steps(lr_up):
    out = sample(smooth_denoiser, lr_up, SMALL, return_at=(50, 25, 1, 0), clip_output=False)
    assert sorted(out.intermediates) == [0, 1, 25, 50]
    assert np.array_equal(out.intermediates[0], out.image)
    y_t = np.random.default_rng(0).standard_normal(lr_up.shape, dtype=np.float32)
    assert np.array_equal(out.intermediates[50], y_t)  # y_T is the first draw of the seed
    assert all(v.shape == lr_up.shape for v in out.intermediates.values())
    with pytest.raises(RcaiError, match="not visited"):
        sample(smooth_denoiser, lr_up, SMALL, sampler="ddim", steps=7, return_at=(26,))


def test_clip_x0():
    x = np.full((1, 3, 4, 4), 0.5, np.float32)
    eps = np.full_like(x, -3.0)  # implies x0 far above 1
    for cls in (DDPMSampler, DDIMSampler):
        raw = cls(SMALL).step(eps, 10, x, np.random.default_rng(0))
        clipped = cls(SMALL, clip_x0=True).step(eps, 10, x, np.random.default_rng(0))
        assert raw.pred_x0.max() > 1.5
        assert clipped.pred_x0.max() == pytest.approx(1.0) and clipped.pred_x0.min() >= -1.0
        assert clipped.prev_sample.max() < raw.prev_sample.max()
    # when x0 is already in range the clipped path (posterior mean from x0, x_t) equals Algorithm 2
    eps_ok = np.full_like(x, 0.3)
    a = DDPMSampler(SMALL).step(eps_ok, 10, x, np.random.default_rng(0))
    b = DDPMSampler(SMALL, clip_x0=True).step(eps_ok, 10, x, np.random.default_rng(0))
    np.testing.assert_allclose(a.prev_sample, b.prev_sample, rtol=1e-5, atol=1e-5)


def test_sampler_errors():
    with pytest.raises(RcaiError, match="unknown sampler"):
        get_sampler("euler", SMALL)
    with pytest.raises(RcaiError, match="must equal T"):
        get_sampler("ddpm", SMALL, steps=10)
    with pytest.raises(RcaiError):
        get_sampler("ddim", SMALL, steps=51)
    with pytest.raises(RcaiError):
        get_sampler("ddpm", SMALL, variance="learned")
    with pytest.raises(RcaiError, match="not in the current schedule"):
        get_sampler("ddim", SMALL, steps=5).step(np.zeros((1, 3, 2, 2), np.float32), 49,
                                                 np.zeros((1, 3, 2, 2), np.float32), np.random.default_rng())
    with pytest.raises(RcaiError, match="denoiser returned"):
        sample(lambda x, n: x[:, :2], np.zeros((1, 3, 4, 4), np.float32), SMALL, sampler="ddim", steps=2)


def test_torch_denoiser_adapter_matches_module():
    torch.manual_seed(0)
    net = TinyDenoiser().train()
    den = TorchDenoiser(net)
    assert not net.training
    x6 = np.random.default_rng(0).standard_normal((2, 6, 8, 8), dtype=np.float32)
    lvl = np.array([[0.3], [0.9]], np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x6), torch.from_numpy(lvl)).numpy()
    out = den(x6, lvl)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    res = sample(den, x6[:, :3], SMALL, sampler="ddim", steps=4, seed=0)
    assert res.image.shape == (2, 3, 8, 8)


@pytest.mark.filterwarnings("ignore")
def test_same_seed_same_result_with_torch_and_onnxruntime(tmp_path, lr_up):
    """The loop is backend-agnostic: an ONNX Runtime session gets the same noise and output."""
    import onnxruntime as ort

    torch.manual_seed(0)
    net = TinyDenoiser().eval()
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(net, (torch.zeros(1, 6, 8, 8), torch.zeros(1, 1)), str(path), dynamo=False,
                      input_names=["x", "noise_level"], output_names=["eps"],
                      dynamic_axes={"x": {0: "b"}, "noise_level": {0: "b"}, "eps": {0: "b"}})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def ort_denoiser(x6: np.ndarray, level: np.ndarray) -> np.ndarray:
        return sess.run(None, {"x": x6, "noise_level": level})[0]

    for name in ("ddpm", "ddim"):
        a = sample(TorchDenoiser(net), lr_up, SMALL, sampler=name, seed=9, eta=0.3, clip_output=False)
        b = sample(ort_denoiser, lr_up, SMALL, sampler=name, seed=9, eta=0.3, clip_output=False, progress=True)
        np.testing.assert_allclose(a.image, b.image, atol=1e-4)


def test_residual_sampling_adds_the_conditioning_back():
    from rcai.diffusion import NoiseSchedule, ScheduleConfig, sample

    schedule = NoiseSchedule(ScheduleConfig(T=20, beta_start=1e-4, beta_end=0.2))
    lr_up = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 3, 8, 8)).astype(np.float32)
    half = lambda x6, level: 0.5 * x6[:, 3:]  # noqa: E731  any deterministic denoiser
    plain = sample(half, lr_up, schedule, "ddim", steps=5, seed=1, clip_output=False)
    res = sample(half, lr_up, schedule, "ddim", steps=5, seed=1, clip_output=False, residual=4.0)
    np.testing.assert_allclose(res.image, lr_up + plain.image / 4.0, rtol=0, atol=1e-6)


def test_residual_loss_targets_hr_minus_lr_up():
    from rcai.diffusion import NoiseSchedule, ScheduleConfig, diffusion_loss

    schedule = NoiseSchedule(ScheduleConfig(T=50))
    hr = torch.rand(2, 3, 8, 8) * 2 - 1
    seen = {}

    def spy(x6, level):
        seen.setdefault("y", []).append(x6[:, 3:].clone())
        return torch.zeros(2, 3, 8, 8)

    diffusion_loss(spy, schedule, hr, hr, generator=torch.Generator().manual_seed(0), residual=4.0)
    diffusion_loss(spy, schedule, torch.zeros_like(hr), torch.zeros_like(hr), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(seen["y"][0], seen["y"][1])  # lr_up == hr: the residual chain starts from 0
