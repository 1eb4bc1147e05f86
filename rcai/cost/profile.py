"""`rcai profile`: measure every distinct op of a preset's supernet on a target into a cost table.

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

import csv
import datetime as _dt
import io
import socket
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import __version__
from ..config import JsonConfig
from ..errors import RcaiError
from ..io import append_line, atomic_write_text, refuse_special
from ..lock import exclusive
from ..model.ops import OpSpec, build_op
from ..model.ops.registry import example_inputs
from ..onnx_export import export_onnx
from ..progress import progress_bar
from ..presets import Preset, get_preset
from ..space.space import SearchSpace
from ..space.subnet import SubnetSpec
from ..targets import MeasureConfig, Target, resolve_device
from ..targets.measure import CLOCKS, ESTIMATORS, call_timer, resolve_clock, drift, estimate, half_split, interleave, pinned
from ..targets.loops import LoopConfig
from ..targets.sysinfo import load_average
from .flops import op_count_columns
from .loops import LOOP_STEPS, SAMPLER, measure_model_loops, sampler_terms
from .subnets import export_with_weights, sample_archs
from .table import CostTable, spec_columns

# Isolated ops are fast (tens of microseconds): afford many repeats for a stable median.
OP_MEASURE = MeasureConfig(warmup=10, min_repeats=50, max_repeats=2000, chunk=25, rel_tol=0.01, max_seconds=3.0)
# Whole subnets (a few ms): fewer repeats per round, several interleaved rounds.
NET_MEASURE = MeasureConfig(warmup=5, min_repeats=20, max_repeats=300, chunk=10, rel_tol=0.02, max_seconds=3.0)


REFERENCE = "__reference__"  # the kernel timed in every round: the machine's speed per round
OVERHEAD = "__overhead__"  # the empty model: per-call overhead
NET = "net:"  # prefix of whole subnets timed in the same rounds (calibration, checks)
LATENCY_COLUMN = {"p10": "p10_ms", "median": "median_ms"}  # table estimators and the column they fill


@dataclass(frozen=True)
class InterleaveConfig(JsonConfig):
    """Many short interleaved rounds (see the module doc). rounds x burst timed calls per op,
    rounds x net_burst per whole subnet; `warmup` untimed calls per item before the first round and
    `visit_warmup` before every burst. estimator: p10 | median (tables), also min | trimmed_low for
    datasets. correct_drift divides each round's calls by the reference kernel's speed that round.
    pin: pin the process to `threads` CPUs where the OS allows (os.sched_setaffinity).
    clock: auto | wall | thread_cpu (targets/measure.py resolve_clock: auto = the calling thread's
    CPU time for ONNX Runtime with one thread, which a neighbour's preemption does not inflate)."""

    rounds: int = 16
    burst: int = 16
    net_burst: int = 6
    warmup: int = 3
    visit_warmup: int = 1
    estimator: str = "p10"
    correct_drift: bool = False
    pin: bool = True
    input_pool: int = 4
    seed: int = 0
    clock: str = "auto"

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.burst < 1 or self.net_burst < 1 or self.warmup < 0 or self.visit_warmup < 0:
            raise RcaiError("interleave config: rounds, burst and net_burst must be >= 1, warm-ups >= 0")
        if self.estimator not in ESTIMATORS:
            raise RcaiError(f"unknown estimator {self.estimator!r}; known: {', '.join(ESTIMATORS)}")
        if self.clock not in CLOCKS:
            raise RcaiError(f"unknown clock {self.clock!r}; known: {', '.join(CLOCKS)}")


@dataclass(frozen=True)
class ProfileConfig:
    preset: str = "tiny"
    device: str = "cpu"
    threads: int | None = None
    batch: int = 1
    measure: MeasureConfig = field(default_factory=MeasureConfig)  # the sequential method's loop
    method: str = "interleaved"  # see PROFILE_METHODS
    interleave: InterleaveConfig = field(default_factory=InterleaveConfig)
    calibrate: int = 0  # whole subnets whose sampling loops calibrate the table in the same run (<= 10)
    calibrate_seed: int = 1000
    calibrate_loops: LoopConfig = field(default_factory=LoopConfig)  # how their loops (and the sampler's) are measured
    loop_steps: int = LOOP_STEPS  # DDIM steps of the calibration loops
    host: str | None = None  # [user@]addr[:port]: measure there over ssh (sequential method)
    precision: str = "fp32"  # fp32 | int8 (each op and calibration subnet quantized as in a whole INT8 network: targets/quantize.py)

    def __post_init__(self) -> None:
        from ..targets.quantize import check_precision

        check_precision(self.precision)
        if self.threads is not None and self.threads < 1:
            raise RcaiError(f"--threads must be >= 1 (or left out for all cores), got {self.threads}")
        if self.batch < 1:
            raise RcaiError(f"--batch must be >= 1, got {self.batch}")

    def target(self) -> Target:
        settings = {"threads": self.threads} if self.threads else {}
        return resolve_device(self.device, host=self.host, **settings)


def default_table_path(device: str, preset: str, precision: str = "fp32") -> Path:
    return Path("latency_tables") / f"{device}-{preset}{'' if precision == 'fp32' else '-' + precision}.csv"


def table_meta(cfg: ProfileConfig, preset: Preset, target: Target) -> dict[str, Any]:
    info = target.info().to_dict()
    return {
        **info,
        "device_name": cfg.device,
        "batch": cfg.batch,
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


class _Overhead(torch.nn.Module):
    """The smallest model: one multiply on one number. Its latency is the per-call overhead."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0


class _Reference(torch.nn.Module):
    """The reference kernel: a fixed 3x3 convolution (32 channels, 32x32), about 0.1-0.3 ms on a CPU
    core; its speed in each round tells a slow phase of the machine from a slow op."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(32, 32, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def export_reference(workdir: Path) -> Path:
    return export_onnx(_Reference().eval(), [torch.randn(1, 32, 32, 32)], ["x"], workdir / "reference.onnx")


def export_overhead(workdir: Path) -> Path:
    return export_onnx(_Overhead(), [torch.ones(1, 1)], ["x"], workdir / "overhead.onnx")


def measure_overhead(target: Target, cfg: MeasureConfig, workdir: Path) -> float:
    return target.prepare_module(_Overhead(), [torch.ones(1, 1)], ["x"], workdir / "overhead.onnx").measure(cfg).median_ms


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
    target = cfg.target()
    specs = SearchSpace.of(preset).all_specs()
    table = CostTable.create(out, table_meta(cfg, preset, target))
    with tempfile.TemporaryDirectory(prefix="rcai-profile-") as tmp:
        workdir = Path(tmp)
        if "overhead_ms" not in table.meta:
            table.update_meta(overhead_ms=measure_overhead(target, cfg.measure, workdir))
        todo = [s for s in specs if s.key not in table.rows]
        with progress_bar(progress, "profiling ops", len(specs), len(specs) - len(todo), transient=False) as advance:
            for spec in todo:
                table.append(profile_op(spec, target, cfg.batch, cfg.measure, workdir))
                advance(spec.key)
    return table


# -- interleaved rounds -----------------------------------------------------------------------------

def read_rounds(path: Path, items: list[str]) -> list[dict[str, list[float]]]:
    """The complete rounds of a `.rounds.csv` (round,item,calls), in order; a round cut by a kill
    (an item missing, a partial last line) and everything after it are dropped."""
    if not path.exists():
        return []
    text = path.read_text()
    text = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    by_round: dict[int, dict[str, list[float]]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("item") not in items:
            raise RcaiError(f"{path}: has item {row.get('item')!r} this run does not measure; use another --out")
        by_round.setdefault(int(row["round"]), {})[row["item"]] = [float(x) for x in row["calls"].split("|")]
    out = []
    for r in range(len(by_round)):
        if r not in by_round or set(by_round[r]) != set(items):
            break
        out.append(by_round[r])
    return out


def _round_lines(r: int, calls: dict[str, list[float]], names: list[str]) -> str:
    return "".join(f"{r},{n},{'|'.join(f'{t:.5g}' for t in calls[n])}\n" for n in names)


def measure_interleaved(
    target: Target,
    models: dict[str, Path],
    icfg: InterleaveConfig,
    raw_path: Path | None = None,
    advance: Callable[..., None] = lambda status="": None,
) -> dict[str, list[list[float]]]:
    """Time the ONNX `models` ({name: path}; names starting with NET get net_burst calls a visit)
    plus the reference kernel (REFERENCE) in icfg.rounds interleaved rounds. Finished rounds are
    appended to raw_path and a rerun continues after the last complete one.
    Returns {name: [calls of round 0, ...]} including REFERENCE."""
    models = dict(models)
    if REFERENCE not in models:
        models[REFERENCE] = export_reference(Path(next(iter(models.values()))).parent)
    names = list(models)
    done = read_rounds(raw_path, names) if raw_path else []
    if raw_path is not None:  # keep only the complete rounds: a round cut by a kill is measured again
        atomic_write_text(raw_path, "round,item,calls\n" + "".join(_round_lines(r, c, names) for r, c in enumerate(done)))
    for _ in done:
        advance("resumed")
    calls = {n: [r[n] for r in done] for n in names}
    if len(done) >= icfg.rounds:
        return calls
    clock = resolve_clock(icfg.clock, target)
    items = {n: call_timer(target.prepare(p), icfg.input_pool, seed=i, clock=clock) for i, (n, p) in enumerate(models.items())}
    bursts = {n: icfg.net_burst if n.startswith(NET) else icfg.burst for n in names}

    def save(r: int, this: dict[str, list[float]]) -> None:
        if raw_path is not None:
            append_line(raw_path, _round_lines(r, this, names))
        advance(f"round {r + 1}/{icfg.rounds}")

    new = interleave(items, icfg.rounds, bursts, icfg.warmup, icfg.visit_warmup, seed=icfg.seed, start=len(done), on_round=save)
    return {n: calls[n] + new[n] for n in names}


def corrected(calls: dict[str, list[list[float]]], icfg: InterleaveConfig) -> tuple[dict[str, list[list[float]]], list[float]]:
    """(calls, per-round speed factors of the reference); calls divided by the factors when
    icfg.correct_drift."""
    factors = drift(calls[REFERENCE], icfg.estimator)
    if not icfg.correct_drift:
        return calls, factors
    return {n: [[t / f for t in r] for r, f in zip(rounds, factors)] for n, rounds in calls.items()}, factors


def call_stats(rounds: list[list[float]], estimator: str) -> dict[str, Any]:
    """Table statistics over all calls of an item, its estimate, and its two half-run estimates."""
    a = np.asarray([t for r in rounds for t in r], dtype=np.float64)
    h1, h2 = half_split(rounds, estimator)
    value = estimate(a, estimator)
    return {
        "median_ms": float(np.median(a)), "p10_ms": float(np.percentile(a, 10)), "p90_ms": float(np.percentile(a, 90)),
        "cv": float(a.std() / a.mean()) if a.mean() > 0 else 0.0, "count": int(a.size),
        "value_ms": value, "half1_ms": h1, "half2_ms": h2, "half_split": abs(h1 - h2) / value if value > 0 else 0.0,
    }


def drift_summary(factors: list[float]) -> dict[str, Any]:
    f = np.asarray(factors)
    return {"per_round": [round(float(x), 4) for x in f], "min": float(f.min()), "max": float(f.max()),
            "spread": float(np.percentile(f, 90) / np.percentile(f, 10) - 1)}


def profile_ops_interleaved(cfg: ProfileConfig, out: str | Path, progress: bool = True) -> CostTable:

    icfg = cfg.interleave
    if icfg.estimator not in LATENCY_COLUMN:
        raise RcaiError(f"a table's estimator must be one of {', '.join(LATENCY_COLUMN)} (got {icfg.estimator!r})")
    if not 0 <= cfg.calibrate <= 10:
        raise RcaiError(f"--calibrate takes 0 to 10 subnets (got {cfg.calibrate})")
    preset = get_preset(cfg.preset)
    target = cfg.target()
    if cfg.host or not target.takes_onnx:  # a remote call or a torch module: timed one op after the other
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
        models = {s.key: export_op(s, cfg.batch, workdir) for s in specs}
        if cfg.precision == "int8":  # every op as it runs in a whole INT8 network (Conv quantized but stem/head, the rest fp32)
            from ..targets.quantize import QuantConfig, quantize_for_timing

            models = {s.key: models[s.key] if QuantConfig().keeps_fp32(s.op) else quantize_for_timing(models[s.key]) for s in specs}
        models[OVERHEAD] = export_overhead(workdir)
        with progress_bar(progress, "profiling ops (interleaved rounds)", icfg.rounds, transient=False) as advance:
            calls = measure_interleaved(target, models, icfg, raw_path, advance)
        loops = calibration_loops(cfg, target, preset, archs, workdir) if archs else {}
    calls, factors = corrected(calls, icfg)
    stats = {n: call_stats(c, icfg.estimator) for n, c in calls.items()}
    overhead = stats[OVERHEAD]["value_ms"]
    table.update_meta(overhead_ms=overhead)
    for spec in specs:
        if spec.key not in table.rows:
            st = stats[spec.key]
            table.append({**spec_columns(spec), **{k: st[k] for k in ("median_ms", "p10_ms", "p90_ms", "cv", "count")},
                          **op_count_columns(spec, cfg.batch)})
    splits = sorted(stats[s.key]["half_split"] for s in specs)
    table.update_meta(
        drift=drift_summary(factors), drift_corrected=icfg.correct_drift, pinned_cpus=pin.cpus, load_average=load_average(),
        half_split={s.key: round(stats[s.key]["half_split"], 4) for s in specs},
        half_split_summary={"median": float(np.median(splits)), "max": float(splits[-1]),
                            "within_10pct": float(np.mean(np.asarray(splits) <= 0.10))},
        reference_ms=stats[REFERENCE]["value_ms"], measure_seconds=round(time.perf_counter() - t0, 1), interleave=icfg.to_dict(),
    )
    if archs:
        fit_loop_calibration(table, space, archs, loops, cfg.loop_steps)
    return table


def calibration_loops(cfg: ProfileConfig, target: Target, preset: Preset, archs: list[dict[str, str]], workdir: Path) -> dict[str, Any]:
    """The calibration subnets' whole DDIM loops and every sampler's own loop, measured together
    (rcai.cost.loops: the loop `rcai bench` runs, with the one loop measurement)."""
    nets = {}
    for i, arch in enumerate(archs):
        nets[f"{NET}{i:04d}"] = path = workdir / f"net{i:04d}.onnx"
        export_with_weights(SubnetSpec(preset, arch), path, cfg.batch)
        if cfg.precision == "int8":
            from ..targets.quantize import quantize_for_timing

            quantize_for_timing(path, path)
    return measure_model_loops(target, nets, preset, cfg.calibrate_loops, cfg.loop_steps, cfg.batch)


def fit_loop_calibration(table: CostTable, space: SearchSpace, archs: list[dict[str, str]], loops: dict[str, Any], steps: int) -> None:
    """Fit the table to whole loops: per step, (loop - the sampler's own loop) / steps =
    overhead + sum of factor[kind] x table latency; the sampler's per-step terms go into the meta
    (`sampler_ms`), the loop measurement's clock and statistic with them (`loop`)."""
    from .calibration import fit_calibration

    terms = sampler_terms(loops, space.preset, steps)
    ddim = loops[SAMPLER + "ddim"].loop_ms
    nets = [loops[f"{NET}{i:04d}"] for i in range(len(archs))]
    measured = [(m.loop_ms - ddim) / steps for m in nets]
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
