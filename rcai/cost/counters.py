"""Analytic per-op counters: FLOPs (torch FlopCounterMode on the meta device), params, bytes moved.

FLOPs follow torch's convention (2 per multiply-accumulate; matmul/conv/attention only).
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..model.ops import OpSpec, build_op
from ..model.ops.registry import example_inputs


@lru_cache(maxsize=None)
def op_counts(spec: OpSpec, batch: int = 1) -> dict[str, float]:
    """flops, params, bytes (fp32 inputs + output + weights) of one op, computed shape-only."""
    with torch.device("meta"):
        module = build_op(spec).eval()
        inputs = tuple(torch.empty(s) for s in spec.input_shapes(batch).values())
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            out = module(*inputs)
    params = sum(p.numel() for p in module.parameters())
    elems = sum(x.numel() for x in inputs) + out.numel() + params
    return {"flops": float(counter.get_total_flops()), "params": float(params), "bytes": 4.0 * elems}


def op_flops(spec: OpSpec) -> float:
    return op_counts(spec)["flops"]


def op_params(spec: OpSpec) -> float:
    return op_counts(spec)["params"]


__all__ = ["op_counts", "op_flops", "op_params", "example_inputs"]
