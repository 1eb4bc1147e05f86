"""Issue 39, search quality: does a search over a one-shot supernet pick better subnets than random
search, the uniform subnet and the median random subnet of its latency, at a fraction of their cost?

Per target (fp32 and INT8 CPU tables, latency_tables/cpu-tiny*.csv) and budget (a fraction of the
base's 50-step loop on that table), for each supernet (one per training seed):
  oneshot-sK        `rcai search --strategy oneshot --supernet K` (seconds: no training); its pick is
                    then trained from scratch with seeds 1 and 2 (the supernet never saw them)
and once per (target, budget), from the pool of random subnets within [0.9, 1.0] x the budget
(oneshot_scratch.py: `rank` for fp32 at 0.6, `pool-TARGET-PCT` elsewhere; seeds 1, 2):
  random-median     the median over the pool of each subnet's quality, per seed
  uniform           the uniform subnet (one op in every slot) closest to the budget, within +-15 %
  random-search-amortized  the best of n random subnets by a seed-0 training, n = the supernet's
                    cost in trainings of the pool's subnets shared over the searches it serves
                    (rounded, at least 1): by resampling subsets of the pool (n = 1: its mean)
  random-search-full       the same with n = the supernet's whole cost (needs the pool's seed 0)
Every training: oneshot_scratch.py (the `cpu` protocol from scratch, rung `--step`).

Differences (dB, 95 %): pick vs median random subnet (`rcai.stats.gap_to_median`), vs uniform and vs
random search (paired over seeds 1, 2). CSV results/oneshot_search.csv: target, budget, method, subnet,
table_frac, q_s1, q_s2 (+ search seconds). Resumable: searches and trainings are run folders.

Usage: python benchmarks/oneshot_search.py --supernets shared-d0-s0 shared-d0-s1 shared-d0-s2 --targets fp32 --step 800 --jobs 2
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from common import RESULTS, git_rev, load1, machine, write
from oneshot_scratch import TABLES, add_pool, load_plan, matched, quality, run_dir, save_plan, train

SUPERNETS = Path("benchmarks/.cache/oneshot/supernets")
SEARCHES = Path("benchmarks/.cache/oneshot/search")
SEEDS = (1, 2)


def pool_group(target: str, budget: float) -> str:
    return "rank" if (target, budget) == ("fp32", 0.6) else f"pool-{target}-{round(budget * 100)}"


def ensure_baselines(p: dict, targets, budgets, n: int) -> None:
    """Each (target, budget)'s random pool and uniform subnet in the plan (drawn once, kept)."""
    for t in targets:
        at = matched(t)
        for b in budgets:
            g = pool_group(t, b)
            if not any(v["group"] == g for v in p.values()):
                add_pool(p, g, t, b, n, seed=7000 + 100 * list(TABLES).index(t) + round(b * 100))
            near = at.uniform_near(b, tol=0.15)
            if near is not None and f"uniform-{near[0]}" not in p:
                p[f"uniform-{near[0]}"] = {"choices": near[1], "group": "uniform"}
    save_plan(p)


def uniform_of(p: dict, target: str, budget: float) -> str | None:
    near = matched(target).uniform_near(budget, tol=0.15)
    return f"uniform-{near[0]}" if near else None


def search(sn: str, target: str, budget: float, candidates: int) -> dict:
    """The oneshot search's result (cached: a finished run folder is read back), with its wall and CPU seconds."""
    import torch

    from rcai.search.config import OneShotOptions
    from rcai.search.strategies.base import StrategyConfig
    from rcai.search.strategies.run import run_strategy

    out = SEARCHES / sn / f"{target}-{round(budget * 100)}"
    if (out / "result.json").exists():
        return json.loads((out / "result.json").read_text())
    torch.set_num_threads(1)
    cfg = StrategyConfig(strategy="oneshot", preset="tiny", cost_table=TABLES[target], latency_budget_ms=matched(target).target(budget), steps_per_sample=50,
                         oneshot=OneShotOptions(supernet=str(SUPERNETS / sn / "supernet.pt"), candidates=candidates, train_device="cpu"))
    t0, c0 = time.perf_counter(), time.process_time()
    _, summary = run_strategy(cfg, out, resume=(out / "config.json").exists())
    summary["bench_wall_s"], summary["bench_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    (out / "result.json").write_text(json.dumps(summary, indent=1))
    return summary


def pick_name(p: dict, choices: dict) -> str:
    """The plan's name of a pick (one name per distinct subnet)."""
    for n, v in p.items():
        if v["choices"] == choices:
            return n
    from rcai.presets import get_preset
    from rcai.space.subnet import SubnetSpec

    name = f"pick-{SubnetSpec(get_preset('tiny'), choices).hash}"
    p[name] = {"choices": choices, "group": "pick"}
    save_plan(p)
    return name


def supernet_cost(sn: str) -> dict:
    """CPU seconds of the supernet's training and of its predictor's inherited evaluations."""
    info = json.loads((SUPERNETS / sn / "metrics.json").read_text())
    pred = json.loads((SUPERNETS / sn / "predictor.json").read_text())
    return {"train_cpu_s": info["cpu_s"], "predictor_cpu_s": pred["source"].get("cpu_s", 0.0), "steps": info["steps"]}


def training_cpu_s(names: list[str], step: int) -> float | None:
    """Median CPU seconds of one training of these subnets to the protocol's full length, scaled from
    their recorded rungs (oneshot_scratch.py's cpu_s.json)."""
    from rcai.train.protocol import CPU

    per_step = []
    for n in names:
        for s in SEEDS:
            f = run_dir(n, s) / "cpu_s.json"
            if f.exists():
                spent = json.loads(f.read_text())
                steps = max(int(k) for k in spent)
                per_step.append(sum(spent.values()) / steps)
    return float(np.median(per_step)) * CPU.steps if per_step else None


def best_of(pool: dict[str, dict[int, float]], n: int, resamples: int = 4000, seed: int = 0) -> dict[int, float] | None:
    """Random search of n trainings, by resampling the pool: the subnet of n drawn without replacement
    that scores best under seed 0 (selection), its quality under seeds 1 and 2 (judgement); the mean
    over draws per seed. n = 1 needs no selection: the pool's mean."""
    names = [k for k, v in pool.items() if all(s in v for s in SEEDS)]
    if n <= 1:
        return {s: float(np.mean([pool[k][s] for k in names])) for s in SEEDS}
    names = [k for k in names if 0 in pool[k]]
    if len(names) < n:
        return None
    rng = np.random.default_rng(seed)
    out = {s: [] for s in SEEDS}
    for _ in range(resamples):
        draw = rng.choice(names, n, replace=False)
        best = max(draw, key=lambda k: pool[k][0])
        for s in SEEDS:
            out[s].append(pool[best][s])
    return {s: float(np.mean(v)) for s, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supernets", nargs="+", required=True, help="run folders under benchmarks/.cache/oneshot/supernets, one per supernet seed")
    ap.add_argument("--targets", nargs="+", default=["fp32", "int8"], choices=list(TABLES))
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.6, 0.75, 0.9])
    ap.add_argument("--pool", type=int, default=4, help="random subnets per (target, budget) pool (fp32 at 0.6: the rank study's 12)")
    ap.add_argument("--step", type=int, default=800, help="rung of the cpu protocol the trainings are judged at")
    ap.add_argument("--candidates", type=int, default=12)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--train", action="store_true", help="train what the report needs (else: report what is trained)")
    ap.add_argument("--full-seed0", action="store_true", help="also train the pools with seed 0 (random-search-full)")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    started, load0 = machine(), load1()
    p = load_plan()
    ensure_baselines(p, args.targets, args.budgets, args.pool)
    picks, searches = {}, []
    for sn in args.supernets:
        for t in args.targets:
            for b in args.budgets:
                r = search(sn, t, b, args.candidates)
                name = pick_name(p, r["choices"])
                picks[(sn, t, b)] = name
                searches.append({"supernet": sn, "target": t, "budget": b, "pick": name, "wall_s": r["bench_wall_s"], "cpu_s": r["bench_cpu_s"],
                                 "loop_ms": r["table"]["loop_ms"], "inherited_val_db": r["best_score"]})
                print(f"[{time.strftime('%H:%M:%S')}] {sn} {t} {b}: {name} ({r['table']['loop_ms']:.1f} ms) in {r['bench_wall_s']:.0f} s", flush=True)
    if args.train:
        items = [(n, s) for n in dict.fromkeys(picks.values()) for s in SEEDS]
        for t in args.targets:
            for b in args.budgets:
                u = uniform_of(p, t, b)
                items += [(u, s) for s in SEEDS] if u else []
                items += [(n, s) for n, v in p.items() if v["group"] == pool_group(t, b) for s in SEEDS + ((0,) if args.full_seed0 else ())]
        train(items, [args.step], args.jobs)
    report(args, p, picks, searches, started, load0)


def report(args, p, picks, searches, started, load0) -> None:
    from rcai.stats import gap_to_median, paired_diff

    q = quality(p, args.step)
    costs = {sn: supernet_cost(sn) for sn in args.supernets}
    n_searches = len(args.targets) * len(args.budgets)
    rows, lines_cmp = [], []
    for t in args.targets:
        for b in args.budgets:
            pool = {n: q.get(n, {}) for n, v in p.items() if v["group"] == pool_group(t, b)}
            frac = lambda n: p[n]["frac"][t]  # noqa: E731
            unit = training_cpu_s(list(pool), args.step)
            med = {s: float(np.median([v[s] for v in pool.values() if s in v])) for s in SEEDS if any(s in v for v in pool.values())}
            rows.append({"target": t, "budget": b, "method": "random-median", "subnet": f"median of {sum(len(v) >= 2 for v in pool.values())}",
                         "table_frac": float(np.median([frac(n) for n in pool])), **{f"q_s{s}": med.get(s) for s in SEEDS}})
            u = uniform_of(p, t, b)
            if u:
                rows.append({"target": t, "budget": b, "method": "uniform", "subnet": u, "table_frac": frac(u), **{f"q_s{s}": q.get(u, {}).get(s) for s in SEEDS}})
            for sn in args.supernets:
                n = picks[(sn, t, b)]
                rows.append({"target": t, "budget": b, "method": f"oneshot-{sn.rsplit('-', 1)[-1]}", "subnet": n, "table_frac": frac(n),
                             **{f"q_s{s}": q.get(n, {}).get(s) for s in SEEDS}, "supernet": sn})
            cost = np.mean([c["train_cpu_s"] + c["predictor_cpu_s"] for c in costs.values()])
            n_full = max(1, round(cost / unit)) if unit else None
            n_amort = max(1, round(cost / unit / n_searches)) if unit else None
            for label, n in (("random-search-amortized", n_amort), ("random-search-full", n_full)):
                v = best_of(pool, n) if n else None
                rows.append({"target": t, "budget": b, "method": label, "subnet": f"best of {n} (resampled)" if n else "unmeasured", "table_frac": None,
                             **{f"q_s{s}": (v or {}).get(s) for s in SEEDS}})
            # comparisons, one line per pick
            groups = [[v[s] for s in SEEDS if s in v] for v in pool.values()]
            by_method = {r["method"]: r for r in rows if r["target"] == t and r["budget"] == b}
            for sn in args.supernets:
                r = by_method[f"oneshot-{sn.rsplit('-', 1)[-1]}"]
                mine = {s: r[f"q_s{s}"] for s in SEEDS if r[f"q_s{s}"] is not None}
                if len(mine) < 2:
                    continue
                vs = {"median": gap_to_median(list(mine.values()), groups)}
                for m in ("uniform", "random-search-amortized", "random-search-full"):
                    o = by_method.get(m)
                    if o and all(o[f"q_s{s}"] is not None for s in SEEDS):
                        vs[m] = paired_diff(mine, {s: o[f"q_s{s}"] for s in SEEDS})
                lines_cmp.append((t, b, sn, r["subnet"], r["table_frac"], vs))
    with open(RESULTS / "oneshot_search.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["target", "budget", "method", "subnet", "table_frac", "q_s1", "q_s2", "supernet"], extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    text = [
        "# One-shot supernet: search quality (issue 39)", "",
        f"`benchmarks/oneshot_search.py --supernets {' '.join(args.supernets)} --targets {' '.join(args.targets)} --budgets {' '.join(map(str, args.budgets))} "
        f"--step {args.step}`, rcai {git_rev()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: {started}; load avg {load0:.2f} at start, "
        f"{load1():.2f} at the end. {args.note}", "",
        f"Every training: the `cpu` protocol from scratch, judged at step {args.step} on the held-out crops (posterior-mean gain over bicubic, dB), "
        f"seeds {SEEDS} (a pick's supernet never saw them). Pools: random subnets within [0.9, 1.0] x the budget on that target's table.", "",
        "## Cost", "",
        "| supernet | training CPU-h | predictor's inherited evaluations CPU-h | steps |", "|---|---:|---:|---:|"]
    for sn, c in costs.items():
        text.append(f"| {sn} | {c['train_cpu_s'] / 3600:.2f} | {c['predictor_cpu_s'] / 3600:.3f} | {c['steps']} |")
    text += ["", "| supernet | target | budget | pick | table loop (x base) | search wall s | search CPU s | inherited (val crops, dB) |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    for s in searches:
        text.append(f"| {s['supernet']} | {s['target']} | {s['budget']} | {s['pick']} | {p[s['pick']]['frac'][s['target']]:.3f} | {s['wall_s']:.0f} | "
                    f"{s['cpu_s']:.0f} | {s['inherited_val_db']:+.3f} |")
    text += ["", "## Quality", "", "| target | budget | method | subnet | table loop (x base) | seed 1 | seed 2 |", "|---|---:|---|---|---:|---:|---:|"]
    for r in rows:
        qs = " | ".join("–" if r[f"q_s{s}"] is None else f"{r[f'q_s{s}']:+.3f}" for s in SEEDS)
        text.append(f"| {r['target']} | {r['budget']} | {r['method']} | {r['subnet']} | {'–' if r['table_frac'] is None else format(r['table_frac'], '.3f')} | {qs} |")
    text += ["", "Pick minus baseline (dB, mean over seeds 1, 2; 95 % interval):", "",
             "| target | budget | supernet | vs median random | vs uniform | vs random search (amortized) | vs random search (full) |", "|---|---:|---|---:|---:|---:|---:|"]
    for t, b, sn, name, fr, vs in lines_cmp:
        cell = lambda k: f"{vs[k]['diff']:+.3f} [{vs[k]['lo']:+.3f}, {vs[k]['hi']:+.3f}]" if k in vs else "–"  # noqa: E731
        text.append(f"| {t} | {b} | {sn} | {cell('median')} | {cell('uniform')} | {cell('random-search-amortized')} | {cell('random-search-full')} |")
    write("oneshot_search.md", "\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
