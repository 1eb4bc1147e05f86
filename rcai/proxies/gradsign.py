"""GradSign (Zhang & Jia 2022): per-sample gradients g_i of the loss at init (each crop of the fixed
batch alone, with its fixed noise), score = Σ over conv/linear weight entries k of |Σ_i sign(g_ik)|:
high when the samples' gradients agree in sign (denser sample-wise optima)."""
from __future__ import annotations

import torch

from .base import fixed_batch, init_model, proxy_loss, register_proxy, weights


@register_proxy("gradsign")
def gradsign(preset, arch, cfg) -> float:
    model = init_model(preset, arch, cfg.seed)
    ws = weights(model)
    lr_up, hr = fixed_batch(preset, cfg)
    total = [torch.zeros_like(w) for w in ws]
    for i in range(len(hr)):
        g = torch.autograd.grad(proxy_loss(model, preset, cfg, lr_up[i : i + 1], hr[i : i + 1]), ws, allow_unused=True)
        for t, gi in zip(total, g):
            if gi is not None:
                t += gi.sign()
    return float(sum(t.abs().sum() for t in total))
