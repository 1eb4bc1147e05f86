"""Kernels per op: what a launch-bound step costs (the GPU cost model: calibration.fit_launch).

At batch 1 a GPU step is ~150 small kernels of a few microseconds each: its time is set by how
many kernels the network launches, not by FLOPs, and an isolated op's latency minus a per-call
overhead keeps almost nothing of it. So each op's kernels are counted once:
- on a CUDA device: the CUDA kernels (and memcpy/memset) of one forward in torch's profiler trace;
- elsewhere (and where the trace has none): the aten ops of one forward that do work (views
  excluded), counted at the dispatcher: the same code path, exercisable on the CPU.
"""
from __future__ import annotations

import sys
from typing import Any, Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ..model.ops import OpSpec, build_op
from ..model.ops.registry import example_inputs

COUNTERS = ("cuda-profiler", "aten-dispatch")


class _AtenCount(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not getattr(func, "is_view", False) and func.__name__.split(".")[0] not in ("detach", "alias", "lift_fresh"):
            self.n += 1
        return func(*args, **(kwargs or {}))


def aten_ops(module: torch.nn.Module, inputs: Iterable[torch.Tensor]) -> int:
    """Aten ops of one forward that do work (views excluded)."""
    with torch.no_grad(), _AtenCount() as c:
        module(*inputs)
    return c.n


def cuda_kernels(module: torch.nn.Module, inputs: Iterable[torch.Tensor]) -> int:
    """CUDA kernels, memcpys and memsets of one forward (after a warm-up), from torch's profiler."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    inputs = list(inputs)
    with torch.no_grad():
        for _ in range(2):
            module(*inputs)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            module(*inputs)
            torch.cuda.synchronize()
    return sum(1 for e in prof.events() if getattr(e, "device_type", None) == DeviceType.CUDA)


def count_kernels(module: torch.nn.Module, inputs: Iterable[torch.Tensor], device: Any = "cpu", dtype: Any = None) -> tuple[int, str]:
    """(kernels of one forward of `module` on `device`, which counter counted them: COUNTERS)."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            n = cuda_kernels(module.to(device, dtype), [_on(t, device, dtype) for t in inputs])
        except Exception as e:  # noqa: BLE001  a profiler without CUPTI: the dispatcher's count below
            print(f"note: no CUDA kernel trace ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); counting aten ops", file=sys.stderr)
            n = 0
        if n > 0:
            return n, "cuda-profiler"
    meta = torch.device("meta")  # the dispatcher sees the same ops without computing them
    return aten_ops(module.to(meta), [_on(t, meta, None) for t in inputs]), "aten-dispatch"


def _on(t: torch.Tensor, device: Any, dtype: Any) -> torch.Tensor:
    return t.to(device, dtype if dtype is not None and t.is_floating_point() else t.dtype)


def op_kernels(specs: Iterable[OpSpec], batch: int = 1, device: Any = "cpu", dtype: Any = None) -> tuple[dict[str, int], str]:
    """{op key: kernels of one forward} for every op (seed-0 weights, the profiler's inputs) and the counter used."""
    out, used = {}, set()
    for spec in specs:
        torch.manual_seed(0)
        n, how = count_kernels(build_op(spec).eval(), example_inputs(spec, batch), device, dtype)
        out[spec.key] = n
        used.add(how)
    return out, "+".join(sorted(used)) or COUNTERS[1]
