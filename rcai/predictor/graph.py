"""ONNX model -> torch_geometric graph for the latency predictor.

Nodes are the ops that run at inference; constants, initializers and weights (also when a model is
exported with `export_params=False` and its weights are graph inputs) are not nodes, nor is anything
computed only from them (folded, as ONNX Runtime does). Edges follow the data flow.
Needs only the graph and shapes (ONNX shape inference); symbolic dimensions count as 1.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, shape_inference
from torch_geometric.data import Data

from ..errors import RcaiError
from . import ops

FEATURE_VERSION = 1

NUMERIC_FEATURES: tuple[str, ...] = (
    "kernel_h", "kernel_w", "stride", "dilation", "groups", "c_in", "c_out", "in_spatial",
    "out_spatial", "batch", "flops", "params", "bytes", "out_numel", "data_inputs", "depthwise",
)
GLOBAL_FEATURES: tuple[str, ...] = ("flops", "params", "bytes", "out_numel", "nodes", "edges")
NODE_DIM = ops.N_OPS + len(NUMERIC_FEATURES)
GLOBAL_DIM = len(GLOBAL_FEATURES)


@dataclass
class _Tensor:
    shape: tuple[int, ...] | None  # None: rank unknown
    itemsize: int = 4
    static: bool = True  # no symbolic/unknown dimension

    @property
    def nbytes(self) -> int:
        return ops.numel(self.shape) * self.itemsize


@dataclass
class _Graph:
    tensors: dict[str, _Tensor] = field(default_factory=dict)
    const: set[str] = field(default_factory=set)


def load_model(model: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    """A ModelProto as is, or a file read without external weight data (only shapes are needed)."""
    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise RcaiError(f"{path}: file not found")
    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises several types for non-ONNX bytes
        raise RcaiError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    if not m.graph.node:
        raise RcaiError(f"{path}: not an ONNX model (no graph nodes)")
    return m


def _tensor_from_type(tp: onnx.TypeProto) -> _Tensor:
    if not tp.HasField("tensor_type"):
        return _Tensor(None)
    tt = tp.tensor_type
    try:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).itemsize
    except Exception:
        itemsize = 4
    if not tt.HasField("shape"):
        return _Tensor(None, itemsize, False)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    return _Tensor(tuple(1 if d is None else d for d in dims), itemsize, None not in dims)


def _collect_tensors(g: onnx.GraphProto) -> _Graph:
    out = _Graph()
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        out.tensors[vi.name] = _tensor_from_type(vi.type)
    for init in g.initializer:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize
        out.tensors[init.name] = _Tensor(tuple(init.dims), itemsize)
        out.const.add(init.name)
    return out


def _uses(g: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    uses: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for n in g.node:
        for slot, name in enumerate(n.input):
            if name:
                uses.setdefault(name, []).append((n, slot))
    return uses


def _roles(name: str, uses: dict, seen: set[str] | None = None) -> set[str]:
    """How tensor `name` is used, following weights through pass-through ops (Identity...)."""
    seen = set() if seen is None else seen
    roles: set[str] = set()
    for node, slot in uses.get(name, []):
        if node.op_type in ops.PASSTHROUGH_OPS and slot == 0:
            for o in node.output:
                if o not in seen:
                    seen.add(o)
                    roles |= _roles(o, uses, seen)
        else:
            roles.add(ops.slot_role(node.op_type, slot))
    return roles


def _weight_inputs(g: onnx.GraphProto, inits: set[str]) -> set[str]:
    """Graph inputs that are weights (export_params=False): used only in weight slots, or only in
    symmetric ops (Add, Mul...) beside an activation derived from a true data input."""
    uses = _uses(g)
    cand = [i.name for i in g.input if i.name not in inits]
    roles = {n: _roles(n, uses) for n in cand}
    data = {n for n in cand if "data" in roles[n]}
    weights = {n for n in cand if roles[n] == {"param"}}
    ambiguous = [n for n in cand if n not in data and n not in weights and roles[n]]
    if not data:  # nothing is surely an activation: the ambiguous inputs are
        return weights
    live = set(data)  # tensors derived from surely-data inputs
    for n in g.node:
        if any(i in live for i in n.input):
            live.update(n.output)
    for name in ambiguous:
        beside_data = all(
            any(o in live for o in node.input if o and o != name)
            for node, slot in uses[name] if node.op_type in ops.AMBIGUOUS_OPS
        )
        if beside_data:
            weights.add(name)
    return weights


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _channels(t: _Tensor | None) -> int:
    if t is None or t.shape is None or len(t.shape) == 0:
        return 1
    s = t.shape
    return s[-1] if len(s) == 3 else (s[1] if len(s) >= 2 else s[0])


def node_features(node: onnx.NodeProto, gr: _Graph, n_data: int) -> tuple[list, float, float, float, int]:
    """Raw numeric features (NUMERIC_FEATURES order) and the node's FLOPs, params, bytes, outputs."""
    t = gr.tensors
    ins = [t.get(i) if i else None for i in node.input]
    outs = [t.get(o) for o in node.output]
    in_shapes = tuple(x.shape if x else None for x in ins)
    out_shapes = tuple(x.shape if x else None for x in outs)
    kernel = tuple(_attr(node, "kernel_shape", ()) or ())
    if not kernel and node.op_type in ("Conv", "ConvTranspose") and len(in_shapes) > 1 and in_shapes[1]:
        kernel = tuple(in_shapes[1][2:])
    group = int(_attr(node, "group", 1))
    info = ops.OpInfo(node.op_type, in_shapes, out_shapes, kernel, group)
    x0 = ins[0] if ins else None
    y0 = outs[0] if outs else None
    c_in, c_out = _channels(x0), _channels(y0)
    n_in, n_out = ops.numel(x0.shape if x0 else None), ops.numel(y0.shape if y0 else None)
    batch_in = x0.shape[0] if x0 and x0.shape and len(x0.shape) >= 2 else 1
    batch = y0.shape[0] if y0 and y0.shape and len(y0.shape) >= 2 else 1
    params = float(sum(ops.numel(x.shape) for i, x in zip(node.input, ins)
                       if x is not None and i in gr.const))
    nbytes = float(sum(x.nbytes for x in ins + outs if x is not None))
    flops = ops.flops(info)
    kh = kernel[0] if kernel else 1
    kw = kernel[-1] if kernel else 1
    strides = _attr(node, "strides", ()) or (1,)
    dil = _attr(node, "dilations", ()) or (1,)
    num = [
        kh, kw, max(strides), max(dil), group, c_in, c_out,
        n_in / max(1, batch_in * c_in), n_out / max(1, batch * c_out), batch,
        flops, params, nbytes, n_out, n_data, float(group > 1 and group == c_in),
    ]
    return num, flops, params, nbytes, n_out


def _toposort(g: onnx.GraphProto) -> list[onnx.NodeProto]:
    produced_by = {o: k for k, n in enumerate(g.node) for o in n.output}
    order, state = [], [0] * len(g.node)
    for start in range(len(g.node)):  # iterative DFS: ONNX files are meant to be sorted already
        stack = [(start, False)]
        while stack:
            k, done = stack.pop()
            if done:
                state[k] = 2
                order.append(g.node[k])
                continue
            if state[k]:
                continue
            state[k] = 1
            stack.append((k, True))
            stack.extend((produced_by[i], False) for i in g.node[k].input
                         if i in produced_by and not state[produced_by[i]])
    return order


def graph_nodes(m: onnx.ModelProto) -> tuple[_Graph, list[onnx.NodeProto]]:
    """Shape-infer `m`; its tensors (constants marked) and the nodes that run, in topological order."""
    try:
        m = shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    except Exception:  # shapes stay unknown where inference fails; the op is still encoded
        pass
    g = m.graph
    gr = _collect_tensors(g)
    gr.const |= _weight_inputs(g, set(gr.const))
    nodes: list[onnx.NodeProto] = []
    for n in _toposort(g):
        static_shape = n.op_type == "Shape" and n.input and gr.tensors.get(n.input[0], _Tensor(None, 4, False)).static
        if n.op_type == "Constant" or static_shape or all(i in gr.const for i in n.input if i):
            gr.const.update(n.output)
            if n.op_type == "Constant":
                v = _attr(n, "value", None)
                if isinstance(v, onnx.TensorProto):
                    gr.tensors[n.output[0]] = _Tensor(tuple(v.dims))
        else:
            nodes.append(n)
    return gr, nodes


def encode_onnx(model: str | os.PathLike | onnx.ModelProto) -> Data:
    """Encode an ONNX model (file or ModelProto) as a graph: x [N, NODE_DIM] (op one-hot + log1p
    numerics), edge_index [2, E] (producer -> consumer, sorted by consumer), g [1, GLOBAL_DIM],
    op [N] (index of the one-hot 1: the same information, kept for fast batching)."""
    gr, nodes = graph_nodes(load_model(model))
    index = {o: k for k, n in enumerate(nodes) for o in n.output if o}
    edges: set[tuple[int, int]] = set()
    feats, op_idx, tot = [], [], np.zeros(4)
    for k, n in enumerate(nodes):
        data_in = [i for i in n.input if i and i not in gr.const]
        f, fl, pa, by, no = node_features(n, gr, len(data_in))
        op_idx.append(ops.OP_INDEX.get(n.op_type, ops.N_OPS - 1))
        feats.append(f)
        tot += (fl, pa, by, no)
        for i in data_in:
            if i in index:
                edges.add((index[i], k))
    num = np.log1p(np.maximum(0.0, np.asarray(feats, dtype=np.float64).reshape(len(nodes), -1)))
    x = np.zeros((len(nodes), NODE_DIM), dtype=np.float32)
    x[np.arange(len(nodes)), op_idx] = 1.0
    x[:, ops.N_OPS :] = num
    x = torch.from_numpy(x)
    # Sorted by consumer, then producer: batches build their sparse adjacency without sorting.
    ei = torch.tensor(sorted(edges, key=lambda e: (e[1], e[0])), dtype=torch.long).reshape(-1, 2).t().contiguous()
    glob = [math.log1p(v) for v in (*tot, len(nodes), len(edges))]
    return Data(x=x, edge_index=ei, g=torch.tensor([glob], dtype=torch.float32),
                op=torch.tensor(op_idx, dtype=torch.long), num_nodes=len(nodes))
