"""What the network predicts: ε (SR3, the report) or v = √γ·ε − √(1−γ)·x0 (Salimans & Ho, 2022).

Samplers always step with ε, so a v-network's output is converted on the way (exact algebra, no
division: ε = √γ·v + √(1−γ)·y, x0 = √γ·y − √(1−γ)·v). v is well conditioned at every noise level;
at pure noise (γ → 0) it is −x0, the network's regression of E[x0 | lr], which the quality metric
reads off directly (rcai/train/quality.py).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import RcaiError

PREDICTIONS = ("eps", "v")


def check_prediction(prediction: str) -> str:
    if prediction not in PREDICTIONS:
        raise RcaiError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    return prediction


def chain_x0(hr, lr_up, residual: float):
    """What the chain diffuses: residual * (hr - lr_up) (SRDiff-style) if residual > 0, else hr (SR3).
    numpy or torch alike."""
    return residual * (hr - lr_up) if residual else hr


def chain_to_image(x0, lr_up, residual: float):
    """The inverse of chain_x0: an image from the chain's x0 (unclipped)."""
    return lr_up + x0 / residual if residual else x0


def training_target(prediction: str, x0: torch.Tensor, eps: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """The regression target for noise draw `eps` at level γ (float64 [B])."""
    if check_prediction(prediction) == "eps":
        return eps
    shape = (-1,) + (1,) * (x0.dim() - 1)
    a = gamma.sqrt().to(x0.device, x0.dtype).view(shape)
    b = (1.0 - gamma).sqrt().to(x0.device, x0.dtype).view(shape)
    return a * eps - b * x0


def to_eps(prediction: str, out: np.ndarray, y: np.ndarray, level: np.ndarray) -> np.ndarray:
    """ε from the network's output at y_t, level = √γ ([B,1])."""
    if prediction == "eps":
        return out
    a = level.reshape(-1, 1, 1, 1).astype(np.float64)
    return (a * out + np.sqrt(1.0 - a * a) * y).astype(np.float32)


def to_x0(prediction: str, out: torch.Tensor, y: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """x0 estimate from the network's output at y_t, level = √γ ([B,1]); torch, differentiable."""
    a = level.to(out.dtype).view(-1, 1, 1, 1)
    b = (1.0 - a * a).clamp_min(0).sqrt()
    if check_prediction(prediction) == "v":
        return a * y - b * out
    return (y - b * out) / a
