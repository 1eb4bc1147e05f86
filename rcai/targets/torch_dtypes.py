"""What the torch targets share: their precisions (torch dtypes) and flattening a forward's outputs."""
from __future__ import annotations

from typing import Any

from ..errors import RcaiError
from ..precisions import precisions, torch_dtype_name


def torch_dtype(precision: str, who: str = "torch-cuda") -> Any:
    import torch

    if precision not in precisions("torch"):
        raise RcaiError(f"{who}: unknown precision {precision!r}; known: {', '.join(precisions('torch'))}")
    return getattr(torch, torch_dtype_name(precision))


def flatten_outputs(out: Any) -> list[Any]:
    """The tensors of a module's output (nested tuples, lists and dicts), in order."""
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flatten_outputs(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in flatten_outputs(o)]
    return [out]
