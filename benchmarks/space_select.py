"""Issue 14: TinyNAS space selection on tiny — width multiplier x input resolution under a peak
activation-memory constraint, chosen by the FLOPs CDF of the subnets that satisfy it
(rcai/search/space_select.py). Analytic counts only: no timing, so no machine dependence.

Usage: python benchmarks/space_select.py [--max-memory-mib 1.5] [--samples 500]
"""
from __future__ import annotations

import argparse
import time

from common import RESULTS, git_rev, write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-memory-mib", type=float, default=1.5)
    ap.add_argument("--widths", type=float, nargs="+", default=[0.5, 0.75, 1.0, 1.25, 1.5])
    ap.add_argument("--resolutions", type=int, nargs="+", default=[48, 64, 80])
    ap.add_argument("--samples", type=int, default=500)
    args = ap.parse_args()
    from rcai.search.space_select import plot_cdfs, select_space
    from rcai.presets import get_preset

    limit = args.max_memory_mib * 2**20
    t0 = time.perf_counter()
    best, stats = select_space(get_preset("tiny"), args.widths, args.resolutions, limit, args.samples)
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot_cdfs(stats, best, RESULTS / "space_select.png", limit)
    lines = ["# TinyNAS space selection on tiny", "",
             f"`benchmarks/space_select.py`, rcai {git_rev()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; analytic FLOPs and "
             f"peak activation memory (largest op, batch 1), {args.samples} uniform random subnets per space (seed 0), "
             f"{time.perf_counter() - t0:.1f} s in all.", "",
             f"Constraint: peak activation memory <= {args.max_memory_mib:g} MiB. Chosen: **width {best.width:g}, resolution "
             f"{best.resolution}** (base channels {best.preset.base_channels}), mean {best.mean_flops / 1e6:.0f} MFLOPs among the subnets "
             f"that fit.", "",
             "| width | HR px | base ch | subnets that fit | mean MFLOPs (fit) | top-20% threshold MFLOPs |", "|---:|---:|---:|---:|---:|---:|"]
    for s in sorted(stats, key=lambda s: -s.mean_flops):
        lines.append(f"| {s.width:g} | {s.resolution} | {s.preset.base_channels} | {s.satisfied:.0%} | {s.mean_flops / 1e6:.0f} | "
                     f"{s.quantile(0.8) / 1e6:.0f} |")
    lines += ["", "![FLOPs CDF per space](space_select.png)", "",
              "As in TinyNAS, the rule assumes more FLOPs within the constraint means more capacity; here it is not validated by "
              "training subnets of each space (the spaces other than w1-r64 have no cost table or trained models)."]
    print("\n".join(lines))
    write("space_select.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
