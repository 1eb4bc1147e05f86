"""Image quality for batches in [-1,1]: PSNR and SSIM, averaged over the batch."""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import RcaiError


def _as_batch(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().to("cpu").float().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise RcaiError(f"{what}: expected [B,C,H,W] or [C,H,W], got shape {a.shape}")
    return a


def _pair(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = _as_batch(pred, "pred"), _as_batch(target, "target")
    if p.shape != t.shape:
        raise RcaiError(f"pred {p.shape} and target {t.shape} differ in shape")
    return p, t


def psnr_per_image(pred: Any, target: Any, data_range: float = 2.0) -> np.ndarray:
    """10·log10(range² / MSE) of every image of the batch (inf where an image matches exactly)."""
    p, t = _pair(pred, target)
    mse = ((p - t) ** 2).reshape(len(p), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def psnr(pred: Any, target: Any, data_range: float = 2.0) -> float:
    """Mean over the batch of 10·log10(range² / MSE) per image; inf if every image matches exactly."""
    return float(psnr_per_image(pred, target, data_range).mean())


def ssim(pred: Any, target: Any, data_range: float = 2.0) -> float:
    """Mean over the batch of skimage's SSIM (7x7 uniform window, channels averaged)."""
    from skimage.metrics import structural_similarity

    p, t = _pair(pred, target)
    if min(p.shape[2:]) < 7:
        raise RcaiError(f"ssim: images must be at least 7x7, got {p.shape[2]}x{p.shape[3]}")
    return float(np.mean([structural_similarity(a, b, channel_axis=0, data_range=data_range) for a, b in zip(p, t)]))
