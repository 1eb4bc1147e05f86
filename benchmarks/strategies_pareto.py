"""Issue 14: the sample-based strategies on the Pareto benchmark of the search-quality protocol.

At one latency budget (a fraction of the base's 50-step loop by the cost table) each strategy searches
under one wall-clock budget with one quality estimator; the subnet it returns is then trained from
scratch exactly as benchmarks/search_pareto.py trains every architecture (rcai.evaluate.run_job: tiny,
800 steps, batch 8, lr 2e-3, cosine, seed 0, the primary quality metric) and its whole sampling loop
timed with ONNX Runtime (1 thread) in interleaved rounds beside the base (rcai.evaluate.measure_loops).
Beside them: the Pareto run's random subnets and DARTS searches at the same budget, read from its
results.jsonl (trained there with the same protocol).

Strategies run one after the other, training sequential (1 torch thread): the machine is shared.
Each finished strategy appends one line to <out>/results.jsonl; a re-run skips those, and a killed
training resumes from its checkpoint.
Usage: python benchmarks/strategies_pareto.py [--estimator zen] [--seconds 60] [--budget-frac 0.6]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from common import RESULTS, add_train_device, git_rev, load1, load_text, machine, write

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before rcai.evaluate imports torch
from rcai.evaluate import JobConfig, MatchedLatency, append, finished, measure_loops, records, run_job
from rcai.targets.sysinfo import load_average

STRATEGIES = ("grid", "random", "evolution", "area", "rl")


def search(s: str, args, budget_ms: float) -> dict:
    """One strategy's search (its result.json if it already finished)."""
    from rcai.proxies import ProxyConfig
    from rcai.search.config import AreaOptions, EvolutionOptions
    from rcai.search.strategies import StrategyConfig
    from rcai.search.strategies.run import run_strategy

    out = Path(args.out) / f"{s}-{args.estimator}-s{args.seed}" / "search"
    if (out / "result.json").exists():
        return json.loads((out / "result.json").read_text())
    cfg = StrategyConfig(strategy=s, preset="tiny", cost_table=args.table, proxy=args.estimator,
                         latency_budget_ms=budget_ms, steps_per_sample=args.steps_per_sample, evaluations=100000,
                         time_limit_s=args.seconds, seed=args.seed, evolution=EvolutionOptions(population=16, sample_size=4, crossover=0.2),
                         area=AreaOptions(pool=64, proxy=args.area_proxy),
                         proxy_config=ProxyConfig(supernet=args.supernet))
    _, r = run_strategy(cfg, out, resume=(out / "config.json").exists())
    return r


def pareto_rows(path: Path, frac: float) -> dict[str, list[dict]]:
    rows = [r for r in finished(path) if "quality" in r]
    out = {m: [r for r in rows if r["method"] == m and abs(r["budget_frac"] - frac) < 1e-9] for m in ("random", "searched")}
    return {**out, "base": [r for r in rows if r["method"] == "base"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--estimator", default="zen", help="quality estimator of every strategy (rcai/proxies)")
    ap.add_argument("--area-proxy", default="naswot", help="AREA's population-seeding proxy")
    ap.add_argument("--supernet", default="/work/main/runs/pareto-v2/searched-0.8-s0/search/supernet.pt", help="for --estimator inherited")
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    ap.add_argument("--seconds", type=float, default=60.0, help="wall-clock budget of each search")
    ap.add_argument("--budget-frac", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pareto", default="/work/main/runs/pareto-v2/results.jsonl", help="the search-quality run to compare with (read only)")
    ap.add_argument("--train-steps", type=int, default=800)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lr-schedule", default="cosine")
    ap.add_argument("--steps-per-sample", type=int, default=50)
    ap.add_argument("--table", default="latency_tables/cpu-tiny.csv")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="runs/strategies-pareto")
    ap.add_argument("--name", default="strategies_pareto")
    ap.add_argument("--note", default="", help="a sentence for the report (e.g. why this estimator)")
    add_train_device(ap)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from rcai.cost.load import load_cost_model
    from rcai.io import atomic_write_csv
    from rcai.presets import get_preset
    from rcai.space.subnet import SubnetSpec

    load_start = load_average()
    preset = get_preset("tiny")
    at = MatchedLatency(load_cost_model(args.table, preset, warn=lambda m: None), args.steps_per_sample)
    loop, base = at.loop, at.base
    budget = at.target(args.budget_frac)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "results.jsonl"
    done = {r["id"]: r for r in records(log)}
    for s in args.strategies:
        jid = f"{s}-{args.estimator}-s{args.seed}"
        if jid in done:
            continue
        r = search(s, args, budget)
        print(f"{jid}: best {r['best_score']:.4g}, {r['evaluations']} evals, {r['wall_s']:.1f} s; training", file=sys.stderr, flush=True)
        job = dict(id=jid, method=s, budget_frac=args.budget_frac, seed=args.seed, arch=r["choices"])
        rec = run_job(job, JobConfig.from_args(args))  # search_pareto's protocol: trained from scratch, quality metric
        rec.update(strategy=s, estimator=args.estimator, search_wall_s=r["wall_s"], evaluations=r["evaluations"],
                   proxy_evaluations=r["proxy_evaluations"], proposals=r["proposals"], rejected=r["rejected"], best_score=r["best_score"],
                   best_at=r["best_at"], load=load1())
        append(log, rec)
        done[jid] = rec
        print(f"{jid}: quality {rec['quality']:+.3f} dB", file=sys.stderr, flush=True)

    rows = [r for r in done.values() if r["budget_frac"] == args.budget_frac and r["strategy"] in args.strategies]
    pareto = pareto_rows(Path(args.pareto), args.budget_frac)
    base_rec = {"arch": SubnetSpec(preset, base).hash, "choices": base}
    timing = measure_loops(rows + pareto["random"] + pareto["searched"] + [base_rec], args.out, args.steps_per_sample, args.rounds)
    ms = lambda r: timing[r["arch"]]["median_ms"]  # noqa: E731
    for r in rows:
        r["table_loop_ms"], r["measured_loop_ms"], r["loop_repeatability"] = loop(r["choices"]), ms(r), timing[r["arch"]]["repeatability"]
    cols = ["strategy", "estimator", "seed", "search_wall_s", "evaluations", "proxy_evaluations", "rejected", "best_score", "best_at", "arch",
            "table_loop_ms", "measured_loop_ms", "loop_repeatability", "quality", "quality_lo", "quality_hi", "psnr_gain_db", "params", "seconds", "load"]
    rows.sort(key=lambda r: (r["estimator"] != args.estimator, r["estimator"], STRATEGIES.index(r["strategy"])))
    estimators = ", ".join(f"`{e}`" for e in dict.fromkeys(r["estimator"] for r in rows))
    atomic_write_csv(RESULTS / f"{args.name}.csv", [{c: r.get(c, "") for c in cols} for r in rows], cols)

    base_ms = ms(base_rec)
    lines = [
        "# Sample-based strategies on the Pareto benchmark (tiny, trained from scratch)", "",
        f"`benchmarks/strategies_pareto.py`, rcai {git_rev()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: {machine()}; "
        f"load average at start {load_text(load_start)}, at end "
        f"{load_text(load_average())}; 1 torch thread; the machine is shared with another "
        "training benchmark, so wall-clock budgets buy fewer evaluations than on an idle machine.", "",
        f"Budget: {args.budget_frac:.2f} x the base's {args.steps_per_sample}-step loop by the cost table `{args.table}` = {budget:.1f} ms "
        f"(the base measures {base_ms:.1f} ms in the same interleaved rounds). Each strategy: one estimator ({estimators}; one run each), "
        f"{args.seconds:.0f} s wall clock, seed {args.seed}; population 16, tournament 4, crossover 0.2; AREA seeds its population "
        f"with the best 16 of 64 random subnets by `{args.area_proxy}`; RL: soft reward (MNAS, γ = -0.07). The subnet each returns is "
        f"trained from scratch with the search-quality protocol (search_pareto.py `run_job`: {args.train_steps} steps, batch {args.batch}, "
        f"Adam lr {args.lr}, {args.lr_schedule} decay, seed {args.seed}) and scored by the primary quality metric (posterior-mean gain "
        f"over bicubic, dB, with its 95% interval over the evaluation images). Loops: ONNX Runtime, 1 thread, {args.rounds} interleaved "
        "rounds, median." + (f" {args.note}" if args.note else ""), "",
        "| strategy | estimator | search wall s | evaluations | best estimator score | table loop ms | measured loop ms | measured ÷ base measured | quality dB [95% CI] | sampled PSNR gain dB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ev = f"{r['evaluations']}" + (f" (+{r['proxy_evaluations']} seeding)" if r["proxy_evaluations"] else "")
        lines.append(f"| {r['strategy']} | {r['estimator']} | {r['search_wall_s']:.1f} | {ev} | {r['best_score']:.4g} | {r['table_loop_ms']:.1f} | "
                     f"{r['measured_loop_ms']:.1f} | {r['measured_loop_ms'] / base_ms:.2f} | {r['quality']:+.3f} [{r['quality_lo']:+.3f}, {r['quality_hi']:+.3f}] | {r['psnr_gain_db']:+.2f} |")
    rnd, srch = pareto["random"], pareto["searched"]
    lines += ["", f"Beside them, from the search-quality run `{args.pareto}` at the same budget fraction (same training protocol; "
              "read when this report was written):", "", "| reference | n | quality dB | table loop ms | measured loop ms (median) |", "|---|---:|---:|---:|---:|"]
    if rnd:
        rq = sorted(r["quality"] for r in rnd)
        lines.append(f"| random subnets at ±5% of the budget: median / best / worst | {len(rnd)} | {statistics.median(rq):+.3f} / {rq[-1]:+.3f} / {rq[0]:+.3f} | "
                     f"{statistics.median(loop(r['choices']) for r in rnd):.1f} | {statistics.median(ms(r) for r in rnd):.1f} |")
    else:
        lines.append("| random subnets at this budget | 0 | not yet in the file | | |")
    if srch:
        sq = [r["quality"] for r in srch]
        lines.append(f"| DARTS (`rcai search` defaults), seeds {', '.join(str(r['seed']) for r in srch)}: mean (min..max) | {len(srch)} | "
                     f"{statistics.mean(sq):+.3f} ({min(sq):+.3f}..{max(sq):+.3f}) | {statistics.mean(loop(r['choices']) for r in srch):.1f} | "
                     f"{statistics.mean(ms(r) for r in srch):.1f} |")
    else:
        lines.append("| DARTS searches at this budget | 0 | not yet in the file | | |")
    if pareto["base"]:
        bq = [r["quality"] for r in pareto["base"]]
        lines.append(f"| the base (no search, 1.0 x budget), seeds {', '.join(str(r['seed']) for r in pareto['base'])}: mean (min..max) | {len(bq)} | "
                     f"{statistics.mean(bq):+.3f} ({min(bq):+.3f}..{max(bq):+.3f}) | {loop(base):.1f} | {base_ms:.1f} |")
    reps = sorted(timing[a]["repeatability"] for a in {r["arch"] for r in rows + rnd + srch} | {base_rec["arch"]})
    lines += ["", f"Timing repeatability (|median of the first rounds − median of the last| / median, per loop, in the same session): "
              f"median {statistics.median(reps):.0%}, max {reps[-1]:.0%} over {len(reps)} loops; a loop difference below that is noise of "
              "the shared machine. Loops measured in an earlier session are kept (`timing.json`)."]
    best = max(rows, key=lambda r: r["quality"])
    read = [f"Best trained quality: {best['strategy']} with `{best['estimator']}`, {best['quality']:+.3f} dB at {best['measured_loop_ms']:.1f} ms measured; "
            f"the {len(rows)} strategy runs span {min(r['quality'] for r in rows):+.3f} .. {best['quality']:+.3f} dB"]
    if rnd:
        read.append(f"{sum(r['quality'] >= statistics.median(rq) for r in rows)} of {len(rows)} reach the random median, "
                    f"{sum(r['quality'] >= rq[-1] for r in rows)} the best random subnet")
    if srch:
        read.append(f"{sum(r['quality'] >= statistics.mean(sq) for r in rows)} of {len(rows)} reach the DARTS mean")
    if len(pareto["base"]) > 1:
        read.append(f"for scale, the base trained with {len(bq)} seeds has sd {statistics.stdev(bq):.3f} dB")
    lines += ["", "Reading: " + "; ".join(read) + ". One seed per strategy and one training seed per subnet: a difference smaller than "
              "the training-seed spread of the metric is not evidence that one strategy (or estimator) is better.", "",
              f"Per strategy: `{args.name}.csv`; run folders (search journal, training) under `{args.out}`.", ""]
    print("\n".join(lines))
    write(f"{args.name}.md", "\n".join(lines))


if __name__ == "__main__":
    main()
