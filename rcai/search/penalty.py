"""Latency penalties of the architecture loss, by name.

Every penalty sees the data loss, E[loop latency] (ms, differentiable in alpha), the base model's
loop latency (for scale) and the budget. Default: "budget" when a budget is given, else "expected".
- expected  (report / AutoGAN-Distiller): loss + lambda * E[lat] / lat_base
- budget    (ProxylessNAS `add#linear` restricted to the excess): loss + lambda * relu(E[lat] - B) / B;
            only latency above the budget is penalised, so below it the data loss alone decides.
- target    (a Lagrangian for E[lat] = B, cf. TuNAS's absolute reward): loss + lambda * (E[lat] - B) / B with a
            multiplier of either sign, so a search that drifts under the budget is pushed back up to it
- mul-log   (ProxylessNAS `mul#log`): loss * (log E[lat] / log B) ** beta, beta = lambda * 0.6

`budget` and `target` are weighted by the search's dual variable mu (rcai/search/strategies/darts/engine.py); SIGNED_MU
names the penalties whose mu may go negative.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import RcaiError
from ..registry import Registry

Penalty = Callable[[torch.Tensor, torch.Tensor, float, float | None, float], torch.Tensor]
PENALTIES: Registry[Penalty] = Registry("penalty")
register_penalty = PENALTIES.register
get_penalty = PENALTIES.get


def _need_budget(budget: float | None, name: str) -> float:
    if not budget:
        raise RcaiError(f"penalty {name!r} needs --latency-budget-ms")
    return budget


@register_penalty("expected")
def expected(loss, lat, base, budget, lam):
    return loss + lam * lat / base


@register_penalty("budget")
def budget_linear(loss, lat, base, budget, lam):
    b = _need_budget(budget, "budget")
    return loss + lam * torch.relu(lat - b) / b


@register_penalty("target")
def budget_target(loss, lat, base, budget, lam):
    b = _need_budget(budget, "target")
    return loss + lam * (lat - b) / b


DUAL = ("budget", "target")  # weighted by the dual variable mu
SIGNED_MU = ("target",)  # ... which may go negative (the budget is a target, not a ceiling)


@register_penalty("mul-log")
def mul_log(loss, lat, base, budget, lam):
    b = _need_budget(budget, "mul-log")
    return loss * (torch.log(lat) / math.log(b)) ** (0.6 * lam)
