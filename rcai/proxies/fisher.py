"""Fisher (Turner et al. 2020) on activations: for every conv/linear output a with gradient g = dL/da,
per channel 0.5·mean over the batch of (Σ_spatial a·g)², summed over channels and layers."""
from __future__ import annotations

import torch
from torch import nn

from .base import init_model, proxy_loss, register_proxy


@register_proxy("fisher")
def fisher(preset, arch, cfg) -> float:
    model = init_model(preset, arch, cfg.seed)
    acts: list[torch.Tensor] = []

    def keep(_m, _i, out):
        out.retain_grad()
        acts.append(out)

    hooks = [m.register_forward_hook(keep) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        proxy_loss(model, preset, cfg).backward()
    finally:
        for h in hooks:
            h.remove()
    total = 0.0
    for a in acts:
        if a.grad is None:
            continue
        ag = (a * a.grad).detach()
        per_channel = ag.sum(dim=tuple(range(2, ag.dim()))) if ag.dim() > 2 else ag  # [B, C]
        total += float(0.5 * per_channel.pow(2).mean(0).sum())
    return total
