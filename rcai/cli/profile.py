"""`rcai profile`: per-op cost table and whole-subnet latency dataset on a target;
`rcai profile check`: does a table (and the predictor) profiled here predict whole loops here?"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from rich.console import Console
from rich.table import Table

from .common import JsonOpt, PresetOpt, out as stdout, print_json
from .defaults import defaults
from .main import app

PROFILE = defaults("cost/profile.py", "ProfileConfig")
INTERLEAVE = defaults("cost/rounds.py", "InterleaveConfig")
ARCHS = defaults("cost/archs.py", "ArchDatasetConfig")
CHECK = defaults("cost/check.py", "FidelityConfig")
TARGET = defaults("targets/spec.py", "TargetSpec")  # --device, --threads, --batch (one spec, parsed once per command)


profile_app = typer.Typer(invoke_without_command=True, help="Profile a target (or check a table against whole loops: `rcai profile check`).")
app.add_typer(profile_app, name="profile")


@profile_app.callback()
def profile(
    ctx: typer.Context,
    device: str = typer.Option(TARGET["device"], "--device", "-d", help="Target: cpu (ONNX Runtime), torch (torch eager on this CPU), gpu (TensorRT if installed, else torch-cuda with CUDA graphs), jetson (TensorRT over ssh, unverified)."),
    preset: str = PresetOpt,
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Table CSV (default latency_tables/<device>-<preset>.csv)."),
    threads: Optional[int] = typer.Option(None, help="Backend threads (default: all cores)."),
    batch: int = typer.Option(TARGET["batch"], help="Batch size of every measurement."),
    precision: str = typer.Option(PROFILE["precision"], "--precision", help="fp32 | int8 (cpu: each op and calibration subnet quantized with ONNX Runtime static quantization as in a whole INT8 network; default table latency_tables/<device>-<preset>-int8.csv)."),
    archs: int = typer.Option(0, help="Also measure N random whole subnets end to end (the predictor's dataset)."),
    archs_out: Optional[str] = typer.Option(None, help="Dataset folder (default: <table without .csv>-archs/)."),
    rounds: int = typer.Option(ARCHS["rounds"], help="Interleaved measurement rounds per subnet (--archs)."),
    seed: int = typer.Option(ARCHS["seed"], help="Seed of the random subnets (--archs)."),
    sampling: str = typer.Option(ARCHS["sampling"], help="How --archs draws subnets: uniform | skewed (ops biased per subnet: reaches the extremes)."),
    skip_ops: bool = typer.Option(False, help="Only the --archs dataset, no op table."),
    method: str = typer.Option(PROFILE["method"], help="interleaved (short random-order rounds over everything) | sequential (one op after the other)."),
    calibrate: int = typer.Option(PROFILE["calibrate"], help="Calibrate the table on N (<= 10) whole subnets measured in the same run (stored in its meta.json, used by every estimate)."),
    cost_model: str = typer.Option(PROFILE["cost_model"], "--cost-model", help="How --calibrate fits the loops: kinds (a factor per op kind) | launch (kernels per op x a per-kernel floor + the table: a launch-bound GPU step) | auto (launch on a CUDA target)."),
    op_rounds: int = typer.Option(INTERLEAVE["rounds"], help="Interleaved rounds of the op table."),
    estimator: str = typer.Option(INTERLEAVE["estimator"], help="Latency of an item from all its calls: p10 | median (tables); also min | trimmed_low (--archs)."),
    clock: str = typer.Option(INTERLEAVE["clock"], help="auto (thread CPU time for --threads 1 on cpu, else wall) | wall | thread_cpu."),
    correct_drift: bool = typer.Option(INTERLEAVE["correct_drift"], help="Divide each round's calls by the reference kernel's speed that round."),
    pin: bool = typer.Option(INTERLEAVE["pin"], help="Pin to --threads CPUs where the OS allows."),
    host: Optional[str] = typer.Option(None, "--host", envvar="RCAI_REMOTE_HOST", help="Measure on [user@]addr[:port] over ssh (the host needs Python, numpy and the runtime; $RCAI_REMOTE_PYTHON, $RCAI_SSH_CONFIG)."),
    json: bool = JsonOpt,
) -> None:
    """Measure every distinct op of the preset's supernet on the target into a cost table
    (median/p10/p90/CV/count, FLOPs by DeepSpeed cross-checked by torch, params, bytes, peak activation
    memory). Resumable: run the same command again after a kill and it continues where it stopped."""
    from ..cost.archs import ArchDatasetConfig, profile_archs
    from ..cost.profile import NET_MEASURE, OP_MEASURE, ProfileConfig, default_table_path, profile_ops
    from ..cost.rounds import InterleaveConfig
    from ..errors import RcaiError
    from ..targets import TargetSpec

    if ctx.invoked_subcommand is not None:
        return
    if precision != "fp32" and archs:
        raise RcaiError(f"--precision {precision}: the op table only (not --archs); measure INT8 loops with benchmarks/precision.py")
    if archs < 0 or rounds < 1:
        raise RcaiError(f"--archs must be >= 0 (0: no subnets) and --rounds >= 1, got {archs} and {rounds}")
    acfg = ArchDatasetConfig(archs=archs, rounds=rounds, seed=seed, sampling=sampling, method=method) if archs else None
    icfg = InterleaveConfig(rounds=op_rounds, estimator=estimator, clock=clock, correct_drift=correct_drift, pin=pin)
    target = TargetSpec(device=device, host=host, threads=threads, batch=batch)  # a setting the target does not take: refused here
    table_path = Path(out) if out else default_table_path(device, preset, precision)
    result: dict = {}
    if not skip_ops:
        cfg = ProfileConfig(preset=preset, target=target, measure=OP_MEASURE, method=method,
                            interleave=icfg, calibrate=calibrate, precision=precision, cost_model=cost_model)
        table = profile_ops(cfg, table_path, progress=not json)
        result["table"] = {"path": str(table.path), "ops": len(table.rows), "overhead_ms": table.overhead_ms, "drift": table.meta.get("drift"),
                           "half_split": table.meta.get("half_split_summary"), "calibration": table.meta.get("calibration")}
        if not json:
            stdout.print(f"{table.path}: {len(table.rows)} ops ({table.precision}), per-call overhead {table.overhead_ms * 1000:.1f} us")
            if table.meta.get("drift"):
                d, h = table.meta["drift"], table.meta["half_split_summary"]
                stdout.print(f"  clock {table.meta.get('clock')}, load {table.meta.get('load_average')}; machine speed per round "
                              f"{d['min']:.3f}..{d['max']:.3f} (reference kernel); repeatability: first vs second half of the rounds "
                              f"median {h['median']:.1%}, max {h['max']:.1%}, {h['within_10pct']:.0%} of ops within 10%")
            cal = table.calibration
            if cal and cal.model == "launch":
                stdout.print(f"  calibrated on {cal.subnets} subnets (launch-bound: {table.meta.get('kernel_counter')}): overhead {cal.overhead_ms:.3f} ms, "
                              f"{cal.kernel_ms * 1000:.2f} us per kernel, table x {cal.scale:.2f}; fit error on them {cal.fit['mape']:.1%} (max {cal.fit['max_err']:.1%})")
            elif cal:
                fs = ", ".join(f"{k} {v:.2f}" for k, v in sorted(cal.factors.items()))
                stdout.print(f"  calibrated on {cal.subnets} subnets: overhead {cal.overhead_ms:.3f} ms, factors {fs}; "
                              f"fit error on them {cal.fit['mape']:.1%} (max {cal.fit['max_err']:.1%})")
    if archs:
        folder = Path(archs_out) if archs_out else table_path.with_name(table_path.name.removesuffix(".csv") + "-archs")
        cfg = ProfileConfig(preset=preset, target=target, measure=NET_MEASURE, interleave=replace(icfg, rounds=rounds))
        dataset = profile_archs(cfg, acfg, folder, progress=not json)
        result["dataset"] = str(dataset)
        if not json:
            stdout.print(f"{dataset}: {archs} subnets, {rounds} rounds each")
    if json:
        print_json(result)


@profile_app.command("check")
def check(
    device: str = typer.Option(TARGET["device"], "--device", "-d", help="Target: cpu (ONNX Runtime), torch (torch eager on this CPU), gpu, jetson (see `rcai profile`)."),
    preset: str = PresetOpt,
    threads: Optional[int] = typer.Option(TARGET["threads"], help="Backend threads (default 1 on targets with threads; refused on those without)."),
    batch: int = typer.Option(TARGET["batch"], help="Batch size of every measurement."),
    calibrate: int = typer.Option(CHECK["calibrate"], help="Whole subnets (<= 10) whose loops calibrate the table profiled here."),
    subnets: int = typer.Option(CHECK["subnets"], help="Random subnets whose whole loops are measured besides the base (twice) and the cheapest."),
    seed: int = typer.Option(CHECK["seed"], help="Seed of the measured subnets."),
    cost_model: str = typer.Option(CHECK["cost_model"], "--cost-model", help="The table's calibration: kinds | launch | auto (launch on a CUDA target; see `rcai profile`)."),
    methods: str = typer.Option("auto", help="Comma-separated clocks of the table and the loops: auto (CPU time for one CPU thread, else wall), wall (both on the wall clock)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Folder of the check's tables and loops (default: a temporary one)."),
    json: bool = JsonOpt,
) -> None:
    """The fidelity check: a table profiled and calibrated on loops here, then the whole DDIM loops of
    30+ subnets, the base (twice) and the cheapest; table and predictor (predictors/DEVICE-PRESET.pt,
    where it exists) vs the loops beside their own re-measurement, with the CPU model and the load."""
    import tempfile

    from ..cost.check import FidelityConfig, fidelity_check
    from ..errors import RcaiError
    from ..targets import TargetSpec

    if subnets < 0:
        raise RcaiError(f"--subnets must be >= 0 (random subnets besides the base and the cheapest), got {subnets}")
    cfg = FidelityConfig(preset=preset, target=TargetSpec(device=device, threads=threads, batch=batch), subnets=subnets, calibrate=calibrate,
                         seed=seed, cost_model=cost_model)
    names = [m.strip() for m in methods.split(",") if m.strip()]
    if not names:
        raise RcaiError("--methods: name at least one method")
    from .common import console, out as stdout

    predictor = Path("predictors") / f"{device}-{preset}.pt"
    results = []
    with tempfile.TemporaryDirectory(prefix="rcai-check-") as tmp:
        root = Path(out) if out else Path(tmp)
        for m in names:
            res = fidelity_check(cfg, m, root / m, progress=not json, log=console.print, predictor=predictor if predictor.is_file() else None)
            res.pop("rows")
            results.append(res)
            if not json:
                print_check(stdout, res)
    if json:
        print_json(results)


CHECK_LABELS = {
    "remeasurement": "the loops re-measured (2nd half of the rounds vs 1st)",
    "table": "table estimate (calibrated on loops, + sampler term)",
    "same_rounds": "table calibrated on loops in these rounds (no drift since the profile)",
    "same_rounds_kinds": "the same, fitted per op kind (cost model kinds)",
    "same_rounds_launch": "the same, fitted launch-bound (kernels per op, cost model launch)",
    "uncalibrated": "table without its calibration (+ sampler term)",
    "predictor": "GNN predictor (+ its sampler term)",
    "table_vs_wall": "table vs the wall-clock loops (this load)",
}


def print_check(out: Console, res: dict) -> None:
    out.print(f"[bold]{res['method']}[/] on {res['cpu_model']} ({res['cpus']} CPUs): load {res['load_start']} -> {res['load_end']}; "
              f"table profiled in {res['profile_seconds']:.0f} s (clock {res['table_clock']}), {res['loops']} whole {res['steps']}-step "
              f"DDIM loops in {res['loops_seconds']:.0f} s ({res['rounds']} rounds, {res['statistic']} on the {res['clock']} clock; "
              f"the loops got {res['cpu_share']:.0%} of a core; table calibration: {res.get('cost_model', 'kinds')})")
    grid = Table("figure", "n", "median |err|", "Acc+-5%", "Acc+-10%", "Spearman", "bias", "max |err|")
    for k, label in CHECK_LABELS.items():
        if k in res:
            r = res[k]
            grid.add_row(label, str(r["n"]), f"{r['median_abs_err']:.1%}", f"{r['acc_5']:.0%}", f"{r['acc_10']:.0%}", f"{r['spearman']:.3f}",
                         f"{r['bias']:+.1%}", f"{r['max_abs_err']:.1%}")
    out.print(grid)
    if "base_twice" in res:
        b = res["base_twice"]
        out.print(f"the base measured twice in the same rounds: {b['first_ms']:.1f} and {b['second_ms']:.1f} ms ({b['diff_pct']:+.1f}%)")
