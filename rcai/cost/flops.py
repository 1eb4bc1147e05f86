"""FLOPs of an op as the report counts them (DeepSpeed's profiler), cross-checked against the
analytic counts of `counters.op_counts` (torch's FlopCounterMode). DeepSpeed is optional at run
time: where it does not import, a note says so once and torch's count fills the column."""
from __future__ import annotations

import functools
from typing import Any

import torch

from ..model.ops import OpSpec, build_op
from ..model.ops.registry import example_inputs
from .counters import op_counts

FLOPS_TOLERANCE = 0.01  # DeepSpeed vs torch disagreement flagged above 1%


def deepspeed_counts(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[float, float] | None:
    """(flops, macs) from DeepSpeed's flops profiler; None where deepspeed is not importable (an
    optional cross-check: torch's counter stays)."""
    import contextlib
    import logging
    import sys

    logging.getLogger("DeepSpeed").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # its logger, made at import, would print on stdout (breaking --json)
            from deepspeed.profiling.flops_profiler import get_model_profile
    except ImportError:
        _note_absent()
        return None
    with torch.no_grad():
        flops, macs, _ = get_model_profile(module, args=list(inputs), print_profile=False, detailed=False, as_string=False)
    return float(flops), float(macs)


@functools.lru_cache(maxsize=1)
def _note_absent() -> None:
    """Said once per process, on stderr."""
    import sys

    print("note: deepspeed is not importable here; FLOPs come from torch's counter alone (no cross-check)", file=sys.stderr)


def op_count_columns(spec: OpSpec, batch: int) -> dict[str, Any]:
    """A table row's count columns: FLOPs (DeepSpeed's where it imports, else torch's), torch FLOPs,
    whether they disagree (-1: not cross-checked), params, bytes, peak activations."""
    torch.manual_seed(0)
    module = build_op(spec).eval()
    counts = op_counts(spec, batch)
    ds = deepspeed_counts(module, example_inputs(spec, batch))
    if ds is None:
        flops, mismatch = counts["flops"], -1
    else:
        flops, mismatch = ds[0], int(abs(2 * ds[1] - counts["flops"]) / max(counts["flops"], 1.0) > FLOPS_TOLERANCE)
    return {"flops": flops, "flops_torch": counts["flops"], "flops_mismatch": mismatch, "params": counts["params"],
            "bytes": counts["bytes"], "peak_act_bytes": counts["peak_act_bytes"]}
