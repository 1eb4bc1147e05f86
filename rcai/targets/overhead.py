"""The fixed cost of one call on a target, measured on a model that does (almost) nothing.

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


def prepare_identity(target: Target, workdir: str | Path, input_specs: Mapping[str, Any] | None = None) -> Prepared:
    """An identity model prepared on `target`: nn.Identity for the torch target, else ONNX."""
    specs = normalize_specs(input_specs or DEFAULT_SPECS, "identity specs")
    if len(specs) != 1:
        raise ValueError("identity model takes exactly one input")
    if not target.takes_onnx:
        from torch import nn

        return target.prepare(nn.Identity(), specs)
    ((shape, dtype),) = specs.values()
    path = identity_onnx(Path(workdir) / f"identity-{'x'.join(map(str, shape))}-{dtype.name}.onnx", shape, dtype.name)
    return target.prepare(path, {"x": (shape, dtype)})


def measure_call_overhead(
    target: Target, cfg: MeasureConfig = MeasureConfig(), input_specs: Mapping[str, Any] | None = None, seed: int = 0
) -> TimingStats:
    """Latency of an identity model on `target` (default input: float32 of shape (1, 8))."""
    with tempfile.TemporaryDirectory(prefix="rcai-identity-") as tmp:
        return prepare_identity(target, tmp, input_specs).measure(cfg, seed)
