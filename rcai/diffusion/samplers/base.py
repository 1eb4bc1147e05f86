"""Shared sampler contract (after diffusers' schedulers) and the sampler registry.

A sampler turns ε predictions into the next, less noisy sample. It works on numpy float32 so the
same loop drives a torch module, an ONNX Runtime session or a TensorRT engine; the same step also
runs on float32 torch tensors (rcai/diffusion/device_loop.py: the loop on the model's device), its
noise then drawn from a torch.Generator on that device.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from ...errors import RcaiError
from ...registry import Registry
from ..schedule import NoiseSchedule


@dataclass(frozen=True)
class StepOutput:
    prev_sample: np.ndarray  # x at the next (lower) timestep
    pred_x0: np.ndarray  # the x0 estimate used for it (clipped if clip_x0)


class Sampler(ABC):
    """Contract: set_timesteps(S); iterate `timesteps` (descending, in 1..T); for each t feed the
    denoiser noise_level(t) and call step(eps, t, x, rng). Noise (if any) is drawn from `rng` inside
    step, one standard_normal(x.shape) per stochastic step, so equal seeds give equal noise."""

    name: ClassVar[str] = ""

    def __init__(self, schedule: NoiseSchedule, clip_x0: bool = False) -> None:
        self.schedule = schedule
        self.clip_x0 = bool(clip_x0)
        self.timesteps = np.zeros(0, dtype=np.int64)
        self._prev: dict[int, int] = {}
        self.set_timesteps(None)

    # -- timesteps --------------------------------------------------------------------------------
    @abstractmethod
    def _make_timesteps(self, steps: int) -> np.ndarray:
        """Descending distinct ints in 1..T, starting at T."""

    def set_timesteps(self, steps: int | None = None) -> None:
        """Use `steps` denoiser calls (None: the sampler's default, T for DDPM)."""
        steps = self.schedule.T if steps is None else int(steps)
        if not 1 <= steps <= self.schedule.T:
            raise RcaiError(f"{self.name}: steps must be in 1..{self.schedule.T}, got {steps}")
        ts = np.asarray(self._make_timesteps(steps), dtype=np.int64)
        self.timesteps = ts
        self._prev = {int(t): int(p) for t, p in zip(ts, list(ts[1:]) + [0])}

    def prev_timestep(self, t: int) -> int:
        try:
            return self._prev[int(t)]
        except KeyError:
            raise RcaiError(f"{self.name}: timestep {t} is not in the current schedule") from None

    def noise_level(self, t: int) -> float:
        """√ᾱ_t: what the network is fed at timestep t during sampling."""
        return float(np.sqrt(self.schedule.alpha_bar(t)))

    # -- shared maths -----------------------------------------------------------------------------
    def predict_x0(self, eps: np.ndarray, t: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x0 = (x_t - √(1-ᾱ_t)·ε)/√ᾱ_t. With clip_x0 it is clipped to [-1,1] and ε is re-derived from
        the clipped x0 and x_t, so every later formula sees a consistent (x0, ε) pair.
        Returns (x0, ε_used)."""
        ab = self.schedule.alpha_bar(t)
        sa, s1 = float(np.sqrt(ab)), float(np.sqrt(1.0 - ab))
        x0 = _f32((x - s1 * eps) / sa)
        if not self.clip_x0:
            return x0, eps
        x0 = x0.clamp(-1.0, 1.0) if _is_torch(x0) else np.clip(x0, -1.0, 1.0)
        return x0, _f32((x - sa * x0) / s1)

    @staticmethod
    def _noise(rng: Any, like: Any) -> Any:
        """N(0, I) shaped like `like`: from a numpy Generator, or a torch.Generator on the tensor's device."""
        if _is_torch(like):
            import torch

            return torch.randn(like.shape, generator=rng, device=like.device, dtype=like.dtype)
        return rng.standard_normal(like.shape, dtype=np.float32)

    @abstractmethod
    def step(self, eps: np.ndarray, t: int, x: np.ndarray, rng: np.random.Generator) -> StepOutput:
        """One reverse step from timestep t to prev_timestep(t)."""

    @property
    def stochastic(self) -> bool:
        """Whether a step draws noise (then a loop on the device, drawing on the device, agrees with the host loop in distribution only)."""
        return True

    # -- config -----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-ready arguments that rebuild this sampler with get_sampler(**config)."""
        return {"name": self.name, "clip_x0": self.clip_x0, "steps": int(len(self.timesteps))}

    def _check_eps(self, eps: np.ndarray, x: np.ndarray) -> None:
        if eps.shape != x.shape:
            raise RcaiError(f"{self.name}: denoiser output {eps.shape} does not match sample {x.shape}")


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _f32(x: Any) -> Any:
    """float32 without a copy (numpy); torch tensors stay as they are (float32 throughout the device loop)."""
    return x if _is_torch(x) else x.astype(np.float32, copy=False)


SAMPLERS: Registry[type[Sampler]] = Registry("sampler")
list_samplers = SAMPLERS.names
sampler_class = SAMPLERS.get


def register_sampler(name: str) -> Callable[[type[Sampler]], type[Sampler]]:
    return SAMPLERS.register(name, on_register=lambda n, cls: setattr(cls, "name", n))


def get_sampler(name: str, schedule: NoiseSchedule, steps: int | None = None, **kwargs: Any) -> Sampler:
    """Build a registered sampler; `steps` (optional) is passed to set_timesteps."""
    cls = sampler_class(name)
    try:
        sampler = cls(schedule, **kwargs)
    except TypeError as e:
        raise RcaiError(f"sampler {name!r}: {e}") from None
    if steps is not None:
        sampler.set_timesteps(steps)
    return sampler
