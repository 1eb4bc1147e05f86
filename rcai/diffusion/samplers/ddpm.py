"""Ancestral DDPM sampling (report Algorithm 2): every t = T..1, one denoiser call each."""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import RcaiError
from ..schedule import NoiseSchedule
from .base import Sampler, StepOutput, _f32, register_sampler

_VARIANCES = ("posterior", "beta")


@register_sampler("ddpm")
class DDPMSampler(Sampler):
    """x_{t-1} = 1/√α_t (x_t − β_t/√(1−ᾱ_t) ε) + σ_t z, z ~ N(0,I) for t > 1.

    variance="posterior": σ_t² = β̃_t (default); "beta": σ_t² = β_t. With clip_x0 the mean is the
    posterior mean μ̃_t(x_t, clip(x0)) instead (identical to the formula above when nothing clips)."""

    def __init__(self, schedule: NoiseSchedule, clip_x0: bool = False, variance: str = "posterior") -> None:
        if variance not in _VARIANCES:
            raise RcaiError(f"ddpm: variance must be one of {_VARIANCES}, got {variance!r}")
        self.variance = variance
        super().__init__(schedule, clip_x0=clip_x0)

    def _make_timesteps(self, steps: int) -> np.ndarray:
        if steps != self.schedule.T:
            raise RcaiError(f"ddpm: steps must equal T={self.schedule.T} (got {steps}); use ddim for fewer steps")
        return np.arange(self.schedule.T, 0, -1)

    def sigma(self, t: int) -> float:
        s = self.schedule
        var = s.posterior_variance[t - 1] if self.variance == "posterior" else s.betas[t - 1]
        return float(np.sqrt(var)) if t > 1 else 0.0

    def step(self, eps: np.ndarray, t: int, x: np.ndarray, rng: np.random.Generator) -> StepOutput:
        self._check_eps(eps, x)
        self.prev_timestep(t)  # validates t
        s = self.schedule
        x0, _ = self.predict_x0(eps, t, x)
        if self.clip_x0:
            mean = float(s.posterior_coef_x0[t - 1]) * x0 + float(s.posterior_coef_xt[t - 1]) * x
        else:
            beta, alpha, ab = s.betas[t - 1], s.alphas[t - 1], s.alpha_bars[t - 1]
            mean = (x - float(beta / np.sqrt(1.0 - ab)) * eps) / float(np.sqrt(alpha))
        sigma = self.sigma(t)
        if t > 1:
            mean = mean + sigma * self._noise(rng, x)
        return StepOutput(prev_sample=_f32(mean), pred_x0=x0)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "variance": self.variance}
