"""The inference loop (report's "inference diffusion engine"): y_T ~ N(0,I) to ỹ_0, conditioned on
the upsampled LR image, with any numpy denoiser (torch module adapter, ONNX Runtime, TensorRT)."""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import RcaiError
from ..progress import progress_bar
from .denoiser import Denoiser
from .parametrisation import chain_to_image, check_prediction, to_eps
from .samplers import Sampler, get_sampler, sampler_class
from .schedule import NoiseSchedule

# step_callback(i, t, seconds): i-th denoiser call (0-based) at timestep t took `seconds`.
StepCallback = Callable[[int, int, float], None]


@dataclass
class SampleResult:
    image: np.ndarray  # ỹ_0, float32 [B,3,H,W]
    intermediates: dict[int, np.ndarray] = field(default_factory=dict)  # t -> ỹ_t
    timesteps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # denoiser calls, in order


def _check_return_at(return_at: Sequence[int], visited: set[int], T: int) -> set[int]:
    wanted = {int(t) for t in return_at}
    bad = sorted(wanted - visited)
    if bad:
        raise RcaiError(
            f"return_at: timesteps {bad[:5]} are not visited by this sampler "
            f"(valid: 0, {T} and the sampler's timesteps)"
        )
    return wanted


def make_sampler(sampler: str | Sampler, schedule: NoiseSchedule, steps: int | None = None, eta: float = 0.0, clip_x0: bool = False,
                 **sampler_kwargs: Any) -> Sampler:
    """A registered sampler by name (eta passed only to samplers that take it), or a ready one with
    its timesteps reset to `steps` if given (see `sample`)."""
    if isinstance(sampler, Sampler):
        if steps is not None:
            sampler.set_timesteps(steps)
        return sampler
    if "eta" in inspect.signature(sampler_class(sampler).__init__).parameters:
        sampler_kwargs = {"eta": eta, **sampler_kwargs}  # stochasticity knob, DDIM-like samplers only
    return get_sampler(sampler, schedule, steps=steps, clip_x0=clip_x0, **sampler_kwargs)


def per_step(denoiser: Denoiser | Sequence[Denoiser], steps: int) -> list[Denoiser]:
    """One denoiser per step of a loop of `steps` calls: a single denoiser for every step, or a
    per-step list (a step-aware schedule: rcai/space/step_schedule.py), which must have one per step."""
    if callable(denoiser):
        return [denoiser] * steps
    denoisers = list(denoiser)
    if len(denoisers) != steps:
        raise RcaiError(f"sample: {len(denoisers)} per-step denoisers for a loop of {steps} steps")
    return denoisers


def sample(
    denoiser: Denoiser | Sequence[Denoiser],
    lr_up: np.ndarray,
    schedule: NoiseSchedule,
    sampler: str | Sampler = "ddpm",
    steps: int | None = None,
    seed: int = 0,
    eta: float = 0.0,
    return_at: Sequence[int] = (),
    progress: bool = False,
    clip_x0: bool = False,
    clip_output: bool = True,
    step_callback: StepCallback | None = None,
    residual: float = 0.0,
    prediction: str = "eps",
    **sampler_kwargs: Any,
) -> SampleResult:
    """Super-resolve `lr_up` ([B,3,H,W] in [-1,1], the bicubic-upsampled LR image).

    denoiser: one denoiser for every step, or a list of one per step (per_step), in calling order.

    sampler: a registered name ("ddpm", "ddim") built with clip_x0 / sampler_kwargs and eta (passed only
    to samplers that take it: ignored by DDPM, which is always fully stochastic), or a ready
    Sampler (then steps, eta, clip_x0 and sampler_kwargs are ignored except that steps, if given,
    resets its timesteps). Noise comes from np.random.default_rng(seed): y_T first, then one draw per
    stochastic step, so the same seed gives the same noise whatever runs the denoiser.
    return_at: timesteps t whose ỹ_t to keep (T is the initial noise, 0 the final output).
    residual: if > 0, the chain models residual * (hr - lr_up) (SRDiff-style, the model was trained
    with diffusion_loss(residual=...)); the returned image is lr_up + ỹ_0 / residual. Intermediates
    stay in the chain's (scaled residual) space; clip_x0 clips the scaled residual to [-1, 1], i.e.
    the residual to [-1/residual, 1/residual].
    prediction: what the denoiser returns, "eps" or "v" (converted to ε for the sampler's step).
    """
    check_prediction(prediction)
    lr_up = np.ascontiguousarray(lr_up, dtype=np.float32)
    if lr_up.ndim != 4 or lr_up.shape[1] != 3:
        raise RcaiError(f"sample: lr_up must be [B,3,H,W], got {lr_up.shape}")
    smp = make_sampler(sampler, schedule, steps, eta, clip_x0, **sampler_kwargs)
    ts = [int(t) for t in smp.timesteps]
    wanted = _check_return_at(return_at, set(ts) | {0}, schedule.T)
    denoisers = per_step(denoiser, len(ts))

    rng = np.random.default_rng(seed)
    x = rng.standard_normal(lr_up.shape, dtype=np.float32)
    b = lr_up.shape[0]
    intermediates: dict[int, np.ndarray] = {}
    if schedule.T in wanted and ts[0] == schedule.T:
        intermediates[schedule.T] = x.copy()

    with progress_bar(progress, "sampling", len(ts)) as advance:
        for i, t in enumerate(ts):
            x6 = np.concatenate([lr_up, x], axis=1)
            level = np.full((b, 1), smp.noise_level(t), dtype=np.float32)
            t0 = time.perf_counter()
            eps = denoisers[i](x6, level)
            dt = time.perf_counter() - t0
            if step_callback is not None:
                step_callback(i, t, dt)
            eps = np.asarray(eps, dtype=np.float32)
            if eps.shape != x.shape:
                raise RcaiError(f"sample: denoiser returned shape {eps.shape}, expected {x.shape}")
            eps = to_eps(prediction, eps, x, level)
            x = smp.step(eps, t, x, rng).prev_sample
            t_prev = smp.prev_timestep(t)
            if t_prev in wanted:
                intermediates[t_prev] = x.copy()
            advance()
    x = chain_to_image(x, lr_up, residual)
    image = np.clip(x, -1.0, 1.0) if clip_output else x
    return SampleResult(image=image, intermediates=intermediates, timesteps=np.asarray(ts, np.int64))
