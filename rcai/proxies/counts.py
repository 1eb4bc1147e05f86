"""Data-independent size proxies: parameters and FLOPs (analytic counters, rcai/cost/counters.py)."""
from __future__ import annotations

from ..cost.model import CounterCostModel
from .base import register_proxy


@register_proxy("params")
def params(preset, arch, cfg) -> float:
    return CounterCostModel(preset).estimate(arch).params


@register_proxy("flops")
def flops(preset, arch, cfg) -> float:
    return CounterCostModel(preset).estimate(arch).flops
