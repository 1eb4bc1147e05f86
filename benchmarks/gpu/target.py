"""Issue 32 on one GPU, in one shot: the GPU target keeps the CPU's promises.

    python benchmarks/gpu/target.py --out $OUT [--budget-s 200]     # on the GPU machine (benchmarks/gpu/run.sh: --budget-s 165)
    python benchmarks/gpu/target.py --smoke --out /tmp/g            # the same code paths on this CPU (--device torch, micro), < 90 s

Stages (each in its own try/except: a failure is one line in the report, the others still run; the
whole run stops itself at --budget-s and writes what it has):
  1. profile: `rcai profile --device gpu` of the preset's ops + calibration on whole loops (the
     launch-bound cost model on a CUDA target), at batch 1, and at a throughput batch if time allows;
  2. check: the calibrated table vs the measured whole DDIM loops of >= 30 subnets, the base twice
     and the cheapest, the loops' own re-measurement beside (`rcai profile check`'s loop_check);
     the other cost model (per-kind factors) fitted to the same loops, for comparison; the GNN
     predictor trained on whole subnets measured here is scored on the same loops (last, if time allows);
  3. bench: `rcai bench --device gpu` (the table's estimate beside), then in one interleaved run the
     same model's loop with the sampler on the GPU (per-step graphs: bench's default), the whole loop
     as one CUDA graph, and the numpy host sampler;
  4. precision: fp16 and bf16 loops, their time and PSNR against the fp32 loop;
  5. cross-target: the subnet picked under a GPU budget by the GPU table and by the CPU table
     (most parameters within budget), both measured on the GPU and on the CPU (ONNX Runtime, 1 thread);
  6. with --tests, the GPU tests (pytest, a subprocess; benchmarks/gpu/run.sh runs them on its own);
     then batch 16 and the predictor as the budget allows.
Writes gpu_target.md, gpu_target.csv (the check's loops), gpu_target.png (table vs measured) and
gpu_target.json under --out. The base is random-init (seed 0) with every weight perturbed by
N(0, 0.05) (the zero-initialised head would make every image the LR input): timing and precision
figures do not depend on training; no quality figure is claimed.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout's rcai, wherever this runs from
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py


class Budget(Exception):
    """The run's --budget-s is spent."""


class Run:
    def __init__(self, args: argparse.Namespace):
        self.args, self.t0 = args, time.perf_counter()
        self.stages: dict[str, dict] = {}
        self.md: list[str] = []

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.t0)

    def stage(self, name: str, fn, need_s: float = 0.0) -> dict | None:
        """Run one stage; its error (or the budget) is recorded, never raised."""
        if self.left() < need_s:
            self.stages[name] = {"status": f"skipped: {self.left():.0f} s left, needs ~{need_s:.0f} s"}
            print(f"[{name}] skipped ({self.left():.0f} s left)", flush=True)
            return None
        t = time.perf_counter()
        print(f"[{name}] start ({self.left():.0f} s left)", flush=True)
        try:
            out = fn()
            self.stages[name] = {"status": "ok", "seconds": round(time.perf_counter() - t, 1), **(out or {})}
        except Budget:
            self.stages[name] = {"status": f"stopped: --budget-s {self.args.budget_s:.0f} spent", "seconds": round(time.perf_counter() - t, 1)}
        except BaseException as e:  # noqa: BLE001  a stage's failure must not end the run
            line = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            self.stages[name] = {"status": f"FAILED: {line}", "seconds": round(time.perf_counter() - t, 1),
                                 "traceback": traceback.format_exc()[-2000:]}
        print(f"[{name}] {self.stages[name]['status']} ({self.stages[name].get('seconds', 0)} s)", flush=True)
        return self.stages[name]


def alarm(seconds: float) -> None:
    def ring(*_):
        raise Budget()

    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, ring)
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 1.0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    ap.add_argument("--budget-s", type=float, default=200.0)
    ap.add_argument("--smoke", action="store_true", help="this CPU: --device torch, micro preset, tiny counts")
    ap.add_argument("--subnets", type=int, default=None, help="random subnets of the check (default 30; smoke 3)")
    ap.add_argument("--calibrate", type=int, default=None, help="calibration subnets (default 8; smoke 3)")
    ap.add_argument("--rounds", type=int, default=None, help="loop measurement rounds (default 6; smoke 2)")
    ap.add_argument("--steps", type=int, default=None, help="DDIM steps per loop (default 50; smoke 4)")
    ap.add_argument("--archs", type=int, default=None, help="whole subnets for the predictor (default 40; smoke 0)")
    ap.add_argument("--throughput-batch", type=int, default=16)
    ap.add_argument("--tests", action="store_true", help="also run the GPU tests as a stage (benchmarks/gpu/run.sh runs them on its own)")
    args = ap.parse_args()
    smoke = args.smoke
    args.device = "torch" if smoke else "gpu"
    args.threads = 1 if smoke else None  # torch on a shared CPU: one thread (torch-cuda takes none)
    args.cost_model = "launch" if smoke else "auto"  # auto: launch on a CUDA target; the smoke run takes the same path
    args.preset = "micro" if smoke else "tiny"
    args.subnets = args.subnets if args.subnets is not None else (3 if smoke else 30)
    args.calibrate = args.calibrate if args.calibrate is not None else (3 if smoke else 8)
    args.rounds = args.rounds if args.rounds is not None else (2 if smoke else 6)
    args.steps = args.steps if args.steps is not None else (4 if smoke else 50)
    args.archs = args.archs if args.archs is not None else (4 if smoke else 40)
    if smoke:
        args.throughput_batch = 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = Run(args)
    alarm(args.budget_s - 8.0)  # keep a few seconds to write the report
    work = Path(tempfile.mkdtemp(prefix="rcai-gpu-"))
    ctx: dict = {}
    try:
        run.stage("environment", lambda: environment(args, ctx))
        run.stage("profile", lambda: profile(args, ctx, work))
        run.stage("check", lambda: check(args, ctx, work), need_s=20)
        run.stage("bench", lambda: bench(args, ctx, work), need_s=15)
        run.stage("precision", lambda: precision(args, ctx), need_s=10)
        run.stage("cross_target", lambda: cross_target(args, ctx, work), need_s=15)
        if args.tests:
            run.stage("gpu_tests", lambda: gpu_tests(run), need_s=30)
        if args.throughput_batch:
            run.stage("throughput_batch", lambda: throughput(args, ctx, work), need_s=30)
        if args.archs:
            run.stage("predictor", lambda: predictor(args, ctx, work), need_s=45)
    except Budget:
        pass
    finally:
        if hasattr(signal, "SIGALRM"):
            signal.setitimer(signal.ITIMER_REAL, 0)
        report(run, ctx, out)


# -- stages ------------------------------------------------------------------------------------

def environment(args, ctx) -> dict:
    import torch

    from rcai.targets.sysinfo import machine_facts

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    ctx["env"] = {"machine": machine_facts(), "torch": torch.__version__, "cuda": torch.version.cuda, "gpu": gpu, "device": args.device,
                  "preset": args.preset, "deepspeed": _importable("deepspeed"), "tensorrt": _importable("tensorrt")}
    return ctx["env"]


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def profile(args, ctx, work: Path) -> dict:
    from rcai.cost.profile import OP_MEASURE, ProfileConfig, profile_ops
    from rcai.targets import MeasureConfig, TargetSpec
    from rcai.targets.loops import LoopConfig

    measure = MeasureConfig(warmup=5, min_repeats=20, max_repeats=200, chunk=10, rel_tol=0.02, max_seconds=0.5) if args.smoke else OP_MEASURE
    cfg = ProfileConfig(preset=args.preset, target=TargetSpec(device=args.device, threads=args.threads), measure=measure, calibrate=args.calibrate, loop_steps=args.steps,
                        calibrate_loops=LoopConfig(rounds=args.rounds), cost_model=args.cost_model)
    t = time.perf_counter()
    table = profile_ops(cfg, work / "gpu-table.csv", progress=False)
    ctx["table"] = table
    cal = table.meta.get("calibration") or {}
    return {"seconds_profile": round(time.perf_counter() - t, 1), "ops": len(table.rows), "backend": table.meta.get("backend"),
            "overhead_ms": table.overhead_ms, "cost_model": cal.get("model"), "kernel_counter": table.meta.get("kernel_counter"),
            "kernel_ms": cal.get("kernel_ms"), "scale": cal.get("scale"), "cal_overhead_ms": cal.get("overhead_ms"),
            "cal_fit": cal.get("fit"), "sampler_ms": table.meta.get("sampler_ms"),
            "kernels_base": _kernels_of(table, args.preset)}


def _kernels_of(table, preset_name: str):
    from rcai.presets import get_preset
    from rcai.space.space import SearchSpace

    k = table.meta.get("kernels")
    if not k:
        return None
    space = SearchSpace.of(get_preset(preset_name))
    return sum(k[s.key] for s in space.arch_specs(space.base_arch()))


def check(args, ctx, work: Path) -> dict:
    from rcai.cost.check import FidelityConfig, check_archs, loop_check
    from rcai.targets import TargetSpec

    table = ctx["table"]
    cfg = FidelityConfig(preset=args.preset, target=TargetSpec(device=args.device), subnets=args.subnets, calibrate=args.calibrate, rounds=args.rounds,
                         steps=args.steps)
    archs = check_archs(args.preset, args.subnets, cfg.seed, table)
    res = loop_check(table, archs, work / "loops", cfg)
    ctx["check"] = res
    keys = [k for k in ("remeasurement", "table", "same_rounds", "same_rounds_kinds", "same_rounds_launch", "uncalibrated") if k in res]
    return {"loops": res["loops"], "clock": res["clock"], "figures": {k: res[k] for k in keys}, "base_twice": res.get("base_twice"),
            "sampler_loop_ms": res.get("sampler_loop_ms")}


def _export_base(args, ctx, work: Path) -> Path:
    """The base subnet, random-init with perturbed weights (see the module doc), exported with its sidecar."""
    if "base_onnx" in ctx:
        return ctx["base_onnx"]
    import torch

    from rcai.deploy.export import export_subnet_onnx
    from rcai.presets import get_preset
    from rcai.space.space import SearchSpace
    from rcai.space.subnet import SubnetSpec

    preset = get_preset(args.preset)
    spec = SubnetSpec(preset, SearchSpace.of(preset).base_arch())
    torch.manual_seed(0)
    model = spec.build()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    torch.save(model.state_dict(), work / "base.pt")
    path = work / "base.onnx"
    export_subnet_onnx(spec, model.state_dict(), path, weights_path=work / "base.pt", verify=False)
    ctx["base_onnx"] = path
    return path


def bench(args, ctx, work: Path) -> dict:
    from dataclasses import replace

    from rcai.deploy.bench import BenchConfig, bench_loop, loop_fn
    from rcai.deploy.engines import build_engine
    from rcai.targets import TargetSpec
    from rcai.deploy.sidecar import DeploySidecar
    from rcai.targets.loops import LoopConfig, measure_loops

    path = _export_base(args, ctx, work)
    out: dict = {}
    table = ctx.get("table")
    cfg = BenchConfig(device=args.device, threads=args.threads, steps=args.steps, image="random", rounds=args.rounds, table=str(table.path) if table else None)
    res = bench_loop(path, cfg)
    out["rcai_bench"] = {"loop_ms": res.loop_ms, "clock": res.loop_clock, "remeasure_pct": res.remeasure_pct, "step_p50_ms": res.step_p50_ms,
                         "engine": res.engine_label, "psnr_db": res.psnr_db, "psnr_reference": res.psnr_reference,
                         "estimates": {k: {"loop_ms": v["loop_ms"], "loop_error_pct": v["loop_error_pct"]} for k, v in res.estimates.items()},
                         "notes": res.notes}
    side = DeploySidecar.for_onnx(path)
    engine = build_engine(path, side, TargetSpec(device=args.device, threads=1 if args.smoke else None))
    kinds = ["device", "host"] + ([] if args.smoke else ["graph"])
    fns = {k: loop_fn(engine, side, replace(cfg, loop=k)) for k in kinds}
    images = {k: f().image for k, f in fns.items()}
    m = measure_loops(fns, LoopConfig(rounds=args.rounds, loops=3), engine.on_calling_thread, {k: engine.timer for k in fns} if engine.timer else None)
    from rcai.metrics import psnr

    out["loops"] = {k: {"loop_ms": v.loop_ms, "remeasure_pct": v.remeasure_pct, "clock": v.clock,
                        "psnr_vs_device_db": psnr(images[k], images["device"]) if k != "device" else None} for k, v in m.items()}
    if "graph" in m:
        out["device_vs_graph_pct"] = 100.0 * (m["device"].loop_ms / m["graph"].loop_ms - 1)
    out["host_vs_device_pct"] = 100.0 * (m["host"].loop_ms / m["device"].loop_ms - 1)
    ctx["bench"] = out
    return out


def precision(args, ctx) -> dict:
    from dataclasses import replace

    from rcai.deploy.bench import BenchConfig, loop_fn
    from rcai.deploy.engines import build_engine
    from rcai.targets import TargetSpec
    from rcai.deploy.sidecar import DeploySidecar
    from rcai.metrics import psnr
    from rcai.targets.loops import LoopConfig, measure_loops

    path = ctx["base_onnx"] if "base_onnx" in ctx else _export_base(args, ctx, Path(tempfile.mkdtemp()))
    side = DeploySidecar.for_onnx(path)
    cfg = BenchConfig(device=args.device, threads=args.threads, steps=args.steps, image="random")
    fns, images, errors, timer = {}, {}, {}, None
    for prec in ("fp32", "fp16", "bf16"):
        try:
            engine = build_engine(path, side, TargetSpec(device=args.device, threads=1 if args.smoke else None, precision=prec))
            fns[prec] = loop_fn(engine, side, replace(cfg, loop="auto"))
            images[prec] = fns[prec]().image
            timer = timer or engine.timer
        except Exception as e:  # noqa: BLE001
            errors[prec] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    m = measure_loops(fns, LoopConfig(rounds=args.rounds, loops=2), False, {k: timer for k in fns} if timer else None) if fns else {}
    out = {p: {"loop_ms": m[p].loop_ms, "remeasure_pct": m[p].remeasure_pct,
               "psnr_vs_fp32_db": psnr(images[p], images["fp32"]) if p != "fp32" and "fp32" in images else None} for p in m}
    out["errors"] = errors
    ctx["precision"] = out
    return out


def cross_target(args, ctx, work: Path) -> dict:
    import torch

    from rcai.cost.archs import sample_archs
    from rcai.cost.model import TableCostModel
    from rcai.cost.profile import ProfileConfig, profile_ops
    from rcai.targets import TargetSpec
    from rcai.cost.rounds import InterleaveConfig
    from rcai.cost.table import CostTable
    from rcai.deploy.bench import BenchConfig
    from rcai.deploy.compare import compare_loops
    from rcai.deploy.export import export_subnet_onnx
    from rcai.presets import get_preset
    from rcai.space.subnet import SubnetSpec

    preset = get_preset(args.preset)
    shipped = Path(__file__).resolve().parents[2] / "latency_tables" / f"cpu-{args.preset}.csv"
    if shipped.is_file():
        cpu_table, cpu_note = CostTable.load(shipped), f"{shipped.name} (profiled on the development VM's CPU, ONNX Runtime 1 thread)"
    else:
        cpu_table = profile_ops(ProfileConfig(preset=args.preset, target=TargetSpec(device="cpu", threads=1), interleave=InterleaveConfig(rounds=4, burst=10, warmup=1)),
                                work / "cpu-table.csv", progress=False)
        cpu_note = "profiled here (ONNX Runtime 1 thread, 4 rounds)"
    models = {"gpu": TableCostModel(preset, ctx["table"]), "cpu": TableCostModel(preset, cpu_table)}
    S = args.steps
    space = models["gpu"].space
    n = 200 if args.smoke else 1000
    archs = sample_archs(space, n, 0, "uniform") + sample_archs(space, n, 1, "skewed")
    est = {t: [m.estimate(a, S) for a in archs] for t, m in models.items()}
    budget = models["gpu"].estimate(space.base_arch(), S).loop_ms / 1.15  # a GPU budget: the base's GPU loop less 13 %
    cpu_budget = models["cpu"].estimate(space.base_arch(), S).loop_ms / 1.15  # the same relative budget on the CPU table
    picks = {}
    for t, b in (("gpu", budget), ("cpu", cpu_budget)):
        fits = [i for i, e in enumerate(est[t]) if e.loop_ms <= b]
        picks[t] = max(fits, key=lambda i: est[t][i].params) if fits else None
    cands = {}
    for t, i in picks.items():
        if i is None:
            continue
        spec = SubnetSpec(preset, archs[i])
        torch.manual_seed(0)
        state = spec.build().state_dict()
        path, weights = work / f"pick-{t}.onnx", work / f"pick-{t}.pt"
        torch.save(state, weights)
        export_subnet_onnx(spec, state, path, weights_path=weights, verify=False)
        cands[f"{t}|gpu"] = (path, args.device)
        cands[f"{t}|cpu"] = (path, "cpu")
    timing = compare_loops(cands, BenchConfig(sampler="ddim", steps=S, threads=1, psnr=False), rounds=args.rounds)
    rows = []
    for t, i in picks.items():
        if i is None:
            rows.append({"picked_by": f"{t} table", "status": "nothing fits the budget"})
            continue
        rows.append({"picked_by": f"{t} table", "params": est[t][i].params, "gpu_table_loop_ms": est["gpu"][i].loop_ms, "cpu_table_loop_ms": est["cpu"][i].loop_ms,
                     "measured_gpu_ms": timing[f"{t}|gpu"]["median_ms"], "measured_cpu_ms": timing[f"{t}|cpu"]["median_ms"],
                     "same_subnet_as_other": picks["gpu"] == picks["cpu"]})
    out = {"cpu_table": cpu_note, "gpu_budget_ms": budget, "cpu_budget_ms": cpu_budget, "candidates": len(archs), "rows": rows}
    ctx["cross"] = out
    return out


def predictor(args, ctx, work: Path) -> dict:
    from rcai.cost.archs import ArchDatasetConfig, profile_archs
    from rcai.cost.check import rescore_predictor
    from rcai.cost.profile import NET_MEASURE, ProfileConfig
    from rcai.targets import TargetSpec
    from rcai.predictor.predictor import train_predictor

    cfg = ProfileConfig(preset=args.preset, target=TargetSpec(device=args.device, threads=args.threads), measure=NET_MEASURE)
    t = time.perf_counter()
    ds = profile_archs(cfg, ArchDatasetConfig(archs=args.archs, rounds=2), work / "archs", progress=False)
    t_data = time.perf_counter() - t
    from dataclasses import replace

    from rcai.predictor.train import PredictorTrainConfig

    tcfg = replace(PredictorTrainConfig(), epochs=3) if args.smoke else PredictorTrainConfig()
    pred = train_predictor(ds / "dataset.csv" if ds.is_dir() else ds, cfg=tcfg, progress=False)
    pred.save(work / "gpu-predictor.pt")
    res = rescore_predictor(ctx["check"], work / "gpu-predictor.pt", args.preset, args.steps)
    ctx["check"]["predictor"] = res["predictor"]
    return {"dataset_seconds": round(t_data, 1), "archs": args.archs, "figures": res["predictor"]}


def throughput(args, ctx, work: Path) -> dict:
    """Batch as a dimension: the same profile + calibration + a short check at a throughput batch."""
    from rcai.cost.check import FidelityConfig, check_archs, loop_check
    from rcai.cost.profile import OP_MEASURE, ProfileConfig, profile_ops
    from rcai.targets import TargetSpec
    from rcai.targets.loops import LoopConfig

    b = args.throughput_batch
    cfg = ProfileConfig(preset=args.preset, target=TargetSpec(device=args.device, threads=args.threads, batch=b), measure=OP_MEASURE, calibrate=args.calibrate, loop_steps=args.steps,
                        calibrate_loops=LoopConfig(rounds=max(2, args.rounds // 2)), cost_model=args.cost_model)
    table = profile_ops(cfg, work / f"gpu-table-b{b}.csv", progress=False)
    fcfg = FidelityConfig(preset=args.preset, target=TargetSpec(device=args.device, batch=b), subnets=min(args.subnets, 12), calibrate=args.calibrate,
                          rounds=max(2, args.rounds // 2), steps=args.steps)
    res = loop_check(table, check_archs(args.preset, fcfg.subnets, fcfg.seed, table), work / f"loops-b{b}", fcfg)
    cal = table.meta.get("calibration") or {}
    keys = [k for k in ("remeasurement", "table", "same_rounds", "same_rounds_kinds", "same_rounds_launch", "uncalibrated") if k in res]
    return {"batch": b, "loops": res["loops"], "cost_model": cal.get("model"), "kernel_ms": cal.get("kernel_ms"), "scale": cal.get("scale"), "figures": {k: res[k] for k in keys},
            "base_loop_ms": res.get("base_twice", {}).get("first_ms")}


def gpu_tests(run: Run) -> dict:
    """The GPU tests (tests/test_gpu_targets.py, the device contract of tests/test_deploy.py) in a
    subprocess, within what is left of the budget: their summary line and the failures' names."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    limit = max(10.0, run.left() - 10.0)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gpu_targets.py", "tests/test_deploy.py", "-k",
           "gpu or cuda or device or crash"]
    try:
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=limit, env={**os.environ, "PYTHONPATH": str(root)})
    except subprocess.TimeoutExpired:
        return {"summary": f"stopped after {limit:.0f} s (the budget)"}
    lines = done.stdout.strip().splitlines()
    return {"summary": lines[-1] if lines else done.stderr[-300:], "failed": [x for x in lines if x.startswith("FAILED")][:20], "rc": done.returncode}


# -- report ------------------------------------------------------------------------------------

def _fig(r: dict) -> str:
    return (f"{r['n']} | {100 * r['median_abs_err']:.1f} % | {100 * r['acc_10']:.0f} % | {100 * r['acc_5']:.0f} % | {r['spearman']:.3f} | "
            f"{100 * r['bias']:+.1f} % | {100 * r['max_abs_err']:.1f} %")


LABELS = {"remeasurement": "the loops re-measured (2nd half of the rounds vs 1st)", "table": "table (calibrated in the profile)",
          "same_rounds": "table calibrated on loops of these rounds", "same_rounds_kinds": "  the same, per-kind factors (the CPU's model)",
          "same_rounds_launch": "  the same, launch-bound (kernels per op)", "uncalibrated": "table without calibration",
          "predictor": "GNN predictor trained on whole subnets measured here"}


def report(run: Run, ctx: dict, out: Path) -> None:
    a = run.args
    st = run.stages
    env = ctx.get("env", {})
    md = ["# GPU target (issue 32): table vs whole loops, the loop on the GPU, fp16/bf16, cross-target pick", "",
          f"{'SMOKE RUN on the CPU (--device torch, micro preset, tiny counts): code paths only, no GPU figures. ' if a.smoke else ''}"
          f"Device {a.device}: GPU {env.get('gpu')}; torch {env.get('torch')} (CUDA {env.get('cuda')}); {env.get('machine')}; "
          f"deepspeed importable: {env.get('deepspeed')}, tensorrt: {env.get('tensorrt')}. Preset {a.preset}, DDIM {a.steps} steps, batch 1, "
          f"{a.rounds} interleaved rounds per loop measurement. Base: random-init (seed 0) + N(0, 0.05) on every weight (no training; "
          f"timing and precision only). Total {time.perf_counter() - run.t0:.0f} s of --budget-s {a.budget_s:.0f}.", "",
          "| stage | status | s |", "|---|---|---:|"]
    md += [f"| {k} | {v['status']} | {v.get('seconds', '')} |" for k, v in st.items()]
    p = st.get("profile", {})
    if p.get("status") == "ok":
        md += ["", "## Profile", "",
               f"{p['ops']} ops on {p['backend']} in {p['seconds_profile']} s; per-call overhead {1000 * p['overhead_ms']:.1f} us; calibration "
               f"({p['cost_model']}): overhead {p['cal_overhead_ms']:.4f} ms/step, "
               + (f"{1000 * (p['kernel_ms'] or 0):.2f} us per kernel ({p['kernel_counter']}; the base has {p['kernels_base']} kernels a step), "
                  f"table x {p['scale']:.2f}; " if p['cost_model'] == 'launch' else "")
               + f"fit error on the calibration subnets {100 * p['cal_fit']['mape']:.1f} % (max {100 * p['cal_fit']['max_err']:.1f} %); "
               f"sampler per step {json.dumps({k: round(v, 4) for k, v in (p['sampler_ms'] or {}).items()})} ms."]
    c = ctx.get("check")
    if c:
        md += ["", f"## Table vs measured whole loops ({c['loops']} subnets: base, cheapest, {a.subnets} random; {c['clock']} clock)", "",
               "Goal on the GPU: median |err| <= 5 %, Acc±10 >= 95 %, Spearman >= 0.9, beside the loops' own re-measurement.", "",
               "| estimate | n | median abs err | Acc±10 | Acc±5 | Spearman | bias | max abs err |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        md += [f"| {LABELS[k]} | {_fig(c[k])} |" for k in LABELS if k in c]
        if c.get("base_twice"):
            b = c["base_twice"]
            md.append(f"\nThe base measured twice in the same rounds: {b['first_ms']:.2f} and {b['second_ms']:.2f} ms ({b['diff_pct']:+.1f} %).")
        _csv_and_png(c, out)
    b = ctx.get("bench")
    if b:
        rb = b["rcai_bench"]
        md += ["", "## rcai bench, and the same loop three ways", "",
               f"`rcai bench --device {a.device}` ({rb['engine']}): loop {rb['loop_ms']:.2f} ms ({rb['clock']} clock, re-measured {rb['remeasure_pct']:+.1f} %), "
               f"network call {rb['step_p50_ms']:.3f} ms; PSNR vs {rb['psnr_reference']}: "
               f"{'none' if rb['psnr_db'] is None else format(rb['psnr_db'], '.1f') + ' dB'}; "
               + "; ".join(f"{k} estimate {v['loop_ms']:.2f} ms ({v['loop_error_pct']:+.1f} %)" for k, v in rb["estimates"].items()), "",
               "| loop | ms | re-measured | PSNR vs the device loop |", "|---|---:|---:|---:|"]
        names = {"device": "sampler on the device, the network's graph per step (bench's default for torch targets)",
                 "graph": "the whole loop as one CUDA graph (`--loop graph`)", "host": "numpy sampler on the host (`--loop host`)"}
        for k, v in b["loops"].items():
            db = "" if v["psnr_vs_device_db"] is None else f"{v['psnr_vs_device_db']:.1f} dB"
            md.append(f"| {names[k]} | {v['loop_ms']:.2f} | {v['remeasure_pct']:+.1f} % | {db} |")
        if "device_vs_graph_pct" in b:
            md.append(f"\nbench's loop vs the whole-loop graph: {b['device_vs_graph_pct']:+.1f} % (goal: within 10 %); host sampler vs device: {b['host_vs_device_pct']:+.1f} %.")
    pr = ctx.get("precision")
    if pr:
        md += ["", "## Precision (the base's device loop)", "", "| precision | loop ms | PSNR vs fp32 |", "|---|---:|---:|"]
        md += [f"| {k} | {v['loop_ms']:.2f} | {'' if v['psnr_vs_fp32_db'] is None else format(v['psnr_vs_fp32_db'], '.1f') + ' dB'} |"
               for k, v in pr.items() if k != "errors"]
        md += [f"- {k}: {v}" for k, v in pr.get("errors", {}).items()]
    x = ctx.get("cross")
    if x:
        md += ["", "## Cross-target pick", "",
               f"Among {x['candidates']} sampled subnets, each table picks the one with the most parameters (a stand-in for quality) whose loop "
               f"fits its budget (base / 1.15: GPU {x['gpu_budget_ms']:.2f} ms, CPU {x['cpu_budget_ms']:.1f} ms by its table). CPU table: {x['cpu_table']}. "
               "Both picks measured on the GPU and on this machine's CPU (ONNX Runtime, 1 thread).", "",
               "| picked by | params | GPU table ms | CPU table ms | measured GPU ms | measured CPU ms |", "|---|---:|---:|---:|---:|---:|"]
        for r in x["rows"]:
            md.append(f"| {r['picked_by']} | " + (f"{r['params']:,.0f} | {r['gpu_table_loop_ms']:.2f} | {r['cpu_table_loop_ms']:.1f} | {r['measured_gpu_ms']:.2f} | "
                                                   f"{r['measured_cpu_ms']:.1f} |" if "params" in r else f"{r['status']} | | | | |"))
    tb = st.get("throughput_batch", {})
    if tb.get("status") == "ok":
        md += ["", f"## Throughput batch {tb['batch']} ({tb['loops']} subnets)", "",
               (f"launch fit: {1000 * (tb['kernel_ms'] or 0):.2f} us per kernel, table x {tb['scale']:.2f}; " if tb["cost_model"] == "launch"
                else f"calibration {tb['cost_model']}; ") + f"base loop {tb['base_loop_ms']:.2f} ms.", "",
               "| estimate | n | median abs err | Acc±10 | Acc±5 | Spearman | bias | max abs err |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        md += [f"| {LABELS[k]} | {_fig(v)} |" for k, v in tb["figures"].items()]
    gt = st.get("gpu_tests", {})
    if "summary" in gt:
        md += ["", "## GPU tests", "", f"`pytest tests/test_gpu_targets.py tests/test_deploy.py -k 'gpu or cuda or device or crash'`: {gt['summary']}"]
        md += [f"- {x}" for x in gt.get("failed", [])]
    fails = {k: v for k, v in st.items() if "traceback" in v}
    if fails:
        md += ["", "## Failures", ""] + [f"### {k}\n```\n{v['traceback']}\n```" for k, v in fails.items()]
    text = "\n".join(md) + "\n"
    (out / "gpu_target.md").write_text(text)
    (out / "gpu_target.json").write_text(json.dumps({"args": vars(a), "stages": st}, indent=1, default=_jsonable))
    print(text)


def _jsonable(x):
    try:
        return float(x)
    except Exception:  # noqa: BLE001
        return str(x)


def _csv_and_png(c: dict, out: Path) -> None:
    import csv

    rows = c["rows"]
    keys = ["name", "measured_ms", "half1_ms", "half2_ms", "remeasure_pct"] + [k for k in LABELS if k in rows[0]]
    with (out / "gpu_target.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for r in rows:
            w.writerow([r.get(k) for k in keys])
    try:
        from common import scatter_vs_measured

        series = {k: [r[k] for r in rows] for k in ("table", "same_rounds", "same_rounds_kinds", "predictor") if k in rows[0]}
        scatter_vs_measured([r["measured_ms"] for r in rows], series, out / "gpu_target.png", xlabel="measured whole loop ms")
    except Exception as e:  # noqa: BLE001
        print(f"no png: {e}")


if __name__ == "__main__":
    main()
