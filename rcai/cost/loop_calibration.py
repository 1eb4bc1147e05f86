"""A cost table fitted to whole sampling loops (`rcai profile --calibrate N`, `rcai profile check`):
the calibration subnets' loops measured (rcai.cost.loops), then the per-kind factors fitted
(rcai.cost.calibration) and stored in the table's meta with the sampler's own per-step terms.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import RcaiError
from ..presets import Preset
from ..space.space import SearchSpace
from ..space.subnet import SubnetSpec
from ..targets import Target
from ..targets.loops import LoopConfig
from .loops import SAMPLER, measure_model_loops, sampler_terms
from .rounds import NET
from .subnets import export_with_weights
from .table import CostTable

def calibration_loops(target: Target, preset: Preset, archs: list[dict[str, str]], workdir: Path, loops: LoopConfig, steps: int,
                      batch: int = 1, precision: str = "fp32") -> dict[str, Any]:
    """The calibration subnets' whole DDIM loops and every sampler's own loop, measured together
    (rcai.cost.loops: the loop `rcai bench` runs, with the one loop measurement)."""
    nets: dict[str, Any] = {}
    for i, arch in enumerate(archs):
        nets[f"{NET}{i:04d}"] = spec = SubnetSpec(preset, arch)
        if precision == "int8":  # ONNX Runtime's quantized graph: the file itself
            from ..targets.quantize import quantize_for_timing

            nets[f"{NET}{i:04d}"] = path = workdir / f"net{i:04d}.onnx"
            export_with_weights(spec, path, batch)
            quantize_for_timing(path, path)
    return measure_model_loops(target, nets, preset, loops, steps, batch, workdir=workdir)


def fit_loop_calibration(table: CostTable, space: SearchSpace, archs: list[dict[str, str]], loops: dict[str, Any], steps: int,
                         model: str = "kinds") -> None:
    """Fit the table to whole loops: per step, (loop - the sampler's own loop) / steps =
    overhead + sum of factor[kind] x table latency (model "kinds"), or overhead + kernel_ms x kernels
    + scale x table latency (model "launch": the kernels per op in the meta, `kernels`); the
    sampler's per-step terms go into the meta (`sampler_ms`), the loop measurement's clock and
    statistic with them (`loop`)."""
    from .calibration import CALIBRATION_MODELS, fit_calibration, fit_launch

    if model not in CALIBRATION_MODELS:
        raise RcaiError(f"unknown cost model {model!r}; known: {', '.join(CALIBRATION_MODELS)}")
    terms = sampler_terms(loops, space.preset, steps)
    ddim = loops[SAMPLER + "ddim"].loop_ms
    nets = [loops[f"{NET}{i:04d}"] for i in range(len(archs))]
    measured = [(m.loop_ms - ddim) / steps for m in nets]
    if model == "launch":
        kernels = table.meta.get("kernels") or {}
        specs = [space.arch_specs(a) for a in archs]
        cal = fit_launch([sum(table.latency(s) for s in sp) for sp in specs], [sum(kernels[s.key] for s in sp) for sp in specs], measured)
    else:
        cal = fit_calibration([kind_sums(table, space, a) for a in archs], measured, prior_overhead_ms=table.overhead_ms)
    cal.target = "loop"
    cal.measured = [{"arch": a, "measured_ms": x, "loop_ms": m.loop_ms, "loop_wall_ms": m.wall.value_ms, "remeasure_pct": m.remeasure_pct}
                    for a, x, m in zip(archs, measured, nets)]
    first = nets[0]
    table.update_meta(calibration=cal.to_dict(), sampler_ms=terms,
                      loop={"steps": steps, "sampler": "ddim", "clock": first.clock, "statistic": first.statistic, "rounds": first.rounds,
                            "loops_per_round": first.loops_per_round, "load_before": first.load_before, "load_after": first.load_after,
                            "cpu_share": first.cpu_share})


def kind_sums(table: CostTable, space: SearchSpace, arch: dict[str, str]) -> dict[str, float]:
    """Sum of the table latencies of the subnet's ops, per op kind (what calibration scales)."""
    out: dict[str, float] = {}
    for spec in space.arch_specs(arch):
        out[spec.op] = out.get(spec.op, 0.0) + table.latency(spec)
    return out
