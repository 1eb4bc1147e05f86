"""grad_norm (Abdelfattah et al. 2021): sum over conv/linear layers of ||dL/dW||_2 at init."""
from __future__ import annotations

from .base import grads, init_model, register_proxy


@register_proxy("grad_norm")
def grad_norm(preset, arch, cfg) -> float:
    return sum(float(g.norm()) for _, g in grads(init_model(preset, arch, cfg.seed), preset, cfg))
