"""Achieved FLOP/s of the ONNX Runtime sampling loop vs this machine's measured fp32 matmul peak
(goal >= 60%).

Loop FLOP/s = FLOPs per denoiser call (CounterCostModel, x batch) x steps / whole-loop time (the
loop time includes the numpy sampler, ~1%). Peak = the best of large square sgemms measured here
at the same thread count: torch.mm (n=1024, 2048), numpy matmul (OpenBLAS, threads set with
threadpoolctl), and an ONNX Runtime MatMul (n=1024, MLAS). Everything is measured in one set of
interleaved rounds.

    python benchmarks/bench_flops.py [--threads 1] [--steps 20] [--rounds 5] [--batches 1 4]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

from rcai.cost.model import CounterCostModel
from rcai.deploy import BenchConfig, DeploySidecar, build_engine, export_subnet_onnx
from rcai.deploy.bench import loop_fn
from rcai.threads import torch_threads
from rcai.io import atomic_write_csv, atomic_write_text
from rcai.presets import get_preset
from rcai.space.space import SearchSpace
from rcai.space.subnet import SubnetSpec
from rcai.targets import MeasureConfig, TargetSpec, get_target, interleaved_rounds

from rcai.targets.sysinfo import cpu_model

from bench_loop import cheap_arch  # same folder: run as python benchmarks/bench_flops.py
from common import load1

RESULTS = Path(__file__).parent / "results"
# per round: one untimed loop, then the median of 3 (what rcai.deploy.compare used when these results were made)
PER_ROUND = MeasureConfig(warmup=1, min_repeats=3, max_repeats=3, chunk=3, rel_tol=0.0, input_pool=1, max_seconds=600.0)


def _none(fn, *args):
    """fn(*args) as a no-argument callable returning None (so the measurement loop uses wall time)."""

    def call() -> None:
        fn(*args)

    return call


def gemm_candidates(tmp: Path, threads: int) -> dict[str, tuple]:
    """name -> (callable, flops per call)."""
    from threadpoolctl import threadpool_limits

    out = {}
    g = torch.Generator().manual_seed(0)
    for n in (1024, 2048):
        a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        out[f"sgemm torch.mm n={n}"] = (_none(torch.mm, a, b), 2.0 * n**3)
    an, bn = np.random.default_rng(0).standard_normal((2, 2048, 2048), dtype=np.float32)

    def numpy_mm() -> None:
        with threadpool_limits(threads):
            an @ bn

    out["sgemm numpy/OpenBLAS n=2048"] = (numpy_mm, 2.0 * 2048**3)
    n = 1024
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                              [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), tmp / "mm.onnx")
    prep = get_target("onnxruntime", threads=threads).prepare(tmp / "mm.onnx")
    staged = prep.stage({"a": an[:n, :n].copy(), "b": bn[:n, :n].copy()})
    out[f"sgemm onnxruntime MatMul n={n}"] = (_none(prep.execute, staged), 2.0 * n**3)
    return out


def run(args) -> tuple[list[dict], float, float]:
    p = get_preset("tiny")
    space = SearchSpace(p)
    counter = CounterCostModel(p)
    with tempfile.TemporaryDirectory() as tmp, torch_threads(args.threads):
        tmp = Path(tmp)
        cands: dict[str, tuple] = gemm_candidates(tmp, args.threads)
        meta = {k: {"kind": "peak", "batch": "", "flops": f} for k, (_, f) in cands.items()}
        for name, arch in (("base", space.base_arch()), ("cheap", cheap_arch(space))):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                path = Path(export_subnet_onnx(SubnetSpec(p, arch), None, tmp / f"{name}.onnx").onnx_path)
            side = DeploySidecar.for_onnx(path)
            flops_step = counter.estimate(arch).flops
            for b in args.batches:
                cfg = BenchConfig(threads=args.threads, sampler="ddim", steps=args.steps, batch=b, image="random")
                eng = build_engine(path, side, TargetSpec(device="cpu", threads=args.threads or None, batch=b))
                key = f"{name} ORT loop, batch {b}"
                cands[key] = (loop_fn(eng, side, cfg), flops_step * b * args.steps)
                meta[key] = {"kind": "loop", "batch": b, "flops": flops_step * b * args.steps}
        load_start = load1()
        res = interleaved_rounds({k: f for k, (f, _) in cands.items()}, rounds=args.rounds, per_round=PER_ROUND)
        load_end = load1()
    peak = max(meta[k]["flops"] / (r["median_ms"] / 1e3) for k, r in res.items() if meta[k]["kind"] == "peak")
    rows = []
    for k, r in res.items():
        gflops = meta[k]["flops"] / (r["median_ms"] / 1e3) / 1e9
        rows.append({
            "candidate": k, "kind": meta[k]["kind"], "batch": meta[k]["batch"], "threads": args.threads, "flops": meta[k]["flops"],
            "median_ms": r["median_ms"], "gflops_per_s": gflops, "pct_of_peak": 100 * gflops * 1e9 / peak,
            "repeatability": r["repeatability"], "round_min_ms": min(r["per_round_medians"]), "round_max_ms": max(r["per_round_medians"]),
        })
    return rows, load_start, load_end


def report(rows: list[dict], load: tuple[float, float], args) -> str:
    lines = [
        "# Achieved FLOP/s of the ONNX Runtime sampling loop vs measured fp32 matmul peak",
        "",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores (AVX-512), {platform.system()} {platform.machine()}; "
        f"onnxruntime {ort.__version__}, torch {torch.__version__}, numpy {np.__version__}",
        f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; threads = {args.threads} for everything "
        f"(ORT intra-op, torch.set_num_threads, threadpoolctl for numpy). Shared machine: 1-min load average "
        f"{load[0]:.2f} before / {load[1]:.2f} after.",
        f"- {args.rounds} interleaved rounds; per round 1 untimed call then median of {PER_ROUND.min_repeats}; figure = median of round medians.",
        f"- Loop: tiny preset, DDIM {args.steps} steps, FLOPs per denoiser call from CounterCostModel (2 x MACs; "
        + ", ".join(f"{r['candidate'].split()[0]} {r['flops'] / args.steps / 1e9:.3f} GFLOP" for r in rows if r["kind"] == "loop" and r["batch"] == 1)
        + " at batch 1), times batch and steps. Peak = best sgemm row.",
        "",
        "| candidate | ms | GFLOP/s | % of peak | round min..max (ms) | repeatability |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['candidate']} | {r['median_ms']:.1f} | {r['gflops_per_s']:.1f} | {r['pct_of_peak']:.0f}% "
                     f"| {r['round_min_ms']:.1f}..{r['round_max_ms']:.1f} | {r['repeatability']:.1%} |")
    best = max((r for r in rows if r["kind"] == "loop"), key=lambda r: r["pct_of_peak"])
    base1 = next(r for r in rows if r["candidate"].startswith("base") and r["batch"] == 1)
    verdict = "meets" if base1["pct_of_peak"] >= 60 else "misses"
    peak = max(r["gflops_per_s"] for r in rows if r["kind"] == "peak")
    lines += ["", f"Base subnet, batch 1: {base1['pct_of_peak']:.0f}% of the measured peak ({peak:.1f} GFLOP/s) — {verdict} the 60% goal. "
              f"Best loop row: {best['candidate']} at {best['pct_of_peak']:.0f}%."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_flops")
    args = ap.parse_args()
    rows, load_start, load_end = run(args)
    text = report(rows, (load_start, load_end), args)
    atomic_write_text(args.out.with_suffix(".md"), text)
    atomic_write_csv(args.out.with_suffix(".csv"), rows)
    print(text)


if __name__ == "__main__":
    main()
