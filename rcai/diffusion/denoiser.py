"""The numpy denoiser contract used by samplers, and an adapter for torch modules.

A denoiser is any callable `eps = f(x6, noise_level)` with x6: float32 [B,6,H,W] (upsampled LR
concatenated with y_t), noise_level: float32 [B,1] (√ᾱ_t) and eps: float32 [B,3,H,W].
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class Denoiser(Protocol):
    def __call__(self, x6: np.ndarray, noise_level: np.ndarray) -> np.ndarray: ...


class TorchDenoiser:
    """Runs a torch module (module(x6, noise_level) -> eps) on numpy inputs under inference mode.
    The module is switched to eval() here, since sampling never trains."""

    def __init__(self, module: torch.nn.Module, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()

    def __call__(self, x6: np.ndarray, noise_level: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(x6, dtype=np.float32)).to(self.device)
            n = torch.from_numpy(np.ascontiguousarray(noise_level, dtype=np.float32)).to(self.device)
            out = self.module(x, n)
            return out.detach().to("cpu", torch.float32).numpy()
