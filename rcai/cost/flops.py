"""FLOPs of an op as the report counts them (DeepSpeed's profiler), cross-checked against the
analytic counts of `counters.op_counts` (torch's FlopCounterMode)."""
from __future__ import annotations

from typing import Any

import torch

from ..model.ops import OpSpec, build_op
from ..model.ops.registry import example_inputs
from .counters import op_counts

FLOPS_TOLERANCE = 0.01  # DeepSpeed vs torch disagreement flagged above 1%


def deepspeed_counts(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[float, float]:
    """(flops, macs) from DeepSpeed's flops profiler."""
    import contextlib
    import logging
    import sys

    logging.getLogger("DeepSpeed").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(sys.stderr):  # its logger, made at import, would print on stdout (breaking --json)
        from deepspeed.profiling.flops_profiler import get_model_profile

    with torch.no_grad():
        flops, macs, _ = get_model_profile(module, args=list(inputs), print_profile=False, detailed=False, as_string=False)
    return float(flops), float(macs)


def op_count_columns(spec: OpSpec, batch: int) -> dict[str, Any]:
    """A table row's count columns: DeepSpeed FLOPs, torch FLOPs, whether they disagree, params, bytes, peak activations."""
    torch.manual_seed(0)
    module = build_op(spec).eval()
    counts = op_counts(spec, batch)
    ds_flops, ds_macs = deepspeed_counts(module, example_inputs(spec, batch))
    mismatch = abs(2 * ds_macs - counts["flops"]) / max(counts["flops"], 1.0) > FLOPS_TOLERANCE
    return {"flops": ds_flops, "flops_torch": counts["flops"], "flops_mismatch": int(mismatch), "params": counts["params"],
            "bytes": counts["bytes"], "peak_act_bytes": counts["peak_act_bytes"]}
