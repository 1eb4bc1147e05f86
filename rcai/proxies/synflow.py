"""SynFlow (Tanaka et al. 2020), data-free: with every parameter replaced by its absolute value,
GroupNorm removed (it would zero a constant input) and all-ones inputs (image and noise level), R =
sum of the output in float64; score = log Σ W ⊙ dR/dW over all parameters (log: the raw sum spans
hundreds of orders of magnitude across subnets; ranks are unchanged)."""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import init_model, register_proxy


@register_proxy("synflow")
def synflow(preset, arch, cfg) -> float:
    model = init_model(preset, arch, cfg.seed).double().eval()
    for name, m in list(model.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.GroupNorm):
                setattr(m, child_name, nn.Identity())
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    ps = list(model.parameters())
    x = torch.ones(1, 6, preset.hr_size, preset.hr_size, dtype=torch.float64)
    out = model(x, torch.ones(1, 1, dtype=torch.float64))
    g = torch.autograd.grad(out.sum(), ps, allow_unused=True)
    s = sum(float((p.detach() * gi).sum()) for p, gi in zip(ps, g) if gi is not None)
    return math.log(s) if s > 0 else -math.inf
