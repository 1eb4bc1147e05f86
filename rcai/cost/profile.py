"""`rcai profile`: measure every distinct op of a preset's supernet on a target into a cost table
(the rounds engine: rcai/cost/rounds.py; the fit to whole loops: loop_calibration.py; FLOPs: flops.py).

The op list is read off the supernet (SearchSpace.all_specs), never hand-written. Each op is built
standalone and exported to ONNX; FLOPs come from DeepSpeed's profiler (as in the report),
cross-checked against torch's FlopCounterMode.

Two methods (PROFILE_METHODS):
- interleaved (default): every op, a reference kernel, the empty model (per-call overhead) and the
  calibration subnets (--calibrate N) are timed in many short rounds, each round visiting all of
  them in a new random order with a short burst of calls; an op's latency is a low percentile of
  all its calls (InterleaveConfig.estimator). A slow phase of a shared machine then hits every op
  alike instead of a few ops whole; the reference kernel's per-round speed reports the run's drift
  (and corrects it with correct_drift). Every finished round is appended to `<table>.rounds.csv`,
  so a killed run restarted with the same arguments continues from the next round.
- sequential (remote and torch targets, and for comparison): one op to completion after the
  other (median of a converging loop); rows are appended as measured.
"""
from __future__ import annotations

import datetime as _dt
import socket
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import __version__
from ..errors import RcaiError
from ..io import refuse_special
from ..lock import exclusive
from ..model.ops import OpSpec, build_op
from ..model.ops.registry import example_inputs
from ..onnx_export import export_onnx
from ..progress import progress_bar
from ..presets import Preset, get_preset
from ..space.space import SearchSpace
from ..targets import MeasureConfig, Target, TargetSpec, resolve_device
from ..targets.measure import pinned, resolve_clock
from ..targets.overhead import export_probe, measure_call_overhead
from ..targets.loops import LoopConfig
from ..targets.sysinfo import load_average
from .calibration import CALIBRATION_MODELS
from .flops import op_count_columns
from .loop_calibration import calibration_loops, fit_loop_calibration
from .loops import LOOP_STEPS
from .rounds import OVERHEAD, REFERENCE, InterleaveConfig, call_stats, corrected, drift_summary, measure_interleaved
from .subnets import sample_archs
from .table import CostTable, spec_columns

# Isolated ops are fast (tens of microseconds): afford many repeats for a stable median.
OP_MEASURE = MeasureConfig(warmup=10, min_repeats=50, max_repeats=2000, chunk=25, rel_tol=0.01, max_seconds=3.0)
# Whole subnets (a few ms): fewer repeats per round, several interleaved rounds.
NET_MEASURE = MeasureConfig(warmup=5, min_repeats=20, max_repeats=300, chunk=10, rel_tol=0.02, max_seconds=3.0)


LATENCY_COLUMN = {"p10": "p10_ms", "median": "median_ms"}  # table estimators and the column they fill


@dataclass(frozen=True)
class ProfileConfig:
    preset: str = "tiny"
    target: TargetSpec = field(default_factory=TargetSpec)  # device, host, threads, batch: parsed once where the target is named
    measure: MeasureConfig = field(default_factory=MeasureConfig)  # the sequential method's loop
    method: str = "interleaved"  # see PROFILE_METHODS
    interleave: InterleaveConfig = field(default_factory=InterleaveConfig)
    calibrate: int = 0  # whole subnets whose sampling loops calibrate the table in the same run (<= 10)
    calibrate_seed: int = 1000
    calibrate_loops: LoopConfig = field(default_factory=LoopConfig)  # how their loops (and the sampler's) are measured
    loop_steps: int = LOOP_STEPS  # DDIM steps of the calibration loops
    precision: str = "fp32"  # fp32 | int8 (each op and calibration subnet quantized as in a whole INT8 network: targets/quantize.py)
    cost_model: str = "auto"  # how --calibrate fits the loops: kinds | launch (kernels per op, a per-kernel floor) | auto (launch on a CUDA target)

    def __post_init__(self) -> None:
        from ..targets.quantize import check_precision

        check_precision(self.precision)
        if not 0 <= self.calibrate <= 10:
            raise RcaiError(f"--calibrate takes 0 to 10 subnets (got {self.calibrate})")
        if self.cost_model not in ("auto",) + CALIBRATION_MODELS:
            raise RcaiError(f"--cost-model: unknown {self.cost_model!r}; known: auto, {', '.join(CALIBRATION_MODELS)}")


def cost_model_of(cfg: ProfileConfig, target: Target) -> str:
    """The calibration model: the configured one, or for auto "launch" on a CUDA device (a launch-bound
    step: rcai/cost/kernels.py), else "kinds"."""
    if cfg.cost_model != "auto":
        return cfg.cost_model
    return "launch" if getattr(getattr(target, "device", None), "type", "") == "cuda" else "kinds"


def calibrate_on_loops(cfg: ProfileConfig, table: CostTable, target: Target, workdir: Path, archs: list[dict[str, str]] | None = None,
                       loops: dict[str, Any] | None = None) -> None:
    """Fit `table` to the whole loops of cfg.calibrate subnets (measured here unless `loops` is given),
    by the cost model of cost_model_of (launch: each op's kernels counted first, into the meta)."""
    preset = get_preset(cfg.preset)
    space = SearchSpace.of(preset)
    archs = archs if archs is not None else sample_archs(space, cfg.calibrate, cfg.calibrate_seed, "skewed")
    model = cost_model_of(cfg, target)
    if model == "launch" and "kernels" not in table.meta:
        from .kernels import op_kernels

        kernels, counter = op_kernels(space.all_specs(), cfg.target.batch, getattr(target, "device", None) or "cpu", getattr(target, "dtype", None))
        table.update_meta(kernels=kernels, kernel_counter=counter)
    if loops is None:
        loops = calibration_loops(target, preset, archs, workdir, cfg.calibrate_loops, cfg.loop_steps, cfg.target.batch, cfg.precision)
    fit_loop_calibration(table, space, archs, loops, cfg.loop_steps, model)


def default_table_path(device: str, preset: str, precision: str = "fp32") -> Path:
    return Path("latency_tables") / f"{device}-{preset}{'' if precision == 'fp32' else '-' + precision}.csv"


def table_meta(cfg: ProfileConfig, preset: Preset, target: Target) -> dict[str, Any]:
    info = target.info().to_dict()
    return {
        **info,
        "device_name": cfg.target.device,
        "batch": cfg.target.batch,
        "precision": info.get("precision", "fp32") if cfg.precision == "fp32" else cfg.precision,
        "host": socket.gethostname(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "rcai_version": __version__,
        "preset": preset.name,
        "preset_hash": preset.hash,
        "arch_hash": preset.arch_hash,
        "measure": cfg.measure.to_dict(),
        "target_settings": target.settings(),
        "host_facts": target.host_facts(),
    }


def measure_overhead(target: Target, cfg: MeasureConfig) -> float:
    return measure_call_overhead(target, cfg, {"x": ((1, 1), "float32")}).median_ms


def profile_op(spec: OpSpec, target: Target, batch: int, measure: MeasureConfig, workdir: Path) -> dict[str, Any]:
    torch.manual_seed(0)
    module = build_op(spec).eval()
    inputs = example_inputs(spec, batch)
    names = list(spec.input_shapes(batch))
    stats = target.prepare_module(module, inputs, names, workdir / f"{spec.key}.onnx").measure(measure)
    return {**spec_columns(spec), "median_ms": stats.median_ms, "p10_ms": stats.p10_ms, "p90_ms": stats.p90_ms, "cv": stats.cv,
            "count": stats.count, **op_count_columns(spec, batch)}


def export_op(spec: OpSpec, batch: int, workdir: Path) -> Path:
    torch.manual_seed(0)
    return export_onnx(build_op(spec).eval(), example_inputs(spec, batch), list(spec.input_shapes(batch)), workdir / f"{spec.key}.onnx")


def profile_ops_sequential(cfg: ProfileConfig, out: str | Path, progress: bool = True) -> CostTable:
    """Each op measured to completion, one after the other (remote and torch targets; kept for comparison)."""
    if cfg.precision != "fp32":
        raise RcaiError(f"--precision {cfg.precision}: only the interleaved method on the cpu (onnxruntime) target, not sequential/remote/torch")
    preset = get_preset(cfg.preset)
    target = resolve_device(cfg.target)
    specs = SearchSpace.of(preset).all_specs()
    table = CostTable.create(out, table_meta(cfg, preset, target))
    with tempfile.TemporaryDirectory(prefix="rcai-profile-") as tmp:
        workdir = Path(tmp)
        if "overhead_ms" not in table.meta:
            table.update_meta(overhead_ms=measure_overhead(target, cfg.measure))
        todo = [s for s in specs if s.key not in table.rows]
        with progress_bar(progress, "profiling ops", len(specs), len(specs) - len(todo), transient=False) as advance:
            for spec in todo:
                table.append(profile_op(spec, target, cfg.target.batch, cfg.measure, workdir))
                advance(spec.key)
        if cfg.calibrate and "calibration" not in table.meta:  # the same fit to whole loops as the interleaved method's
            calibrate_on_loops(cfg, table, target, workdir)
    return table


def profile_ops_interleaved(cfg: ProfileConfig, out: str | Path, progress: bool = True) -> CostTable:

    icfg = cfg.interleave
    if icfg.estimator not in LATENCY_COLUMN:
        raise RcaiError(f"a table's estimator must be one of {', '.join(LATENCY_COLUMN)} (got {icfg.estimator!r})")
    preset = get_preset(cfg.preset)
    target = resolve_device(cfg.target)
    if cfg.target.host or not target.takes_onnx:  # a remote call or a torch module: timed one op after the other
        return profile_ops_sequential(replace(cfg, method="sequential"), out, progress)
    space = SearchSpace.of(preset)
    specs = space.all_specs()
    meta = {**{k: v for k, v in table_meta(cfg, preset, target).items() if k != "measure"}, "method": "interleaved", "interleave": icfg.to_dict(),
            "latency_column": LATENCY_COLUMN[icfg.estimator], "calibrate": cfg.calibrate, "clock": resolve_clock(icfg.clock, target)}
    if cfg.precision == "int8":
        from ..targets.quantize import QuantConfig

        if not target.int8:
            raise RcaiError(f"--precision int8: only the cpu (onnxruntime) target quantizes, not {target.name}")
        meta["quantization"] = {**QuantConfig().to_dict(), "calibration": "random inputs (timing only: the quantized graph does not depend on the ranges)"}
    table = CostTable.create(out, meta)
    for k, default in (("method", "sequential"), ("clock", "wall"), ("calibrate", 0), ("latency_column", "median_ms")):
        if table.meta.get(k, default) != meta[k]:
            raise RcaiError(f"{out}: exists with {k}={table.meta.get(k, default)!r}, this run has {meta[k]!r}; use another --out")
    if not table.missing(specs) and (cfg.calibrate == 0 or "calibration" in table.meta):
        return table
    raw_path = Path(out).with_name(Path(out).name.removesuffix(".csv") + ".rounds.csv")
    archs = sample_archs(space, cfg.calibrate, cfg.calibrate_seed, "skewed") if cfg.calibrate else []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rcai-profile-") as tmp, pinned(target.settings().get("threads"), icfg.pin) as pin:
        workdir = Path(tmp)
        models = {s.key: export_op(s, cfg.target.batch, workdir) for s in specs}
        if cfg.precision == "int8":  # every op as it runs in a whole INT8 network (Conv quantized but stem/head, the rest fp32)
            from ..targets.quantize import QuantConfig, quantize_for_timing

            models = {s.key: models[s.key] if QuantConfig().keeps_fp32(s.op) else quantize_for_timing(models[s.key]) for s in specs}
        models[OVERHEAD] = export_probe(workdir / "overhead.onnx")
        with progress_bar(progress, "profiling ops (interleaved rounds)", icfg.rounds, transient=False) as advance:
            calls = measure_interleaved(target, models, icfg, raw_path, advance)
        loops = calibration_loops(target, preset, archs, workdir, cfg.calibrate_loops, cfg.loop_steps, cfg.target.batch, cfg.precision) if archs else {}
    calls, factors = corrected(calls, icfg)
    stats = {n: call_stats(c, icfg.estimator) for n, c in calls.items()}
    overhead = stats[OVERHEAD]["value_ms"]
    table.update_meta(overhead_ms=overhead)
    for spec in specs:
        if spec.key not in table.rows:
            st = stats[spec.key]
            table.append({**spec_columns(spec), **{k: st[k] for k in ("median_ms", "p10_ms", "p90_ms", "cv", "count")},
                          **op_count_columns(spec, cfg.target.batch)})
    splits = sorted(stats[s.key]["half_split"] for s in specs)
    table.update_meta(
        drift=drift_summary(factors), drift_corrected=icfg.correct_drift, pinned_cpus=pin.cpus, load_average=load_average(),
        half_split={s.key: round(stats[s.key]["half_split"], 4) for s in specs},
        half_split_summary={"median": float(np.median(splits)), "max": float(splits[-1]),
                            "within_10pct": float(np.mean(np.asarray(splits) <= 0.10))},
        reference_ms=stats[REFERENCE]["value_ms"], measure_seconds=round(time.perf_counter() - t0, 1), interleave=icfg.to_dict(),
    )
    if archs:
        calibrate_on_loops(cfg, table, target, Path("."), archs, loops)
    return table


PROFILE_METHODS: dict[str, Callable[[ProfileConfig, str | Path, bool], CostTable]] = {
    "interleaved": profile_ops_interleaved,
    "sequential": profile_ops_sequential,
}


def profile_ops(cfg: ProfileConfig, out: str | Path, progress: bool = True) -> CostTable:
    if cfg.method not in PROFILE_METHODS:
        raise RcaiError(f"unknown profiling method {cfg.method!r}; known: {', '.join(PROFILE_METHODS)}")
    refuse_special(Path(out))  # before its lock file: never a /dev/full.lock
    with exclusive(out):  # one writer per table
        return PROFILE_METHODS[cfg.method](cfg, out, progress)
