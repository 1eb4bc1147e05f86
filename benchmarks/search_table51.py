"""Issue 4: the report's Table 5.1 on the tiny preset and the shipped CPU table.

Base model vs the subnets found with each softmax variant (simple, temperature, gumbel), same
weight-update budget for all (base: search steps + fine-tune steps), several seeds. Columns: FLOPs
per step, table latency of the whole loop, measured latency of the whole loop (ONNX Runtime, DDIM,
interleaved rounds over all models at once), PSNR, SSIM, params. Runs are resumable: finished
runs (metrics.json present) are reused.

Usage: python benchmarks/search_table51.py [--seeds 0 1 2] [--steps 300] [--finetune 200]
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from common import RESULTS, add_train_device, git_rev, machine, write

from rcai.io import atomic_write_csv

from rcai.cost.model import TableCostModel
from rcai.cost.table import CostTable
from rcai.deploy.bench import BenchConfig
from rcai.deploy.compare import compare_loops
from rcai.deploy.export import export_subnet_onnx
from rcai.io import read_json
from rcai.search.config import DartsOptions
from rcai.search.strategies.base import StrategyConfig
from rcai.search.strategies.run import run_strategy
from rcai.presets import get_preset
from rcai.space.subnet import SubnetSpec
from rcai.cost.summary import space_summary
from rcai.train.evaluate import EvalConfig
from rcai.train.protocol import TrainProtocol, train_job

VARIANTS = ("simple", "temperature", "gumbel")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--finetune", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--budget-factor", type=float, default=1.6, help="budget = base table loop latency / factor")
    ap.add_argument("--steps-per-sample", type=int, default=50)
    ap.add_argument("--table", default="latency_tables/cpu-tiny.csv")
    ap.add_argument("--out", default="runs/table51")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--eval-images", type=int, default=8)
    add_train_device(ap)
    args = ap.parse_args()
    preset = get_preset("tiny")
    table = TableCostModel(preset, CostTable.load(args.table))
    S = args.steps_per_sample
    base_loop = table.estimate(table.space.base_arch(), S).loop_ms
    budget = base_loop / args.budget_factor
    ev = EvalConfig(steps=20, max_images=args.eval_images)
    runs: dict[tuple[int, str], Path] = {}
    for seed in args.seeds:
        root = Path(args.out) / f"seed{seed}"
        base_dir = root / "base"
        if not (base_dir / "metrics.json").exists():
            protocol = TrainProtocol(steps=args.steps + args.finetune, batch_size=8, lr=args.lr, lr_schedule="cosine", ema=0.0, eval_at=())
            train_job(protocol, base_dir, preset="tiny", seed=seed, eval=ev, device=args.train_device, precision=args.train_precision,
                      progress=True).run()
        runs[(seed, "base")] = base_dir
        for sm in VARIANTS:
            d = root / sm
            if not (d / "metrics.json").exists():
                darts = DartsOptions(softmax=sm, steps=args.steps, warmup_steps=args.warmup, finetune_steps=args.finetune, lr_weights=args.lr, eval=ev,
                                     train_device=args.train_device, train_precision=args.train_precision)
                cfg = StrategyConfig(strategy="darts", preset="tiny", cost_table=args.table, latency_budget_ms=budget, steps_per_sample=S, seed=seed,
                                     darts=darts)
                run_strategy(cfg, d, resume=(d / "config.json").exists())
            runs[(seed, sm)] = d
    # export every model and time all whole loops together, interleaved
    candidates = {}
    for (seed, name), d in runs.items():
        onnx_path = d / "model.onnx"
        if not onnx_path.exists():
            weights = d / ("model.pt" if name == "base" else "subnet.pt")
            export_subnet_onnx(SubnetSpec.load(d / "subnet.json"), torch.load(weights, weights_only=True), onnx_path)
        candidates[f"{seed}|{name}"] = (onnx_path, "cpu")
    timing = compare_loops(candidates, BenchConfig(sampler="ddim", steps=S, threads=args.threads, psnr=False), rounds=args.rounds)
    rows = []
    for (seed, name), d in runs.items():
        m = read_json(d / "metrics.json")
        spec = SubnetSpec.load(d / "subnet.json")
        cost = table.estimate(spec.choices, S)
        t = timing[f"{seed}|{name}"]
        rows.append({"seed": seed, "model": name, "flops_per_step": cost.flops, "table_loop_ms": cost.loop_ms,
                     "measured_loop_ms": t["median_ms"], "repeatability": t["repeatability"], "psnr": m["psnr"], "ssim": m["ssim"],
                     "bicubic_psnr": m["bicubic_psnr"], "params": m["params"], "subnet": spec.hash})
    for r in rows:
        base = next(b for b in rows if b["seed"] == r["seed"] and b["model"] == "base")
        r["speedup_measured"] = base["measured_loop_ms"] / r["measured_loop_ms"]
        r["psnr_delta"] = r["psnr"] - base["psnr"]
    atomic_write_csv(RESULTS / "search_table51.csv", rows)
    sup = space_summary(preset)["supernet"]
    md = [
        "# Table 5.1 on the tiny preset (CPU, ONNX Runtime)",
        "",
        f"Machine: {machine()}; ORT threads {args.threads}; git {git_rev()}.",
        f"Seeds {args.seeds}; search {args.steps} bilevel steps ({args.warmup} warm-up) + {args.finetune} fine-tune steps; base model "
        f"{args.steps + args.finetune} steps; Adam lr {args.lr}, batch 4, 64x64 crops of the built-in photos.",
        f"Latency = the whole DDIM loop of {S} steps at batch 1. Budget = base table latency / {args.budget_factor} = {budget:.1f} ms "
        f"(penalty 'budget', lambda 1). Measured: median of {args.rounds} interleaved rounds (3 timed loops each) over all models.",
        f"PSNR/SSIM: DDIM 20 steps on {args.eval_images} test crops (bicubic PSNR {rows[0]['bicubic_psnr']:.2f} dB).",
        "",
        "Mean ± std over seeds:",
        "",
        "| model | softmax | MFLOPs/step ↓ | table loop ms ↓ | measured loop ms ↓ | speed-up vs base (measured) | PSNR ↑ | ΔPSNR vs base | SSIM ↑ | params ↓ |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| NAS supernet | - | {sup['flops'] / 1e6:.0f} | - | - | - | - | - | - | {sup['params']:,.0f} |",
    ]
    for name in ("base",) + VARIANTS:
        rs = [r for r in rows if r["model"] == name]
        f = lambda k, fmt: _ms(rs, k, fmt)  # noqa: E731
        md.append(f"| {'base SR3' if name == 'base' else 'NAS subnet'} | {'-' if name == 'base' else name} | {_ms([{'m': r['flops_per_step'] / 1e6} for r in rs], 'm', '{:.0f}')} | "
                  f"{f('table_loop_ms', '{:.1f}')} | {f('measured_loop_ms', '{:.1f}')} | {f('speedup_measured', '{:.2f}x')} | {f('psnr', '{:.2f}')} | "
                  f"{f('psnr_delta', '{:+.2f}')} | {f('ssim', '{:.3f}')} | {f('params', '{:,.0f}')} |")
    md += ["", "Per run:", "", "| seed | model | measured loop ms | repeatability | speed-up | PSNR | ΔPSNR | SSIM | subnet |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        md.append(f"| {r['seed']} | {r['model']} | {r['measured_loop_ms']:.1f} | {r['repeatability']:.1%} | {r['speedup_measured']:.2f}x | "
                  f"{r['psnr']:.2f} | {r['psnr_delta']:+.2f} | {r['ssim']:.3f} | {r['subnet']} |")
    print("\n".join(md))
    write("search_table51.md", "\n".join(md) + "\n")


def _ms(rs, key, fmt):
    vals = [r[key] for r in rs]
    mean = statistics.mean(vals)
    if len(vals) < 2:
        return fmt.format(mean)
    return f"{fmt.format(mean)} ± {fmt.format(statistics.stdev(vals)).rstrip('x')}"


if __name__ == "__main__":
    main()
