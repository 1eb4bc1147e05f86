"""DDIM (Song et al. 2021): S ≤ T evenly spaced steps; eta=0 deterministic, eta=1 with S=T is DDPM."""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import RcaiError
from ..schedule import NoiseSchedule
from .base import Sampler, StepOutput, _f32, register_sampler


@register_sampler("ddim")
class DDIMSampler(Sampler):
    """x_prev = √ᾱ_prev·x0 + √(1−ᾱ_prev−σ²)·ε + σ z, with
    σ = eta·√((1−ᾱ_prev)/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_prev). Noise is drawn only when σ > 0
    (never for eta = 0, never on the last step), matching DDPM's draws for eta=1, S=T."""

    def __init__(self, schedule: NoiseSchedule, clip_x0: bool = False, eta: float = 0.0) -> None:
        if not eta >= 0.0:
            raise RcaiError(f"ddim: eta must be >= 0, got {eta}")
        self.eta = float(eta)
        super().__init__(schedule, clip_x0=clip_x0)

    def _make_timesteps(self, steps: int) -> np.ndarray:
        # "trailing" spacing: starts at T (where y_T ~ N(0,I) is right), gaps of ⌊T/S⌋ or ⌈T/S⌉.
        T = self.schedule.T
        return np.array([T - (k * T) // steps for k in range(steps)], dtype=np.int64)

    def sigma(self, t: int, t_prev: int) -> float:
        ab, ab_prev = self.schedule.alpha_bar(t), self.schedule.alpha_bar(t_prev)
        return float(self.eta * np.sqrt((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev)))

    def step(self, eps: np.ndarray, t: int, x: np.ndarray, rng: np.random.Generator) -> StepOutput:
        self._check_eps(eps, x)
        t_prev = self.prev_timestep(t)
        x0, eps_used = self.predict_x0(eps, t, x)
        ab_prev = self.schedule.alpha_bar(t_prev)
        sigma = self.sigma(t, t_prev)
        dir_coef = float(np.sqrt(max(1.0 - ab_prev - sigma**2, 0.0)))
        out = float(np.sqrt(ab_prev)) * x0 + dir_coef * eps_used
        if sigma > 0.0:
            out = out + sigma * self._noise(rng, x)
        return StepOutput(prev_sample=_f32(out), pred_x0=x0)

    @property
    def stochastic(self) -> bool:
        return self.eta > 0.0

    def config(self) -> dict[str, Any]:
        return {**super().config(), "eta": self.eta}
