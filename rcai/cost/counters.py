"""Analytic per-op counters: FLOPs (torch FlopCounterMode on the meta device), params, bytes moved.

FLOPs follow torch's convention (2 per multiply-accumulate; matmul/conv/attention only).
"""
from __future__ import annotations

import weakref
from functools import lru_cache

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from ..model.ops import OpSpec, build_op
from ..model.ops.registry import example_inputs


class PeakMemoryMode(TorchDispatchMode):
    """Peak bytes of live tensors created during a forward (inputs and weights excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0

    def _free(self, n: int) -> None:
        self.live -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and not t._is_view():
                n = t.numel() * t.element_size()
                self.live += n
                weakref.finalize(t, self._free, n)
        self.peak = max(self.peak, self.live)
        return out


@lru_cache(maxsize=None)
def op_counts(spec: OpSpec, batch: int = 1) -> dict[str, float]:
    """flops, params, bytes (fp32 inputs + output + weights) and peak activation bytes of one op,
    computed from shapes alone on the meta device."""
    with torch.device("meta"):
        module = build_op(spec).eval()
        inputs = tuple(torch.empty(s) for s in spec.input_shapes(batch).values())
        counter, memory = FlopCounterMode(display=False), PeakMemoryMode()
        with counter, memory, torch.no_grad():
            out = module(*inputs)
    params = sum(p.numel() for p in module.parameters())
    elems = sum(x.numel() for x in inputs) + out.numel() + params
    return {
        "flops": float(counter.get_total_flops()),
        "params": float(params),
        "bytes": 4.0 * elems,
        "peak_act_bytes": float(memory.peak),
    }


def op_flops(spec: OpSpec) -> float:
    return op_counts(spec)["flops"]


def op_params(spec: OpSpec) -> float:
    return op_counts(spec)["params"]


__all__ = ["op_counts", "op_flops", "op_params", "example_inputs"]
