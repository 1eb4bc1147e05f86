"""Issue 31: the bilevel search (`rcai search --strategy darts`) in fp32 and in bf16 on this CPU.

Two engines of the tiny supernet (gdas, batch 8, a budget of 150 ms, alpha moving from the first
step), one torch thread, built alike and stepped in interleaved rounds of 10 bilevel steps (a
weight step and an alpha step each), the order alternating per round; steps/s per round, medians
and their ratio. Speed only: whether bf16 changes which subnet the search picks is not measured here.

Usage: python benchmarks/darts_precision.py [--rounds 8]
"""
from __future__ import annotations

import argparse
import statistics
import time

from common import git_rev, load1, machine, write


def engine(precision: str, table: str):
    from rcai.proxies import ProxyConfig
    from rcai.search.config import DartsOptions
    from rcai.search.strategies.base import StrategyConfig
    from rcai.search.strategies.darts.engine import build_bilevel
    from rcai.search.strategies.run import build_problem

    cfg = StrategyConfig(strategy="darts", preset="tiny", cost_table=table, latency_budget_ms=150.0, proxy_config=ProxyConfig(),
                         darts=DartsOptions(warmup_steps=0, batch_size=8, train_device="cpu", train_precision=precision))
    return build_bilevel(cfg, build_problem(cfg))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10, help="bilevel steps per round")
    ap.add_argument("--cost-table", default="latency_tables/cpu-tiny.csv")
    ap.add_argument("--note", default="", help="a sentence for the report (what else ran on the machine)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    started, load0 = machine(), load1()
    engines = {p: engine(p, args.cost_table) for p in ("fp32", "bf16")}
    for e in engines.values():  # warm-up: first-call allocations, oneDNN's kernel choice
        for s in range(3):
            e.step(s)
    rate: dict[str, list[float]] = {p: [] for p in engines}
    k = 3
    for r in range(args.rounds):
        for p in (("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")):
            t = time.perf_counter()
            for s in range(args.steps):
                engines[p].step(k + s)
            rate[p].append(args.steps / (time.perf_counter() - t))
        k += args.steps
        print(f"round {r}: " + " ".join(f"{p} {v[-1]:.2f}/s" for p, v in rate.items()), flush=True)
    med = {p: statistics.median(v) for p, v in rate.items()}
    ratios = [b / f for f, b in zip(rate["fp32"], rate["bf16"])]
    L = ["# The bilevel search in bf16 vs fp32 on this CPU (issue 31)", "",
         f"Machine: {started}; load avg {load0:.2f} at the start, {load1():.2f} at the end; rcai {git_rev()}. "
         f"Tiny supernet (gdas, batch 8, budget 150 ms), one torch thread, {args.rounds} interleaved rounds of {args.steps} bilevel "
         "steps (a weight and an alpha step each) per precision, the order alternating. " + (args.note + " " if args.note else "") +
         "Reproduce: `python benchmarks/darts_precision.py`.", "",
         "| precision | bilevel steps/s, median | per round |", "|---|---:|---|"]
    L += [f"| {p} | {med[p]:.2f} | {' '.join(f'{v:.2f}' for v in rate[p])} |" for p in rate]
    L += ["", f"bf16 / fp32: **{med['bf16'] / med['fp32']:.2f}x** (median of the medians; per-round ratios "
          f"{min(ratios):.2f}-{max(ratios):.2f}). `--train-precision auto` takes bf16 for the bilevel search on a CPU with native "
          "bf16, as for trainings from scratch. Speed only: the picks of the search in the two precisions are not compared here."]
    print(write("darts_precision.md", "\n".join(L) + "\n"))


if __name__ == "__main__":
    main()
