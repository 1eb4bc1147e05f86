"""What the graph encoder knows about ONNX ops: the op vocabulary, which input slots hold
weights, and a FLOP rule per op (a registry; unknown ops fall back to one FLOP per output element).

Changing anything here changes the encoding: bump `graph.FEATURE_VERSION`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

# Fixed op vocabulary; anything else is encoded in the extra 'other' bucket (index len(OP_VOCAB)).
OP_VOCAB: tuple[str, ...] = (
    "Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum",
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Neg", "Reciprocal", "Abs",
    "Max", "Min", "Where", "Equal", "Less", "Greater", "Not", "And",
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Softplus",
    "Elu", "Selu", "Erf", "Gelu", "Clip", "Sin", "Cos", "Softmax", "LogSoftmax",
    "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    "BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization",
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceL2",
    "Concat", "Split", "Slice", "Gather", "Reshape", "Transpose", "Flatten", "Squeeze",
    "Unsqueeze", "Expand", "Tile", "Pad", "Resize", "Upsample", "DepthToSpace", "SpaceToDepth",
    "Shape", "Cast", "Identity", "Range", "ConstantOfShape", "CumSum", "Dropout",
)
OP_INDEX: dict[str, int] = {op: i for i, op in enumerate(OP_VOCAB)}
N_OPS = len(OP_VOCAB) + 1  # + 'other'

# Input slots that hold weights/attributes-as-tensors rather than activations.
PARAM_SLOTS: dict[str, frozenset[int]] = {
    "Conv": frozenset({1, 2}), "ConvTranspose": frozenset({1, 2}), "Gemm": frozenset({1, 2}),
    "MatMul": frozenset({1}), "PRelu": frozenset({1}),
    "BatchNormalization": frozenset({1, 2, 3, 4}), "InstanceNormalization": frozenset({1, 2}),
    "LayerNormalization": frozenset({1, 2}), "GroupNormalization": frozenset({1, 2}),
}
# Ops whose inputs are symmetric: a graph input there may be an activation or a weight (bias, scale).
AMBIGUOUS_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Where", "Concat", "Sum"})
# Ops that pass a weight through unchanged in meaning (torch exports shared weights via Identity).
PASSTHROUGH_OPS = frozenset({"Identity", "Cast", "Transpose", "Reshape", "Unsqueeze", "Squeeze", "Flatten"})
# Pure data movement: no arithmetic.
MOVEMENT_OPS = frozenset({
    "Concat", "Split", "Slice", "Gather", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze",
    "Expand", "Tile", "Pad", "DepthToSpace", "SpaceToDepth", "Shape", "Cast", "Identity", "Dropout",
})


def slot_role(op: str, slot: int) -> str:
    """'param', 'data' or 'ambiguous' for input `slot` of an `op` node."""
    if op in PARAM_SLOTS:
        return "param" if slot in PARAM_SLOTS[op] else "data"
    if op in AMBIGUOUS_OPS:
        return "ambiguous"
    return "data" if slot == 0 else "param"  # shape/scale/pad tensors of other ops


@dataclass(frozen=True)
class OpInfo:
    """What a FLOP rule sees of one node: shapes (symbolic dims already resolved) and attributes."""

    op: str
    in_shapes: tuple[tuple[int, ...] | None, ...]  # every input, weights included
    out_shapes: tuple[tuple[int, ...] | None, ...]
    kernel: tuple[int, ...]
    group: int


def numel(shape: tuple[int, ...] | None) -> int:
    return math.prod(shape) if shape is not None else 0


def _first_out(i: OpInfo) -> int:
    return numel(i.out_shapes[0]) if i.out_shapes else 0


def _conv(i: OpInfo) -> float:
    w = i.in_shapes[1] if len(i.in_shapes) > 1 else None
    if w is None:
        return float(_first_out(i))
    return 2.0 * _first_out(i) * numel(w[1:])  # out elements x (C_in/groups x kernel) MACs


def _conv_transpose(i: OpInfo) -> float:
    w = i.in_shapes[1] if len(i.in_shapes) > 1 else None
    if w is None or i.in_shapes[0] is None:
        return float(_first_out(i))
    return 2.0 * numel(i.in_shapes[0]) * numel(w[1:])  # every input element scatters C_out/g x kernel


def _matmul(i: OpInfo) -> float:
    a = i.in_shapes[0]
    k = a[-1] if a else 1
    return 2.0 * _first_out(i) * k


def _gemm(i: OpInfo) -> float:
    a, out = i.in_shapes[0], i.out_shapes[0] if i.out_shapes else None
    if a is None or not out or out[0] == 0:
        return float(_first_out(i))
    return 2.0 * numel(out) * (numel(a) // out[0])  # A is M x K (or K x M): K = |A| / M


def _pool(i: OpInfo) -> float:
    return float(_first_out(i) * max(1, math.prod(i.kernel)))


def _global(i: OpInfo) -> float:
    return float(numel(i.in_shapes[0]) if i.in_shapes else 0)


def _scaled(k: float) -> Callable[[OpInfo], float]:
    return lambda i: k * _first_out(i)


FLOP_RULES: dict[str, Callable[[OpInfo], float]] = {
    "Conv": _conv, "ConvTranspose": _conv_transpose, "MatMul": _matmul, "Gemm": _gemm,
    "MaxPool": _pool, "AveragePool": _pool, "GlobalAveragePool": _global, "GlobalMaxPool": _global,
    "ReduceMean": _global, "ReduceSum": _global, "ReduceMax": _global, "ReduceL2": _global,
    "Softmax": _scaled(5), "LogSoftmax": _scaled(5), "BatchNormalization": _scaled(2),
    "InstanceNormalization": _scaled(5), "LayerNormalization": _scaled(5),
    "GroupNormalization": _scaled(5), "Resize": _scaled(4), "Upsample": _scaled(4),
    "Gelu": _scaled(8), "Erf": _scaled(8), "Sigmoid": _scaled(4), "Tanh": _scaled(4),
    "HardSwish": _scaled(3), "Softplus": _scaled(3), "Exp": _scaled(4), "Log": _scaled(4),
}


def flops(i: OpInfo) -> float:
    """Arithmetic work of one node (multiply-add = 2); movement ops do none."""
    if i.op in MOVEMENT_OPS:
        return 0.0
    return float(FLOP_RULES.get(i.op, _first_out)(i))
