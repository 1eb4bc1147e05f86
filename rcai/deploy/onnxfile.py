"""Reading a deployed ONNX file: refuse what is not ONNX, and check its inputs against the sidecar."""
from __future__ import annotations

from pathlib import Path

import onnx

from ..errors import RcaiError
from .sidecar import BATCH, TensorSpec


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """The model in `path` (weights included), or a one-line RcaiError for a missing or non-ONNX file."""
    path = Path(path)
    if not path.is_file():
        raise RcaiError(f"{path}: file not found")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf DecodeError, bad external data, ...
        raise RcaiError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    # protobuf parses many byte strings "successfully" into an empty message: require a real graph.
    if model.ir_version <= 0 or not model.graph.node or not model.graph.output:
        raise RcaiError(f"{path}: not an ONNX model (no graph)")
    return model


def graph_io(model: onnx.ModelProto, which: str = "inputs") -> tuple[TensorSpec, ...]:
    """Graph inputs (initializers excluded) or outputs as TensorSpecs; symbolic dims become "batch"."""
    inits = {i.name for i in model.graph.initializer}
    values = model.graph.input if which == "inputs" else model.graph.output
    out = []
    for v in values:
        if v.name in inits:
            continue
        t = v.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else BATCH for d in t.shape.dim)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "?"
        out.append(TensorSpec(v.name, shape, dtype))
    return tuple(out)


def peak_activation_bytes(model: onnx.ModelProto, batch: int = 1) -> int:
    """The most bytes of tensors alive at once (initializers aside) when the graph runs its nodes in
    order at `batch`, by ONNX shape inference: a lower bound of what a runtime needs beyond the weights
    (unknown shapes count 0)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    sizes: dict[str, int] = {}
    for v in [*g.input, *g.value_info, *g.output]:
        t = v.type.tensor_type
        if not t.elem_type:
            continue
        n = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).itemsize
        for d in t.shape.dim:
            n *= d.dim_value if d.HasField("dim_value") else batch
        sizes[v.name] = n
    inits = {i.name for i in g.initializer}
    last = {name: i for i, node in enumerate(g.node) for name in node.input}
    outputs = {o.name for o in g.output}
    live = {v.name for v in g.input if v.name not in inits}
    peak = cur = sum(sizes.get(x, 0) for x in live)
    for i, node in enumerate(g.node):
        for y in node.output:
            if y and y not in live:
                live.add(y)
                cur += sizes.get(y, 0)
        peak = max(peak, cur)
        for x in set(node.input) | set(node.output):
            if x in live and last.get(x, -1) <= i and x not in outputs:
                live.discard(x)
                cur -= sizes.get(x, 0)
    return peak


def _fits(got: TensorSpec, want: TensorSpec) -> bool:
    if got.dtype != want.dtype or len(got.shape) != len(want.shape):
        return False
    # a dynamic batch dim fits anything in the batch position; fixed dims must be equal
    return all(w == BATCH or g == BATCH or g == w for g, w in zip(got.shape, want.shape))


def _fmt(specs: tuple[TensorSpec, ...]) -> str:
    return ", ".join(f"{t.name}[{','.join(map(str, t.shape))}]:{t.dtype}" for t in specs)


def check_io(model: onnx.ModelProto, want: tuple[TensorSpec, ...], path: str | Path, against: str) -> tuple[TensorSpec, ...]:
    """The model's inputs, if they match `want` by name, rank, fixed dims and dtype; else RcaiError."""
    got = graph_io(model, "inputs")
    by_name = {t.name: t for t in got}
    ok = len(got) == len(want) and all(w.name in by_name and _fits(by_name[w.name], w) for w in want)
    if not ok:
        raise RcaiError(f"{path}: model inputs {_fmt(got)} do not match {against} ({_fmt(want)})")
    return got
