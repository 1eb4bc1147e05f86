"""PSNR/SSIM of a denoiser on a test split, by running the real sampling loop (DDIM by default)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import JsonConfig
from ..diffusion import NoiseSchedule, TorchDenoiser, sample
from ..metrics import psnr, ssim
from .device import module_device


@dataclass(frozen=True)
class EvalConfig(JsonConfig):
    sampler: str = "ddim"
    steps: int = 20
    max_images: int = 4  # 0: no sampled evaluation
    seed: int = 0

    def __post_init__(self) -> None:
        from ..config import require_counts
        from ..errors import RcaiError

        require_counts({"steps": self.steps}, "eval ")
        if isinstance(self.max_images, bool) or not isinstance(self.max_images, int) or self.max_images < 0:
            raise RcaiError(f"eval max_images must be a whole number >= 0, got {self.max_images!r}")


def evaluate(model: torch.nn.Module, dataset, schedule: NoiseSchedule, cfg: EvalConfig = EvalConfig(), denoiser=None) -> dict[str, Any]:
    """Super-resolve up to `max_images` crops spread over `dataset`; sampled PSNR/SSIM of the model and of
    plain bicubic (= a zero residual), and `psnr_gain_db`: how far the samples are above bicubic."""
    n = min(cfg.max_images, len(dataset))
    items = [dataset[int(i)] for i in np.linspace(0, len(dataset) - 1, n).round()]
    lr_up = torch.stack([it["lr_up"] for it in items]).numpy()
    hr = torch.stack([it["hr"] for it in items]).numpy()
    was_training = model.training
    model.eval()
    try:
        out = sample(denoiser or TorchDenoiser(model, module_device(model)), lr_up, schedule, sampler=cfg.sampler, steps=cfg.steps, seed=cfg.seed, clip_x0=True,
                     residual=model.preset.residual, prediction=model.preset.prediction)
    finally:
        model.train(was_training)
    sampled, bicubic = float(psnr(out.image, hr)), float(psnr(lr_up, hr))
    return {
        "psnr": sampled,
        "ssim": float(ssim(out.image, hr)),
        "bicubic_psnr": bicubic,
        "psnr_gain_db": sampled - bicubic,
        "bicubic_ssim": float(ssim(lr_up, hr)),
        "images": n,
        "sampler": cfg.sampler,
        "steps": cfg.steps,
        "_arrays": {"sr": out.image, "lr_up": lr_up, "hr": hr},
    }


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[3,H,W] in [-1,1] -> uint8 [H,W,3]."""
    return np.clip((img.transpose(1, 2, 0) + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
