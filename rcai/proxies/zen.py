"""Zen-score (Lin et al. 2021), adapted: f = the feature map entering the output head (the UNet's
last decoder feature), inputs x ~ N(0, 1) (image and noise level), score = log(E‖f(x + εz) − f(x)‖_F / ε),
ε = 0.01, over the fixed batch size of draws. Zen-NAS adds Σ log √(BN running variance); our
GroupNorm keeps no running statistics (it normalises every sample), so that term is dropped."""
from __future__ import annotations

import math

import torch

from .base import init_model, register_proxy

EPS = 0.01


@register_proxy("zen")
def zen(preset, arch, cfg) -> float:
    model = init_model(preset, arch, cfg.seed).eval()
    feats: list[torch.Tensor] = []
    hook = model.head.register_forward_pre_hook(lambda _m, inp: feats.append(inp[0]))
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    shape = (cfg.batch, 6, preset.hr_size, preset.hr_size)
    x, z = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    level = torch.rand(cfg.batch, 1, generator=gen)
    try:
        with torch.no_grad():
            model(x, level)
            model(x + EPS * z, level)
    finally:
        hook.remove()
    delta = (feats[1] - feats[0]).flatten(1).norm(dim=1).mean()
    return math.log(float(delta) / EPS + 1e-30)
