"""The fixed cost of one call on a target, measured on a model that does (almost) nothing.
`identity_onnx` (a hand-built one-node graph of any dtype) serves benchmarks/targets_overhead.py.

An op profiled in isolation pays this once per call; a whole network pays it once. A cost table
can subtract it from every op and add it back once per network (see
benchmarks/results/targets_overhead.md for its size on the development machine).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Mapping

from .base import MeasureConfig, Prepared, Target, TimingStats
from .inputs import normalize_specs

DEFAULT_SPECS = {"x": ((1, 8), "float32")}


def identity_onnx(path: str | Path, shape: tuple[int, ...], dtype: str = "float32") -> Path:
    """Write a one-node ONNX graph y = Identity(x) (opset 17) to `path`."""
    import numpy as np
    import onnx
    from onnx import helper

    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    x = helper.make_tensor_value_info("x", elem, list(shape))
    y = helper.make_tensor_value_info("y", elem, list(shape))
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by older runtimes (JetPack's onnxruntime / TensorRT parsers)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def _probe():
    """The overhead model: one multiply (y = 2x), the smallest graph every target runs as a real
    kernel (an Identity may be folded into a copy-free alias). A torch module, exported for ONNX targets."""
    import torch

    class CallProbe(torch.nn.Module):
        def forward(self, x):
            return x * 2

    return CallProbe().eval()


def prepare_probe(target: Target, workdir: str | Path, input_specs: Mapping[str, Any] | None = None) -> Prepared:
    """The overhead model prepared on `target` (`Target.prepare_module`: its ONNX export, or the module on torch targets)."""
    import torch

    specs = normalize_specs(input_specs or DEFAULT_SPECS, "overhead model specs")
    if len(specs) != 1:
        raise ValueError("the overhead model takes exactly one input")
    ((shape, dtype),) = specs.values()
    x = torch.ones(shape, dtype=getattr(torch, dtype.name))
    return target.prepare_module(_probe(), [x], ["x"], Path(workdir) / f"overhead-{'x'.join(map(str, shape))}-{dtype.name}.onnx")


def export_probe(path: str | Path, shape: tuple[int, ...] = (1, 1)) -> Path:
    """The overhead model's ONNX (what the interleaved profile times beside the ops)."""
    import torch

    from ..onnx_export import export_onnx

    return export_onnx(_probe(), [torch.ones(shape)], ["x"], path)


def measure_call_overhead(
    target: Target, cfg: MeasureConfig = MeasureConfig(), input_specs: Mapping[str, Any] | None = None, seed: int = 0
) -> TimingStats:
    """Latency of the overhead model on `target` (default input: float32 of shape (1, 8)): the one
    measurement of a call's fixed cost (the profile's sequential method uses it too)."""
    with tempfile.TemporaryDirectory(prefix="rcai-overhead-") as tmp:
        return prepare_probe(target, tmp, input_specs).measure(cfg, seed)
