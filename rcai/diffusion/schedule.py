"""Fixed linear β schedule of SR3 / the report (Table 4.1: torch.linspace(1e-6, 0.01, 2000))."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import RcaiError
from ..presets import ScheduleConfig  # noqa: F401  (the schedule part of a preset; re-exported)


class NoiseSchedule:
    """Per-step constants in float64. Arrays are indexed t-1 for t = 1..T; the `*_table` arrays
    have length T+1 and are indexed by t directly, with ᾱ_0 = 1."""

    def __init__(self, config: ScheduleConfig | None = None) -> None:
        self.config = config or ScheduleConfig()
        c = self.config
        self.T: int = int(c.T)
        self.betas = np.linspace(c.beta_start, c.beta_end, self.T, dtype=np.float64)
        self.alphas = 1.0 - self.betas
        self.alpha_bars = np.cumprod(self.alphas)
        self.alpha_bar_table = np.concatenate([[1.0], self.alpha_bars])  # ᾱ_t at index t
        prev = self.alpha_bar_table[:-1]  # ᾱ_{t-1}
        # β̃_t = (1-ᾱ_{t-1}) / (1-ᾱ_t) · β_t  (report eq. 6); 0 at t = 1.
        self.posterior_variance = (1.0 - prev) / (1.0 - self.alpha_bars) * self.betas
        # μ̃_t(x_t, x0) = coef_x0 · x0 + coef_xt · x_t  (report eq. 6)
        self.posterior_coef_x0 = np.sqrt(prev) * self.betas / (1.0 - self.alpha_bars)
        self.posterior_coef_xt = np.sqrt(self.alphas) * (1.0 - prev) / (1.0 - self.alpha_bars)

    def _check(self, t: int) -> int:
        if not 0 <= int(t) <= self.T:
            raise RcaiError(f"schedule: timestep {t} outside 0..{self.T}")
        return int(t)

    def alpha_bar(self, t: int) -> float:
        """ᾱ_t for t in 0..T (ᾱ_0 = 1)."""
        return float(self.alpha_bar_table[self._check(t)])

    def beta(self, t: int) -> float:
        """β_t for t in 1..T."""
        if self._check(t) == 0:
            raise RcaiError("schedule: β_0 is undefined (t starts at 1)")
        return float(self.betas[t - 1])

    def to_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "NoiseSchedule":
        return cls(ScheduleConfig.from_dict(d))

    def __repr__(self) -> str:
        c = self.config
        return f"NoiseSchedule(T={c.T}, beta_start={c.beta_start}, beta_end={c.beta_end})"
