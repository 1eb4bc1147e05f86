"""GraSP (Wang et al. 2020) as a network score: sum of -W ⊙ (H g) over conv/linear weights, H the
Hessian of the loss and g its gradient (a Hessian-vector product by double backprop; SiLU, GroupNorm
and softmax attention are twice differentiable)."""
from __future__ import annotations

import torch

from .base import init_model, proxy_loss, register_proxy, weights


@register_proxy("grasp")
def grasp(preset, arch, cfg) -> float:
    model = init_model(preset, arch, cfg.seed)
    ws = weights(model)
    g = torch.autograd.grad(proxy_loss(model, preset, cfg), ws, create_graph=True, allow_unused=True)
    pairs = [(w, gi) for w, gi in zip(ws, g) if gi is not None]
    z = sum((gi * gi.detach()).sum() for _, gi in pairs)
    hg = torch.autograd.grad(z, [w for w, _ in pairs], allow_unused=True)
    return -sum(float((w.detach() * h).sum()) for (w, _), h in zip(pairs, hg) if h is not None)
