"""fp32 -> fp16 ONNX conversion with fp32 inputs/outputs kept (Cast nodes at the graph edges).

Uses onnxconverter-common's `float16.convert_float_to_float16` if that package is installed, else
the copy of the same converter that ships inside the onnxruntime wheel
(`onnxruntime.transformers.float16`): no extra dependency is needed."""
from __future__ import annotations

import importlib

import onnx

from ..errors import RcaiError

CONVERTERS = ("onnxconverter_common.float16", "onnxruntime.transformers.float16")


def to_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """(fp16 model with fp32 I/O, name of the converter module used)."""
    for name in CONVERTERS:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        converted = mod.convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
        toposort(converted.graph)  # the converter appends the I/O Cast nodes at the end
        return converted, f"{name}.convert_float_to_float16(keep_io_types=True)"
    raise RcaiError(f"--fp16: no fp16 converter available (tried {', '.join(CONVERTERS)})")


def toposort(graph: onnx.GraphProto) -> None:
    """Reorder graph.node in place so every node comes after the producers of its inputs
    (stable: nodes keep their order where the dependencies allow)."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise RcaiError(f"--fp16: the converted graph has a cycle or a dangling input ({rest[0].op_type} {rest[0].name!r})")
        pending = rest
    copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in ordered]
    del graph.node[:]
    graph.node.extend(copies)
