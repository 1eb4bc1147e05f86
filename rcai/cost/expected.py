"""Differentiable expected cost of a supernet (the report's metric propagation, after AutoGAN-Distiller).

Each op contributes its constant cost; each mixed op scales its candidates' costs by the weights
it used in the last forward pass (the same Gumbel sample as the data), so the gradient of the
expected cost reaches only the architecture parameters alpha.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ..model.mixed import FixedOp, MixedOp
from ..model.ops import OpSpec

OpMetric = Callable[[OpSpec, str], float]


def expected_cost(module: nn.Module, op_metric: OpMetric, metrics: Sequence[str], under_alpha: bool = False) -> dict[str, torch.Tensor]:
    """{metric: E[metric]} of `module` (a supernet, a subnet, or any sub-module). under_alpha: the
    expectation under the architecture distribution softmax(alpha) itself, free of the temperature
    and Gumbel noise of the last forward (smooth and deterministic: what a budget is checked on)."""
    p = next(module.parameters(), None)  # the costs join alpha on its device (a supernet trained on a GPU)
    vec = _expected(module, op_metric, tuple(metrics), {}, under_alpha, p.device if p is not None else None)
    return {m: vec[i] for i, m in enumerate(metrics)}


def _expected(module: nn.Module, op_metric: OpMetric, metrics: tuple[str, ...], cache: dict, under_alpha: bool = False,
              device: torch.device | None = None) -> torch.Tensor:
    spec = getattr(module, "spec", None)
    if spec is not None:
        if spec.key not in cache:
            cache[spec.key] = torch.tensor([op_metric(spec, m) for m in metrics], dtype=torch.float64, device=device)
        return cache[spec.key]
    if isinstance(module, MixedOp):
        if under_alpha:
            w = torch.softmax(module.alpha, 0)
        else:
            w = module.last_weights if module.last_weights is not None else module.weights()
        costs = torch.stack([_expected(op, op_metric, metrics, cache, under_alpha, device) for op in module.ops.values()])
        return (w.to(torch.float64)[:, None] * costs).sum(0)
    children = module.ops.values() if isinstance(module, FixedOp) else module.children()
    total = torch.zeros(len(metrics), dtype=torch.float64, device=device)
    for child in children:
        total = total + _expected(child, op_metric, metrics, cache, under_alpha, device)
    return total
