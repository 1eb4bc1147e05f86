"""Issue 3: time to profile the tiny preset, agreement of two profiling runs, and the table sum
against whole subnets measured end to end.

Usage: python benchmarks/profile_tables.py [--table latency_tables/cpu-tiny.csv]
         [--data latency_tables/cpu-tiny-archs/dataset.csv] [--threads 1]
Profiles the preset twice into a temp folder (timed), compares the two runs op by op, then checks
the shipped table against the shipped subnet dataset (rcai profile --archs) and plots it.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import RESULTS, git_rev, machine, scatter_vs_measured, write

from rcai.cost.check import check_table
from rcai.cost.profile import OP_MEASURE, ProfileConfig, profile_ops
from rcai.targets import TargetSpec
from rcai.cost.table import CostTable


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", default="latency_tables/cpu-tiny.csv")
    ap.add_argument("--data", default="latency_tables/cpu-tiny-archs/dataset.csv")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--preset", default="tiny")
    args = ap.parse_args()
    cfg = ProfileConfig(preset=args.preset, target=TargetSpec(threads=args.threads), measure=OP_MEASURE)
    runs, secs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(2):
            t0 = time.perf_counter()
            runs.append(profile_ops(cfg, Path(tmp) / f"run{i}.csv", progress=False))
            secs.append(time.perf_counter() - t0)
    keys = sorted(runs[0].rows)
    ratios = [runs[1].rows[k]["median_ms"] / runs[0].rows[k]["median_ms"] for k in keys if runs[0].rows[k]["median_ms"] > 0]
    dev = sorted(abs(r - 1) for r in ratios)
    within = lambda x: sum(d <= x for d in dev) / len(dev)  # noqa: E731
    md = [
        f"# Cost tables: profiling time, run-to-run agreement, table sum vs measured ({args.preset}, ONNX Runtime CPU)",
        "",
        f"Machine: {machine()}; ORT threads {args.threads}; git {git_rev()}.",
        "",
        "## Profiling the preset",
        f"- {len(keys)} distinct ops; wall time per full profile (export + measure + FLOPs): {secs[0]:.1f} s and {secs[1]:.1f} s.",
        f"- per-call overhead (empty model): {runs[0].overhead_ms * 1000:.1f} us and {runs[1].overhead_ms * 1000:.1f} us.",
        "",
        "## Two profiling runs, op by op (median of run 2 / median of run 1)",
        f"- median |ratio - 1| = {statistics.median(dev):.1%}, 90th percentile {dev[int(0.9 * (len(dev) - 1))]:.1%}, max {dev[-1]:.1%}",
        f"- ops within 5%: {within(0.05):.0%}, within 10%: {within(0.10):.0%}",
        "",
    ]
    if Path(args.table).exists() and Path(args.data).exists():
        res = check_table(CostTable.load(args.table), args.data)
        arrays = res.pop("_arrays")
        md += [
            f"## Table sum vs whole subnets measured end to end ({args.table} vs {args.data})",
            "",
            "| estimate | n | Acc±10% | Acc±5% | Spearman | MAPE | bias (median est/meas − 1) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        labels = {"table_sum": "table sum (overhead once)", "raw_sum": "raw sum of isolated ops", "repeatability": "re-measurement (round 2 vs round 1)"}
        for k in ("table_sum", "raw_sum", "repeatability"):
            if k in res:
                r = res[k]
                md.append(f"| {labels[k]} | {r['n']} | {r['acc_10']:.1%} | {r['acc_5']:.1%} | {r['spearman']:.3f} | {r['mape']:.1%} | {r['bias']:+.1%} |")
        md += ["", "![table sum vs measured](table_vs_measured.png)"]
        scatter_vs_measured(arrays["measured"], {"table sum (overhead once)": arrays["table_sum"], "raw sum": arrays["raw_sum"]}, RESULTS / "table_vs_measured.png")
    print("\n".join(md))
    write("profile_tables.md", "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
