"""The sampling loop on the model's device: the sampler's update and noise draws in torch where the
network runs, so no step copies x_t to the host and ε back (rcai/diffusion/sampling.py is the
numpy loop on the host; the two give equal images within float tolerance).

    loop = DeviceLoop(run, lr_up, schedule, sampler="ddim", steps=50, device=torch.device("cuda"))
    result = loop()                      # SampleResult, the image copied to the host once
    image_t = loop.loop()                # the same loop, the image left on the device

`run(x6, level)` takes and returns float32 tensors on `device` (a prepared torch target's
`device_runner()`). y_T is drawn from numpy's generator with the seed, as the host loop draws it
(one copy per loop), so both loops start from the same noise; later draws (stochastic samplers)
come from a torch generator on the device, so those images agree in distribution only.
`loop()` is capturable as one CUDA graph (rcai.targets.torch_cuda.capture_graph) when the
sampler is deterministic (DDIM eta 0) or `generator=None` (the default CUDA generator, graph-safe).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..errors import RcaiError
from .parametrisation import chain_to_image, check_prediction
from .sampling import SampleResult, make_sampler
from .schedule import NoiseSchedule

DeviceRun = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class DeviceLoop:
    """The whole T-step loop on `device` for one fixed LR input (see the module doc)."""

    def __init__(self, run: DeviceRun, lr_up: np.ndarray, schedule: NoiseSchedule, sampler: str = "ddim", steps: int | None = None,
                 seed: int = 0, eta: float = 0.0, clip_x0: bool = False, clip_output: bool = True, residual: float = 0.0,
                 prediction: str = "eps", device: Any = "cpu", generator: bool = True):
        self.prediction = check_prediction(prediction)
        lr_up = np.ascontiguousarray(lr_up, dtype=np.float32)
        if lr_up.ndim != 4 or lr_up.shape[1] != 3:
            raise RcaiError(f"sample: lr_up must be [B,3,H,W], got {lr_up.shape}")
        self.run, self.device = run, torch.device(device)
        self.smp = make_sampler(sampler, schedule, steps, eta, clip_x0)
        self.ts = [int(t) for t in self.smp.timesteps]
        self.lr = torch.from_numpy(lr_up).to(self.device)
        self.x_T = torch.from_numpy(np.random.default_rng(seed).standard_normal(lr_up.shape, dtype=np.float32)).to(self.device)
        b = lr_up.shape[0]
        self.levels = [torch.full((b, 1), self.smp.noise_level(t), dtype=torch.float32, device=self.device) for t in self.ts]
        self.gen = torch.Generator(device=self.device).manual_seed(seed) if generator else None
        self.residual, self.clip_output = residual, clip_output

    def loop(self) -> torch.Tensor:
        """One whole loop; the image [B,3,H,W] stays on the device."""
        x = self.x_T.clone()
        for t, level in zip(self.ts, self.levels):
            out = self.run(torch.cat([self.lr, x], dim=1), level)
            eps = out if self.prediction == "eps" else _v_to_eps(out, x, level)
            x = self.smp.step(eps, t, x, self.gen).prev_sample
        image = chain_to_image(x, self.lr, self.residual)
        return image.clamp(-1.0, 1.0) if self.clip_output else image

    def __call__(self) -> SampleResult:
        return SampleResult(image=self.loop().cpu().numpy(), timesteps=np.asarray(self.ts, np.int64))


def _v_to_eps(v: torch.Tensor, y: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """ε = √γ·v + √(1−γ)·y (parametrisation.to_eps on tensors)."""
    a = level.reshape(-1, 1, 1, 1)
    return a * v + (1.0 - a * a).clamp_min(0).sqrt() * y
