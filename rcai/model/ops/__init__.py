"""Op registry: every building block of the UNet is an op built from an `OpSpec` by name.

Searchable candidates (conv3x3, dwsep3x3, skip, attention ...) and fixed parts (stem, down, up,
merge, film, head, noise_embed) alike, so the profiler can enumerate, build and measure each one
standalone, and the cost table can key it by `spec.key`.
"""
from .registry import OpDef, OpSpec, build_op, get_op, list_ops, register_op
from . import conv, attention, fixed  # noqa: F401  (registration side effects)

__all__ = ["OpDef", "OpSpec", "build_op", "get_op", "list_ops", "register_op"]
