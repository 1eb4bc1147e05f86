"""Issue 14: the sample-based strategies side by side on tiny, one latency budget, one wall-clock
budget each, a cheap proxy as the quality estimator (the strategies' own work, not training, is what
is compared here). Per strategy and seed: best proxy score found, its table loop latency and budget
use, evaluations (and AREA's seeding-proxy evaluations), proposals rejected, wall time. Each
strategy runs in the same process one after the other (interleaved over seeds), 1 torch thread.

Usage: python benchmarks/strategies.py [--proxy synflow] [--seconds 40] [--budget-frac 0.6] [--seeds 0 1]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

from common import git_rev, load_text, machine, write

from rcai.targets.sysinfo import load_average

STRATEGIES = ("grid", "random", "evolution", "area", "rl")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", default="synflow")
    ap.add_argument("--area-proxy", default="naswot")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--budget-frac", type=float, default=0.6)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", default="runs/strategies")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from rcai.cost.load import load_cost_model
    from rcai.search.config import AreaOptions, EvolutionOptions
    from rcai.search.strategies import StrategyConfig
    from rcai.search.strategies.run import run_strategy
    from rcai.presets import get_preset

    load_start = load_average()
    table_path = "latency_tables/cpu-tiny.csv"
    table = load_cost_model(table_path, get_preset("tiny"), warn=lambda m: None)
    base = table.estimate(table.space.base_arch(), 50).loop_ms
    budget = args.budget_frac * base
    rows = []
    for seed in args.seeds:
        for s in STRATEGIES:
            out = Path(args.out) / f"{s}-s{seed}"
            shutil.rmtree(out, ignore_errors=True)
            cfg = StrategyConfig(strategy=s, preset="tiny", cost_table=table_path, proxy=args.proxy,
                                 latency_budget_ms=budget, evaluations=100000, time_limit_s=args.seconds, seed=seed,
                                 evolution=EvolutionOptions(population=16, sample_size=4, crossover=0.2), area=AreaOptions(pool=64, proxy=args.area_proxy))
            t0 = time.perf_counter()
            _, r = run_strategy(cfg, out)
            rows.append({**r, "seed": seed, "total_s": time.perf_counter() - t0})
            print(f"{s} s{seed}: best {r['best_score']:.4f} at proposal {r['best_at']}, loop {r['table']['loop_ms']:.1f} ms, "
                  f"{r['evaluations']} evals, {r['wall_s']:.1f} s", file=sys.stderr, flush=True)
    lines = [
        "# Sample-based strategies on tiny (one latency budget, one wall-clock budget)", "",
        f"`benchmarks/strategies.py`, rcai {git_rev()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: {machine()}; "
        f"load average at start {load_text(load_start)}, at end "
        f"{load_text(load_average())}; 1 torch thread; the machine is shared.", "",
        f"Estimator: `{args.proxy}` (rcai/proxies). Budget: {args.budget_frac:.2f} x the base's 50-step loop by the cost table = "
        f"{budget:.1f} ms. Wall-clock budget {args.seconds:.0f} s per run. Population 16, tournament 4, crossover 0.2; AREA seeds "
        f"its population with the best 16 of 64 random subnets by `{args.area_proxy}`; RL: soft reward (MNAS, γ = -0.07).", "",
        "| strategy | seed | best score | found at proposal | table loop ms | budget use | evaluations | seeding evals | rejected | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['strategy']} | {r['seed']} | {r['best_score']:.4f} | {r['best_at']} | {r['table']['loop_ms']:.1f} | "
                     f"{r['table']['loop_ms'] / budget:.0%} | {r['evaluations']} | {r['proxy_evaluations']} | {r['rejected']} | {r['wall_s']:.1f} |")
    lines += ["", "Mean best score over seeds: " + ", ".join(
        f"{s} {statistics.mean(r['best_score'] for r in rows if r['strategy'] == s):.4f}" for s in STRATEGIES) + ".", "",
        "The score is the proxy's, not trained quality: which subnet a proxy prefers is only as good as the proxy's rank "
        "correlation with trained quality (results/proxies.md). Training the found subnets (the search-quality protocol) is not done here."]
    print("\n".join(lines))
    write("strategies.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
