"""Every numeric precision rcai knows, in one table: which commands take it and its torch dtype.
Each command's list is a view of this table (`precisions("export")`)."""
from __future__ import annotations

PRECISIONS: dict[str, tuple[str | None, frozenset[str]]] = {
    # name: (torch dtype, where it is taken: export = `rcai export`, table = `rcai profile`'s tables,
    #        torch = the torch targets, train = --train-precision)
    "fp32": ("float32", frozenset({"export", "table", "torch", "train"})),
    "fp16": ("float16", frozenset({"export", "torch"})),
    "bf16": ("bfloat16", frozenset({"torch", "train"})),
    "int8": (None, frozenset({"export", "table"})),  # ONNX Runtime static QDQ, no torch dtype
}


def precisions(use: str) -> tuple[str, ...]:
    """The precisions `use` takes, in the table's order."""
    return tuple(name for name, (_, uses) in PRECISIONS.items() if use in uses)


def torch_dtype_name(precision: str) -> str | None:
    """The torch dtype's name of a precision the torch targets take (None: not one of them)."""
    return PRECISIONS[precision][0] if precision in precisions("torch") else None
