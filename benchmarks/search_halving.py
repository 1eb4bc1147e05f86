"""Issue 20 §3 on the signal protocol: does `rcai search --strategy halving` beat what a user gets
without it, at equal training compute?

Per budget (a fraction of the base's whole 50-step loop by the shipped, loop-calibrated cost table):
  halving   `rcai search --strategy halving` (default rungs 800/1600, 2 brackets of 8, train seed 0),
            one run per search seed; its pick is then trained again with seeds 1 and 2
  knapsack  `rcai search --strategy knapsack` with the additive quality model fitted on the signal
            study's 12 subnets x 3 seeds (results/signal.csv, same protocol): trained with seeds 1, 2
  random    `--random` subnets within +-5 % of the budget by the table, each trained with seeds 0, 1
  random search of equal cost: the best random subnet by its seed-0 training (as many random
            subnets as the halving search's cost in full trainings), scored by its seed-1 training
plus the base and the cheapest subnet (seeds 0/1/2 from results/signal.csv). Every training is
`rcai.train.protocol.SIGNAL` from scratch; quality is the primary metric (posterior-mean PSNR gain
over bicubic on the 64 held-out crops, dB). A pick's seed-0 score selected it (winner's curse), so
picks are judged on seeds 1 and 2 only; random subnets, never selected, on seeds 0 and 1.

Resumable: each training is its own run folder under --out, each search a run folder.
Usage: python benchmarks/search_halving.py [--budgets 0.6] [--search-seeds 0] [--random 12] [--jobs 2] [--darts temperature]
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

from common import RESULTS, add_train_device, git_rev, load1, machine, write

TABLE = "latency_tables/cpu-tiny.csv"
EVAL_SEEDS = {"pick": (1, 2), "random": (0, 1)}


def signal_rows() -> list[dict]:
    """The signal study's 1600-step trainings: {name, choices, seed, quality}."""
    from rcai.train.protocol import SIGNAL

    plan = json.loads((RESULTS / "signal_plan.json").read_text())
    with open(RESULTS / "signal.csv") as f:
        return [{"name": r["subnet"], "choices": plan[r["subnet"]]["choices"], "seed": int(r["seed"]), "quality": float(r["quality_db"])}
                for r in csv.DictReader(f) if int(r["step"]) == SIGNAL.steps]


def train_job(payload: tuple[dict, int, str, str, str]) -> dict:
    """One (subnet, seed) trained to the SIGNAL protocol, in an executor's worker, on the device the executor placed it."""
    choices, seed, out, device, precision = payload
    from rcai.presets import get_preset
    from rcai.space.subnet import SubnetSpec
    from rcai.train.protocol import SIGNAL, train_to

    spec = SubnetSpec(get_preset("tiny"), choices)
    run = Path(out) / "runs" / f"{spec.hash}-s{seed}"
    reused = (run / "train" / "metrics.json").exists()  # finished by an earlier run of this benchmark (train_to reads it back)
    t0 = time.process_time()
    m = train_to(spec, seed, run, SIGNAL, samples=False, device=device, precision=precision)
    return {"arch": spec.hash, "seed": seed, "quality": m["quality"]["gain_db"], "cpu_s": time.process_time() - t0, "reused": reused}


def plan(args, out: Path) -> tuple[list[dict], list[tuple[dict, int]]]:
    """Searches run now (they train their own candidates); returns the rows to report and the trainings left."""
    from rcai.cost.load import load_cost_model
    from rcai.evaluate import MatchedLatency
    from rcai.proxies.additive import AdditiveQuality
    from rcai.search.config import HalvingOptions
    from rcai.search.strategies.base import StrategyConfig
    from rcai.search.strategies.run import run_knapsack, run_strategy
    from rcai.presets import get_preset

    preset = get_preset("tiny")
    at = MatchedLatency(load_cost_model(TABLE, preset), 50)
    loop, base_ms = at.loop, at.loop(at.base)
    model_path = out / "quality-signal.json"
    if not model_path.exists():
        AdditiveQuality.fit(preset, signal_rows(), source="benchmarks/results/signal.csv (1600 steps)").save(model_path)
    rows, todo = [], []
    for frac in args.budgets:
        budget = frac * base_ms
        for ss in args.search_seeds:
            run = out / f"halving-{frac}-s{ss}"
            print(f"[{time.strftime('%H:%M:%S')}] halving search, budget {frac} x base, search seed {ss}", flush=True)
            cfg = StrategyConfig(strategy="halving", preset="tiny", cost_table=TABLE, latency_budget_ms=budget, seed=ss,
                                 halving=HalvingOptions(jobs=args.jobs, train_device=args.train_device, train_precision=args.train_precision))
            _, s = run_strategy(cfg, run, resume=(run / "config.json").exists())
            steps = sum(int(r.get("steps", 0)) for r in _trained(run))
            rows.append({"budget": frac, "method": "halving", "search_seed": ss, "choices": s["choices"], "cost_trainings": steps / cfg.halving.protocol.steps})
        if args.darts:  # the report's supernet search; its pick is then trained from scratch like the others
            from rcai.search.config import DartsOptions
            from rcai.train.evaluate import EvalConfig

            run = out / f"darts-{args.darts}-{frac}"
            print(f"[{time.strftime('%H:%M:%S')}] darts ({args.darts}) search, budget {frac} x base", flush=True)
            t0 = time.process_time()
            darts = DartsOptions(softmax=args.darts, finetune_steps=0, eval=EvalConfig(steps=2, max_images=1),
                                 train_device=args.train_device, train_precision=args.train_precision)  # only its choices are used
            cfg = StrategyConfig(strategy="darts", preset="tiny", cost_table=TABLE, latency_budget_ms=budget, seed=0, darts=darts)
            _, s = run_strategy(cfg, run, resume=(run / "config.json").exists())
            cpu = run / "search_cpu_s.txt"  # the first (uninterrupted) run's cost; a resumed replay costs nothing
            if not cpu.exists():
                cpu.write_text(f"{time.process_time() - t0:.1f}\n")
            rows.append({"budget": frac, "method": f"darts-{args.darts}", "choices": s["choices"], "cost_trainings": 0.0,
                         "search_cpu_s": float(cpu.read_text())})
        _, s = run_knapsack("tiny", TABLE, str(model_path), budget, 50, out / f"knapsack-{frac}")
        rows.append({"budget": frac, "method": "knapsack", "choices": s["choices"], "cost_trainings": 0.0})
        cost = max(r["cost_trainings"] for r in rows if r["method"] == "halving" and r["budget"] == frac)
        n = max(args.random, round(cost))
        for i, a in enumerate(at.random(frac, n, seed=7000 + round(frac * 1000))):
            rows.append({"budget": frac, "method": "random", "index": i, "choices": a})
    for r in rows:
        r["table_frac"] = loop(r["choices"]) / base_ms
        todo += [(r["choices"], s) for s in EVAL_SEEDS["random" if r["method"] == "random" else "pick"]]
    return rows, todo


def _trained(run: Path) -> list[dict]:
    """Steps trained per candidate of a halving run (the last evaluated step of each training folder)."""
    from rcai.train.protocol import curve

    return [{"arch": d.name, "steps": max(curve(d), default=0)} for d in sorted((run / "trainings").iterdir()) if d.is_dir()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.6])
    ap.add_argument("--search-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--random", type=int, default=12, help="random subnets per budget (at least the halving cost in trainings)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--darts", default=None, help="also the DARTS strategy with this --softmax (e.g. temperature, the best variant of search_pareto_temperature.md)")
    ap.add_argument("--out", default="benchmarks/.cache/halving")
    ap.add_argument("--name", default="search_halving", help="results/NAME.md and .csv (another name keeps earlier budgets' files)")
    add_train_device(ap)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = machine()
    t0 = time.time()
    rows, todo = plan(args, out)
    todo = list(dict.fromkeys((json.dumps(c, sort_keys=True), s) for c, s in todo))
    from rcai.search.executors import make_executor

    results = {}
    print(f"[{time.strftime('%H:%M:%S')}] {len(todo)} trainings on {args.jobs} processes ({args.train_device})", flush=True)
    with make_executor("local", args.jobs, threads=1) as pool:
        payloads = [(json.loads(c), s, str(out), pool.place(args.train_device, i), args.train_precision) for i, (c, s) in enumerate(todo)]
        for k, r in enumerate(pool.map(train_job, payloads)):
            results[(r["arch"], r["seed"])] = r
            print(f"[{time.strftime('%H:%M:%S')}] {k + 1}/{len(todo)} {r['arch']} s{r['seed']}: {r['quality']:+.3f} dB", flush=True)
    report(rows, results, started, args, time.time() - t0)


def report(rows: list[dict], results: dict, started: str, args, wall_s: float) -> None:
    from rcai.presets import get_preset
    from rcai.space.subnet import SubnetSpec
    from rcai.stats import gap_to_median, paired_diff

    preset = get_preset("tiny")
    sig: dict[str, dict[int, float]] = {}
    sig_frac = json.loads((RESULTS / "signal_plan.json").read_text())
    for r in signal_rows():
        sig.setdefault(r["name"], {})[r["seed"]] = r["quality"]
    ref = {m: {"quality": sig[m], "table_frac": sig_frac[m]["frac"]} for m in ("base", "cheapest")}
    for r in rows:
        h = SubnetSpec(preset, r["choices"]).hash
        r["arch"] = h
        r["quality"] = {s: results[(h, s)]["quality"] for s in EVAL_SEEDS["random" if r["method"] == "random" else "pick"] if (h, s) in results}
    csv_rows = [{"budget": r["budget"], "method": r["method"] + (f"-s{r['search_seed']}" if "search_seed" in r else f"-{r['index']}" if "index" in r else ""),
                 "arch": r["arch"], "table_frac": f"{r['table_frac']:.3f}", **{f"q_s{s}": f"{q:.4f}" for s, q in r["quality"].items()}}
                for r in rows]
    csv_rows += [{"budget": "", "method": m, "arch": "", "table_frac": f"{v['table_frac']:.3f}", **{f"q_s{s}": f"{q:.4f}" for s, q in v["quality"].items()}}
                 for m, v in ref.items()]
    fields = ["budget", "method", "arch", "table_frac", "q_s0", "q_s1", "q_s2"]
    with open(RESULTS / f"{args.name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(csv_rows)

    mean = lambda q: statistics.fmean(q.values())  # noqa: E731
    fmt = lambda d: f"{d['diff']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"  # noqa: E731
    L = ["# Halving search vs the trivial answers, on the signal protocol (issue 20 §3)", "",
         f"Machine: {started}; load avg at the end {load1():.2f}; rcai {git_rev()}; wall {wall_s / 60:.0f} min, "
         f"{sum(not r.get('reused') for r in results.values())} of {len(results)} trainings run now (the others read from the run folders "
         "an earlier run of this benchmark finished, under `--out`). "
         f"Budgets {args.budgets} x the base's 50-step loop by `{TABLE}`; search seeds {args.search_seeds}; every subnet trained from scratch "
         "with `rcai.train.protocol.SIGNAL` (1600 steps, batch 8, constant lr 2e-3, EMA 0.998); quality = posterior-mean gain over bicubic "
         "on the 64 held-out crops (dB). Picks are scored on training seeds 1 and 2 (their seed 0 selected them), random subnets on seeds 0 "
         f"and 1; base and cheapest: seeds 0/1/2 of results/signal.csv. Reproduce: `python benchmarks/search_halving.py --budgets {' '.join(map(str, args.budgets))}"
         f"{' --darts ' + args.darts if args.darts else ''} --name {args.name}`.", ""]
    for frac in args.budgets:
        here = [r for r in rows if r["budget"] == frac]
        rnd = [r for r in here if r["method"] == "random" and len(r["quality"]) == 2]
        rnd_means = [mean(r["quality"]) for r in rnd]
        cost = max(r["cost_trainings"] for r in here if r["method"] == "halving")
        N = min(len(rnd), round(cost))
        best = max(rnd[:N], key=lambda r: r["quality"][0])  # random search of equal cost: chosen on seed 0
        L += [f"## Budget {frac} x base", "",
              "| row | subnet | table loop (x base) | quality per seed (dB) | mean (dB) |", "|---|---|---:|---|---:|"]
        for r in [r for r in here if r["method"] != "random"]:
            L.append(f"| {r['method']}{' s' + str(r['search_seed']) if 'search_seed' in r else ''} | {r['arch']} | {r['table_frac']:.2f} | "
                     + " ".join(f"s{s} {q:+.3f}" for s, q in r["quality"].items()) + f" | {mean(r['quality']):+.3f} |")
        L.append(f"| random search, best of {N} by seed 0 | {best['arch']} | {best['table_frac']:.2f} | s1 {best['quality'][1]:+.3f} | {best['quality'][1]:+.3f} |")
        L.append(f"| random, median of {len(rnd)} (each mean of s0, s1) | | {statistics.median(r['table_frac'] for r in rnd):.2f} | "
                 f"range {min(rnd_means):+.3f} .. {max(rnd_means):+.3f} | {statistics.median(rnd_means):+.3f} |")
        for m, v in ref.items():
            L.append(f"| {m} | | {v['table_frac']:.2f} | " + " ".join(f"s{s} {q:+.3f}" for s, q in v["quality"].items()) + f" | {mean(v['quality']):+.3f} |")
        L += ["", "Differences (dB, 95 % interval): vs the median random subnet, a bootstrap over the random subnets and the seeds; "
              "vs the cheapest and vs random search, paired on the common training seeds.", "",
              "| pick | - median random | - random search (seed 1) | - cheapest (seeds 1, 2) |", "|---|---:|---:|---:|"]
        for r in [r for r in here if r["method"] in ("halving", "knapsack") or r["method"].startswith("darts")]:
            g = gap_to_median(list(r["quality"].values()), [list(x["quality"].values()) for x in rnd])
            vs_rs = paired_diff({1: r["quality"][1]}, {1: best["quality"][1]}) if 1 in r["quality"] else None
            vs_ch = paired_diff(r["quality"], ref["cheapest"]["quality"])
            L.append(f"| {r['method']}{' s' + str(r['search_seed']) if 'search_seed' in r else ''} | {fmt(g)} | "
                     f"{vs_rs['diff']:+.3f} (one seed) | {fmt(vs_ch)} |")
        L.append(f"\nCost: the halving search {cost:.1f} full trainings (train seed 0), random search of equal cost {N} trainings; "
                 "the knapsack pick costs no training beyond the 36 trainings of the signal study its quality model was fitted on"
                 + "".join(f"; the {r['method']} search {r['search_cpu_s'] / 60:.0f} CPU-minutes of supernet training (its pick then trained "
                           "from scratch with seeds 1, 2)" for r in here if "search_cpu_s" in r) + ".")
        L.append("")
    write(f"{args.name}.md", "\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
