"""SNIP (Lee et al. 2019) as a network score: sum over conv/linear weights of |dL/dW ⊙ W| at init."""
from __future__ import annotations

from .base import grads, init_model, register_proxy


@register_proxy("snip")
def snip(preset, arch, cfg) -> float:
    return sum(float((g * w).abs().sum()) for w, g in grads(init_model(preset, arch, cfg.seed), preset, cfg))
