"""Input specs (name -> (shape, dtype)) and the pool of random inputs a measurement cycles through."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import RcaiError

Shape = tuple[int, ...]
Specs = dict[str, tuple[Shape, np.dtype]]

_PRECISION = {"float32": "fp32", "float16": "fp16", "float64": "fp64", "bfloat16": "bf16", "int8": "int8"}


def normalize_specs(specs: Mapping[str, Any], where: str = "input_specs") -> Specs:
    """Accept {name: (shape, dtype)} or {name: {"shape": [...], "dtype": "float32"}} (the JSON form)."""
    if not specs:
        raise RcaiError(f"{where}: no inputs given")
    out: Specs = {}
    for name, spec in specs.items():
        if isinstance(spec, Mapping):
            spec = (spec.get("shape"), spec.get("dtype", "float32"))
        try:
            shape, dtype = spec
            shape = tuple(int(d) for d in shape)
            dtype = np.dtype(dtype)
        except (TypeError, ValueError) as e:
            raise RcaiError(f"{where}: input {name!r} must be (shape, dtype), got {spec!r} ({e})") from None
        if any(d <= 0 for d in shape):
            raise RcaiError(f"{where}: input {name!r} has a non-positive dimension in {shape}")
        out[str(name)] = (shape, dtype)
    return out


def specs_to_json(specs: Specs) -> dict[str, dict[str, Any]]:
    return {n: {"shape": list(s), "dtype": d.name} for n, (s, d) in specs.items()}


def specs_from_onnx(path: str | Path) -> Specs:
    """Input specs read from an ONNX file; every dimension must be fixed (no symbolic batch)."""
    import onnx


    model = onnx.load(str(onnx_path(path)), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    specs: Specs = {}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        t = inp.type.tensor_type
        dims = [d.dim_value for d in t.shape.dim]
        if any(d <= 0 for d in dims):
            raise RcaiError(f"{path}: input {inp.name!r} has a dynamic dimension; pass input_specs")
        specs[inp.name] = (tuple(dims), np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)))
    return specs


def precision_of(dtype: np.dtype | str) -> str:
    """'fp32', 'fp16', ... for a floating dtype; the dtype name otherwise."""
    name = np.dtype(dtype).name
    return _PRECISION.get(name, name)


def model_precision(specs: Specs) -> str:
    """Precision of a model = that of its first floating input (fp32 if it has none)."""
    for _, dtype in specs.values():
        if np.issubdtype(dtype, np.floating):
            return precision_of(dtype)
    return "fp32"


def random_feeds(specs: Specs, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One input set: floats ~ N(0, 1), integers in [1, 16), booleans with at least one True.
    Never all zeros: zeros can take fast paths (denormals, sparse kernels) and flatter timings."""
    feeds = {}
    for name, (shape, dtype) in specs.items():
        if np.issubdtype(dtype, np.floating):
            a = rng.standard_normal(shape, dtype=np.float32).astype(dtype)
        elif np.issubdtype(dtype, np.integer):
            a = rng.integers(1, 16, size=shape).astype(dtype)
        elif dtype == np.bool_:
            a = rng.random(shape) < 0.5
            a.flat[0] = True
        else:
            raise RcaiError(f"input {name!r}: cannot generate random data of dtype {dtype}")
        if a.size and not np.any(a):  # practically impossible for floats; keeps the promise exact
            a.flat[0] = 1
        feeds[name] = np.ascontiguousarray(a)
    return feeds


def make_input_pool(specs: Specs, n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """`n` independent random input sets, generated up front (outside any timed region)."""
    rng = np.random.default_rng(seed)
    return [random_feeds(specs, rng) for _ in range(max(1, n))]


def check_feeds(specs: Specs, feeds: Mapping[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """Feeds as contiguous arrays of the declared dtype; names and shapes must match the specs."""
    if set(feeds) != set(specs):
        raise RcaiError(f"{where}: feeds {sorted(feeds)} do not match inputs {sorted(specs)}")
    out = {}
    for name, (shape, dtype) in specs.items():
        a = np.asarray(feeds[name])
        if a.shape != shape:
            raise RcaiError(f"{where}: input {name!r} has shape {a.shape}, expected {shape}")
        out[name] = np.ascontiguousarray(a, dtype=dtype)
    return out


def onnx_path(model: Any) -> Path:
    """`model` as an existing ONNX file path, or RcaiError."""
    if not isinstance(model, (str, Path)):
        raise RcaiError(f"expected a path to an ONNX file, got {type(model).__name__}")
    path = Path(model)
    if not path.is_file():
        raise RcaiError(f"{path}: file not found")
    return path
