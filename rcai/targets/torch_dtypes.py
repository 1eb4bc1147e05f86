"""What the torch targets share: their precisions (torch dtypes) and flattening a forward's outputs."""
from __future__ import annotations

from typing import Any

from ..errors import RcaiError

PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def torch_dtype(precision: str, who: str = "torch-cuda") -> Any:
    import torch

    if precision not in PRECISIONS:
        raise RcaiError(f"{who}: unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    return getattr(torch, PRECISIONS[precision])


def flatten_outputs(out: Any) -> list[Any]:
    """The tensors of a module's output (nested tuples, lists and dicts), in order."""
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flatten_outputs(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in flatten_outputs(o)]
    return [out]
