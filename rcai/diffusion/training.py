"""SR3 training objective (report Algorithm 1 with eq. 7): continuous noise level γ, L1 (or L2) on ε (or v)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import RcaiError
from .parametrisation import chain_x0, training_target
from .schedule import NoiseSchedule

LOSSES = {"l1": torch.nn.functional.l1_loss, "l2": torch.nn.functional.mse_loss}
TorchDenoiserFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sample_timesteps(schedule: NoiseSchedule, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """t ~ U{1..T}, int64 [B] on the generator's device (the CPU without one)."""
    return torch.randint(1, schedule.T + 1, (batch,), generator=generator, device=_device(generator))


def sample_gamma(
    schedule: NoiseSchedule, t: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """γ ~ U(ᾱ_t, ᾱ_{t-1}) per element of t (int tensor in 1..T); float64 [B] on the generator's
    device (the CPU without one). Kept in float64 because 1-γ is ~1e-6 near t = 1 and must not round to 0."""
    dev = _device(generator)
    t = t.to(dev, torch.int64)
    if t.numel() and (int(t.min()) < 1 or int(t.max()) > schedule.T):
        raise RcaiError(f"sample_gamma: timesteps must lie in 1..{schedule.T}")
    table = torch.from_numpy(schedule.alpha_bar_table).to(dev)
    lo, hi = table[t], table[t - 1]  # ᾱ_t < ᾱ_{t-1}
    u = torch.rand(t.shape, generator=generator, dtype=torch.float64, device=dev)
    return lo + (hi - lo) * u


def _device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def q_sample(hr: torch.Tensor, gamma: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """y = √γ·hr + √(1-γ)·ε with γ per batch element (float64 [B])."""
    shape = (-1,) + (1,) * (hr.dim() - 1)
    a = gamma.sqrt().to(hr.device, hr.dtype).view(shape)
    b = (1.0 - gamma).sqrt().to(hr.device, hr.dtype).view(shape)
    return a * hr + b * eps


@dataclass
class NoisyBatch:
    """One training batch with its draws made: the network's input cat[lr_up, y_t], its noise level
    √γ (float32 [B,1]) and the regression target (ε or v)."""

    net_input: torch.Tensor
    noise_level: torch.Tensor
    target: torch.Tensor


def noisy_batch(schedule: NoiseSchedule, lr_up: torch.Tensor, hr: torch.Tensor, generator: torch.Generator | None = None,
                residual: float = 0.0, prediction: str = "eps") -> NoisyBatch:
    """Draw (t, γ, ε) for a batch and build what the denoiser sees and what it should predict. Random
    draws come from `generator`, on its device (without one: torch's global CPU generator); a seeded
    generator reproduces a step on its device kind (rcai/train/device.py). Several networks fed one
    NoisyBatch see the same draws (the one-shot supernet's paths, rcai/oneshot/train.py)."""
    if lr_up.shape != hr.shape or hr.dim() != 4:
        raise RcaiError(f"diffusion_loss: lr_up {tuple(lr_up.shape)} and hr {tuple(hr.shape)} must both be [B,C,H,W]")
    b = hr.shape[0]
    t = sample_timesteps(schedule, b, generator)
    gamma = sample_gamma(schedule, t, generator)
    eps = torch.randn(hr.shape, generator=generator, dtype=hr.dtype, device=_device(generator)).to(hr.device)
    x0 = chain_x0(hr, lr_up, residual)
    y_t = q_sample(x0, gamma, eps)
    noise_level = gamma.sqrt().to(hr.device, torch.float32).view(b, 1)
    return NoisyBatch(torch.cat([lr_up, y_t], dim=1), noise_level, training_target(prediction, x0, eps, gamma))


def prediction_loss(pred: torch.Tensor, target: torch.Tensor, loss: str = "l1") -> torch.Tensor:
    """Mean L1 (or squared error, loss="l2") of a prediction against its target (report eq. 7)."""
    if loss not in LOSSES:
        raise RcaiError(f"diffusion_loss: loss must be one of {tuple(LOSSES)}, got {loss!r}")
    if pred.shape != target.shape:
        raise RcaiError(f"diffusion_loss: denoiser returned {tuple(pred.shape)}, expected {tuple(target.shape)}")
    return LOSSES[loss](pred, target)


def diffusion_loss(
    denoiser: TorchDenoiserFn,
    schedule: NoiseSchedule,
    lr_up: torch.Tensor,
    hr: torch.Tensor,
    generator: torch.Generator | None = None,
    residual: float = 0.0,
    prediction: str = "eps",
    loss: str = "l1",
) -> torch.Tensor:
    """Mean L1 (or squared error, loss="l2") between the target (ε, or v with prediction="v") and denoiser(cat[lr_up, y_t], √γ) for one batch (report eq. 7).

    lr_up, hr: [B,3,H,W] in [-1,1]. The denoiser is fed noise_level = √γ as float32 [B,1].
    residual: if > 0, the chain models y_0 = residual * (hr - lr_up) instead of hr (SRDiff-style
    residual, scaled towards unit variance; see `sample`). Draws as in `noisy_batch`.
    """
    if loss not in LOSSES:
        raise RcaiError(f"diffusion_loss: loss must be one of {tuple(LOSSES)}, got {loss!r}")
    nb = noisy_batch(schedule, lr_up, hr, generator, residual, prediction)
    return prediction_loss(denoiser(nb.net_input, nb.noise_level), nb.target, loss)


def preset_loss(denoiser: TorchDenoiserFn, schedule: NoiseSchedule, preset, lr_up: torch.Tensor, hr: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """`diffusion_loss` with the chain a preset trains (its residual, prediction and loss)."""
    return diffusion_loss(denoiser, schedule, lr_up, hr, generator, residual=preset.residual, prediction=preset.prediction, loss=preset.loss)
