"""Whole-loop estimate error of the cost table and of the GNN predictor over several subnets.

Subnets of the preset: base, smallest and largest by FLOPs, and N random ones (random weights;
timing does not depend on them). Their ONNX Runtime loops are measured in interleaved rounds;
estimate = per-step estimate x steps; error % = (estimate - measured) / measured.

    python benchmarks/bench_estimates.py --table latency_tables/cpu-tiny.csv [--predictor P]
        [--preset tiny] [--random 4] [--sampler ddim --steps 20] [--threads 1] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import onnxruntime as ort

from rcai.deploy import BenchConfig
from rcai.deploy.accuracy import estimate_errors, study_subnets
from rcai.io import atomic_write_csv, atomic_write_text
from rcai.presets import get_preset
from rcai.targets.sysinfo import cpu_model

from common import load1

RESULTS = Path(__file__).parent / "results"


def report(rows: list[dict], summary: dict, args, load: tuple[float, float]) -> str:
    sources = [s for s in ("table", "predictor") if s in summary]
    lines = [
        f"# Whole-loop latency: estimate vs measurement ({args.preset} preset)",
        "",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()}; onnxruntime {ort.__version__}; "
        f"threads = {args.threads}; shared machine, 1-min load {load[0]:.2f} before / {load[1]:.2f} after.",
        f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. Loop: {args.sampler} {args.steps} steps, batch 1; "
        f"{args.rounds} interleaved rounds (median of round medians of 3 loops each).",
        f"- Table: `{args.table}`" + (f"; predictor: `{args.predictor}`" if args.predictor else "; no predictor given"),
        "",
        "| subnet | GFLOP/step | measured loop (ms) | repeatability | " + " | ".join(f"{s} (ms) | {s} error" for s in sources) + " |",
        "|---|---:|---:|---:|" + "---:|---:|" * len(sources),
    ]
    for r in rows:
        cells = "".join(f" {r[f'{s}_loop_ms']:.1f} | {r[f'{s}_error_pct']:+.1f}% |" for s in sources)
        lines.append(f"| {r['subnet']} | {r['flops'] / 1e9:.3f} | {r['measured_loop_ms']:.1f} | {r['repeatability']:.1%} |{cells}")
    lines.append("")
    for s in sources:
        m = summary[s]
        lines.append(f"- {s}: mean |error| {m['mean_abs_error_pct']:.1f}%, max |error| {m['max_abs_error_pct']:.1f}%, "
                     f"mean signed error {m['mean_error_pct']:+.1f}%, Spearman rank correlation {m['spearman']:.2f}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", required=True)
    ap.add_argument("--predictor", default=None)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--random", type=int, default=4, help="random subnets besides base / min / max FLOPs")
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_estimates")
    args = ap.parse_args()
    cfg = BenchConfig(threads=args.threads, sampler=args.sampler, steps=args.steps, image="random", table=args.table, predictor=args.predictor, psnr=False)
    subnets = study_subnets(get_preset(args.preset), args.random, args.seed)
    load0 = load1()
    with tempfile.TemporaryDirectory() as tmp:
        rows, summary = estimate_errors(subnets, cfg, tmp, rounds=args.rounds)
    text = report(rows, summary, args, (load0, load1()))
    atomic_write_text(args.out.with_suffix(".md"), text)
    atomic_write_csv(args.out.with_suffix(".csv"), rows)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(summary, indent=2, default=str) + "\n")
    print(text)


if __name__ == "__main__":
    main()
