"""Issue 34: does a search strategy earn its training cost? Each strategy (`halving`, `bo`) against
random search of equal training cost with the same search seeds, at several latency budgets.

Per budget (a fraction of the base's whole `--sample-steps` loop by the cost table) and search seed:
  STRATEGY-sS     `rcai search --strategy STRATEGY --seed S` (its candidates trained with training
                  seed 0); its pick then trained afresh with seeds 1 and 2
  random-search-sS  as many random subnets as the dearest strategy's cost in full trainings at this
                  budget and seed (rounded), drawn where the strategies draw (loop in [1 - 2 tol, 1] x
                  the budget, tol = halving's fill_tol) with a seed from S, each trained with seed 0;
                  the best by seed 0 trained with seeds 1 and 2
and once per budget: the knapsack pick of the quality model (`--quality-model`, where one exists;
seeds 1, 2), `--random` latency-matched random subnets (+-5 % of the budget; seeds 0, 1), and, for
all budgets, the cheapest subnet and the base (seeds 1, 2). A pick's seed-0 score selected it
(winner's curse), so picks are judged on seeds 1 and 2 only. Every training is `train_to` from
scratch with one protocol (`--protocol`, default the training device's, rcai/train/protocol.py: `cpu`
batch 32 x 1600 steps, `gpu` batch 32 x 4800; `--steps`, `--batch-size`, `--rungs` override it);
quality = posterior-mean gain over bicubic on the held-out crops (dB).

Differences (dB, 95 % interval): vs random search of equal cost, per search seed paired on training
seeds 1, 2, and over the search seeds by a nested bootstrap (search seeds, then training seeds); vs
the median random subnet, `rcai.stats.gap_to_median` over the picks' figures (search seeds x seeds
1, 2); vs the cheapest, the same nested bootstrap. CSV: one row per strategy and search seed
(random search of equal cost included), the knapsack pick, each random subnet, cheapest and base,
with the quality per training seed.

Where it runs: every training is a TrainJob run by the local executor, `--jobs` at once, on
`--train-device` (auto: the GPUs where there are any, worker i on cuda:i mod GPUs; else one CPU thread
a training) in `--train-precision`; the searches' own trainings too. The issue's size (3 budgets x 3
search seeds x 2 strategies at 12 trainings of 1600 steps, about 450 trainings of the `cpu` protocol,
6.6 core-minutes each on this CPU: about 50 core-hours) is days of a 2-core CPU; `--smoke` labels a small end-to-end run as such (e.g. the micro preset, a
4-step protocol, results/search_budget_smoke.md: `--preset micro --cost-table benchmarks/.cache/cpu-micro.csv
--steps 4 --rungs 2 4 --batch-size 2 --trainings 3 --initial-halving 2 --initial-bo 2 --budgets 0.6
--search-seeds 0 1 --sample-steps 10 --smoke --out benchmarks/.cache/search_budget_smoke --name search_budget_smoke`;
a cost table that does not exist is profiled there first).

Resumable: each training is its own run folder under --out, each search a run folder.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from common import RESULTS, add_train_device, git_rev, load_text, machine, write

PICK_SEEDS, RANDOM_SEEDS = (1, 2), (0, 1)


def protocol(args):
    from rcai.train.protocol import SIGNAL

    return replace(SIGNAL, steps=args.steps, batch_size=args.batch_size, eval_at=tuple(sorted(set(args.rungs) | {args.steps})))


def resolve_protocol(args) -> None:
    """--steps / --batch-size / --rungs from --protocol (default: the training device's) where not given."""
    from rcai.train.protocol import PROTOCOLS, for_device

    base = PROTOCOLS.get(args.protocol) if args.protocol else for_device(args.train_device)
    args.steps = args.steps or base.steps
    args.batch_size = args.batch_size or base.batch_size
    args.rungs = args.rungs or [args.steps // 2, args.steps]


def train_job(payload: tuple[str, dict, int, str, dict, str, str]) -> dict:
    """One (subnet, seed) trained to the whole protocol, in an executor's worker, on the device the executor placed it."""
    preset, choices, seed, out, proto, device, precision = payload
    from rcai.presets import get_preset
    from rcai.space.subnet import SubnetSpec
    from rcai.train.protocol import TrainProtocol, train_to

    spec = SubnetSpec(get_preset(preset), choices)
    run = Path(out) / "runs" / f"{spec.hash}-s{seed}"
    reused = (run / "train" / "metrics.json").exists()
    m = train_to(spec, seed, run, TrainProtocol.from_dict(proto), samples=False, device=device, precision=precision)
    return {"arch": spec.hash, "seed": seed, "quality": m["quality"]["gain_db"], "reused": reused}


class Trainer:
    """Trainings of (subnet, seed) to the whole protocol, `jobs` at once, each once (resumable folders)."""

    def __init__(self, args, out: Path):
        self.args, self.out, self.done = args, out, {}
        self.proto = protocol(args).to_dict()

    def __call__(self, items: list[tuple[dict, int]]) -> None:
        from rcai.presets import get_preset
        from rcai.space.subnet import SubnetSpec
        from rcai.search.executors import make_executor

        preset = get_preset(self.args.preset)
        todo = {(SubnetSpec(preset, c).hash, s): (c, s) for c, s in items}
        todo = [v for k, v in todo.items() if k not in self.done]
        if not todo:
            return
        print(f"[{time.strftime('%H:%M:%S')}] {len(todo)} trainings on {self.args.jobs} processes ({self.args.train_device})", flush=True)
        with make_executor("local", self.args.jobs, threads=1) as pool:
            payloads = [(self.args.preset, c, s, str(self.out), self.proto, pool.place(self.args.train_device, i), self.args.train_precision)
                        for i, (c, s) in enumerate(todo)]
            for r in pool.map(train_job, payloads):
                self.done[(r["arch"], r["seed"])] = r
                print(f"[{time.strftime('%H:%M:%S')}] {r['arch']} s{r['seed']}: {r['quality']:+.4f} dB", flush=True)

    def quality(self, choices: dict, seeds) -> dict[int, float]:
        from rcai.presets import get_preset
        from rcai.space.subnet import SubnetSpec

        h = SubnetSpec(get_preset(self.args.preset), choices).hash
        return {s: self.done[(h, s)]["quality"] for s in seeds if (h, s) in self.done}


def ensure_table(args) -> None:
    """The cost table, profiled on this machine where the file does not exist (the smoke's micro table)."""
    path = Path(args.cost_table)
    if path.exists():
        return
    from rcai.cost.profile import ProfileConfig, profile_ops
    from rcai.targets import TargetSpec
    from rcai.targets import MeasureConfig

    print(f"[{time.strftime('%H:%M:%S')}] profiling {args.preset} into {path}", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile_ops(ProfileConfig(preset=args.preset, target=TargetSpec(threads=1), measure=MeasureConfig(warmup=1, min_repeats=3, max_repeats=5, chunk=3,
                                                                                    max_seconds=0.5)), path, progress=False)


def search(args, out: Path, strategy: str, frac: float, budget: float, ss: int, model: str | None) -> dict:
    from rcai.proxies import ProxyConfig
    from rcai.search.config import BOOptions, HalvingOptions
    from rcai.search.strategies.base import StrategyConfig
    from rcai.search.strategies.run import run_strategy

    run = out / f"{strategy}-{frac}-s{ss}"
    print(f"[{time.strftime('%H:%M:%S')}] {strategy} search, budget {frac} x base, search seed {ss}", flush=True)
    initial = args.initial_bo if strategy == "bo" else args.initial_halving
    halving = HalvingOptions(protocol=protocol(args), rungs=tuple(args.rungs), initial=initial, brackets=args.brackets, train_seed=0, jobs=args.jobs,
                             train_device=args.train_device, train_precision=args.train_precision)
    cfg = StrategyConfig(strategy=strategy, preset=args.preset, cost_table=args.cost_table, latency_budget_ms=budget, seed=ss,
                         steps_per_sample=args.sample_steps, proxy_config=ProxyConfig(quality_model=model), halving=halving,
                         bo=BOOptions(trainings=args.trainings, initial=initial))
    _, s = run_strategy(cfg, run, resume=(run / "config.json").exists())
    return {"method": f"{strategy}-s{ss}", "strategy": strategy, "search_seed": ss, "choices": s["choices"], "cost_trainings": s["trainings"]}


def nested(diffs: dict[int, dict[int, float]], resamples: int = 4000, seed: int = 0) -> dict[str, float]:
    """Mean of per-(search seed, training seed) differences with a 95 % bootstrap interval that
    resamples the search seeds, then each drawn one's training seeds."""
    groups = [np.array(list(d.values()), float) for d in diffs.values() if d]
    if not groups:
        return {"diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    boot = [np.mean([g[rng.integers(0, len(g), len(g))].mean() for g in (groups[i] for i in rng.integers(0, len(groups), len(groups)))])
            for _ in range(resamples)]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"diff": float(np.mean([g.mean() for g in groups])), "lo": float(lo), "hi": float(hi), "n": len(groups)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--cost-table", default="latency_tables/cpu-tiny.csv")
    ap.add_argument("--quality-model", default=None, help="knapsack pick and bo's warm start (default predictors/quality-PRESET.json where it exists; none: neither)")
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.45, 0.6, 0.8])
    ap.add_argument("--search-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--strategies", nargs="+", default=["halving", "bo"])
    ap.add_argument("--random", type=int, default=8, help="latency-matched random subnets per budget (seeds 0, 1)")
    ap.add_argument("--protocol", default=None, help="a registered training protocol (default: the training device's: cpu or gpu)")
    ap.add_argument("--steps", type=int, default=None, help="default: the protocol's")
    ap.add_argument("--rungs", type=int, nargs="+", default=None, help="default: half the steps and all of them")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the protocol's")
    ap.add_argument("--trainings", type=float, default=12.0, help="bo's training budget in full trainings")
    ap.add_argument("--initial-halving", type=int, default=8)
    ap.add_argument("--brackets", type=int, default=2)
    ap.add_argument("--initial-bo", type=int, default=4)
    ap.add_argument("--sample-steps", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="label the results a smoke run (not the issue's figures)")
    ap.add_argument("--out", default="benchmarks/.cache/search_budget")
    ap.add_argument("--name", default="search_budget")
    add_train_device(ap)
    args = ap.parse_args()
    resolve_protocol(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from rcai.targets.sysinfo import load_average

    started, load0, t0 = machine(), load_average(), time.time()
    ensure_table(args)
    from rcai.cost.load import load_cost_model
    from rcai.evaluate import MatchedLatency
    from rcai.presets import get_preset
    from rcai.search.config import HalvingOptions
    from rcai.search.select import sample_at_latency
    from rcai.search.strategies.run import run_knapsack

    preset = get_preset(args.preset)
    at = MatchedLatency(load_cost_model(args.cost_table, preset), args.sample_steps)
    base_ms = at.loop(at.base)
    model = args.quality_model or f"predictors/quality-{args.preset}.json"
    model = None if model == "none" or not Path(model).exists() else model
    tol = HalvingOptions().fill_tol
    trainer = Trainer(args, out)
    rows: list[dict] = []
    for frac in args.budgets:
        budget = frac * base_ms
        here = [search(args, out, st, frac, budget, ss, model) for st in args.strategies for ss in args.search_seeds]
        for ss in args.search_seeds:  # random search of equal cost, the same search seed
            n = max(1, round(max(r["cost_trainings"] for r in here if r["search_seed"] == ss)))
            cands = [a for a in sample_at_latency(at.space, at.loop, budget * (1 - tol), tol, n, seed=9000 + 100 * ss + round(frac * 100))
                     if at.loop(a) <= budget]
            trainer([(a, 0) for a in cands])
            best = max(cands, key=lambda a: trainer.quality(a, (0,))[0])
            here.append({"method": f"random-search-s{ss}", "strategy": "random-search", "search_seed": ss, "choices": best, "cost_trainings": float(len(cands)),
                         "selected_on": trainer.quality(best, (0,))[0]})
        if model:
            _, s = run_knapsack(args.preset, args.cost_table, model, budget, args.sample_steps, out / f"knapsack-{frac}")
            here.append({"method": "knapsack", "strategy": "knapsack", "choices": s["choices"], "cost_trainings": 0.0})
        here += [{"method": f"random-{i}", "strategy": "random", "choices": a} for i, a in enumerate(at.random(frac, args.random, seed=7000 + round(frac * 1000)))]
        for r in here:
            r["budget"] = frac
        rows += here
    rows += [{"method": "cheapest", "strategy": "cheapest", "choices": at.cheapest, "budget": ""},
             {"method": "base", "strategy": "base", "choices": at.base, "budget": ""}]
    trainer([(r["choices"], s) for r in rows for s in (RANDOM_SEEDS if r["strategy"] == "random" else PICK_SEEDS)])
    for r in rows:
        r["quality"] = trainer.quality(r["choices"], RANDOM_SEEDS if r["strategy"] == "random" else PICK_SEEDS)
        r["table_frac"] = at.loop(r["choices"]) / base_ms
    report(args, rows, trainer, started, load0, time.time() - t0, model)


def trained_on(args) -> str:
    """The training device and precision as resolved here (auto made concrete)."""
    from rcai.train.device import TrainDevice

    dev = TrainDevice.of(args.train_device, args.train_precision)
    return f"{dev.device} ({dev.describe()['device_name']}), {dev.precision}"


def report(args, rows: list[dict], trainer: Trainer, started: str, load0, wall_s: float, model: str | None) -> None:
    from rcai.presets import get_preset
    from rcai.space.subnet import SubnetSpec
    from rcai.stats import gap_to_median
    from rcai.targets.sysinfo import load_average

    preset = get_preset(args.preset)
    fields = ["budget", "method", "strategy", "search_seed", "arch", "table_frac", "cost_trainings", "q_s0", "q_s1", "q_s2"]
    with open(RESULTS / f"{args.name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        for r in rows:
            w.writerow({"budget": r["budget"], "method": r["method"], "strategy": r["strategy"], "search_seed": r.get("search_seed", ""),
                        "arch": SubnetSpec(preset, r["choices"]).hash, "table_frac": f"{r['table_frac']:.3f}",
                        "cost_trainings": f"{r['cost_trainings']:.2f}" if "cost_trainings" in r else "",
                        **{f"q_s{s}": f"{q:.4f}" for s, q in r["quality"].items()}})
    fmt = lambda d: f"{d['diff']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"  # noqa: E731
    beyond = lambda d: d["lo"] > 0  # noqa: E731
    p = protocol(args)
    cheapest = next(r for r in rows if r["method"] == "cheapest")
    title = "SMOKE RUN (not the issue's figures): " if args.smoke else ""
    L = [f"# {title}Search strategies vs random search of equal training cost (issue 34)", ""]
    if args.smoke:
        L += ["**A smoke run proving the benchmark end to end on a tiny protocol; its qualities are of "
              f"{p.steps}-step trainings of the {args.preset} preset and say nothing about which strategy wins.**", ""]
    ran = sum(not r["reused"] for r in trainer.done.values())
    L += [f"Machine: {started}; load average {load_text(load0)} at the start, {load_text(load_average())} at the end (the machine is shared); "
          f"rcai {git_rev()}; wall {wall_s / 60:.1f} min; {ran} of {len(trainer.done)} evaluation trainings run now (plus the searches' own). "
          f"Preset {args.preset}, budgets {args.budgets} x the base's {args.sample_steps}-step loop by `{args.cost_table}`; search seeds "
          f"{args.search_seeds}; protocol {p.steps} steps, batch {p.batch_size}, constant lr {p.lr:g}, EMA {p.ema}, rungs {args.rungs}; "
          f"halving {args.initial_halving} x {args.brackets} brackets, bo {args.initial_bo} a round up to {args.trainings:g} trainings; "
          f"quality model {model or 'none'} (bo's warm start and the knapsack pick); trainings on {trained_on(args)}. Picks are scored "
          f"on training seeds 1 and 2, random subnets on 0 and 1. Reproduce: `python benchmarks/search_budget.py {' '.join(sys.argv[1:])}`.", ""]
    verdicts = {}
    for frac in args.budgets:
        here = [r for r in rows if r["budget"] == frac]
        rnd = [r for r in here if r["strategy"] == "random" and len(r["quality"]) == 2]
        L += [f"## Budget {frac} x base", "", "| row | subnet | table loop (x base) | cost (trainings) | quality per seed (dB) | mean (dB) |",
              "|---|---|---:|---:|---|---:|"]
        for r in [r for r in here if r["strategy"] != "random"] + [cheapest, next(r for r in rows if r["method"] == "base")]:
            q = r["quality"]
            cost = f"{r['cost_trainings']:.1f}" if "cost_trainings" in r else ""
            L.append(f"| {r['method']} | {SubnetSpec(preset, r['choices']).hash} | {r['table_frac']:.2f} | {cost} | "
                     + " ".join(f"s{s} {v:+.3f}" for s, v in q.items()) + f" | {statistics.fmean(q.values()):+.3f} |")
        means = [statistics.fmean(r["quality"].values()) for r in rnd]
        L += [f"| random, median of {len(rnd)} | | {statistics.median(r['table_frac'] for r in rnd):.2f} | | range {min(means):+.3f} .. {max(means):+.3f} | "
              f"{statistics.median(means):+.3f} |", "",
              "| strategy | - random search of equal cost (per search seed) | - random search, over search seeds | - median random subnet | - cheapest |",
              "|---|---|---:|---:|---:|"]
        for st in [s for s in args.strategies] + (["knapsack"] if any(r["strategy"] == "knapsack" for r in here) else []):
            picks = {r.get("search_seed", 0): r for r in here if r["strategy"] == st}
            rs = {r["search_seed"]: r for r in here if r["strategy"] == "random-search"}
            per = {ss: {s: p["quality"][s] - rs[ss]["quality"][s] for s in PICK_SEEDS if s in p["quality"] and s in rs.get(ss, {"quality": {}})["quality"]}
                   for ss, p in picks.items()} if st != "knapsack" else {}
            vs_rs = nested(per) if per else None
            vs_med = gap_to_median([q for p in picks.values() for q in p["quality"].values()], [list(r["quality"].values()) for r in rnd])
            vs_ch = nested({ss: {s: p["quality"][s] - cheapest["quality"][s] for s in PICK_SEEDS if s in p["quality"] and s in cheapest["quality"]}
                            for ss, p in picks.items()})
            L.append(f"| {st} | " + (" ".join(f"s{ss} {statistics.fmean(d.values()):+.3f}" for ss, d in per.items() if d) or "n/a")
                     + f" | {fmt(vs_rs) if vs_rs else 'n/a'} | {fmt(vs_med)} | {fmt(vs_ch)} |")
            verdicts[(st, frac)] = (vs_rs is not None and beyond(vs_rs), beyond(vs_med))
        L.append("")
    L += ["## Goals", ""]
    for st in args.strategies:
        rs_wins = sum(verdicts[(st, f)][0] for f in args.budgets)
        med_wins = sum(verdicts[(st, f)][1] for f in args.budgets)
        L.append(f"- {st}: beats random search of equal cost beyond the interval at {rs_wins} of {len(args.budgets)} budgets (goal: >= 2 of 3); "
                 f"beats the median random subnet beyond the interval at {med_wins} of {len(args.budgets)} (goal: every budget)"
                 + (" — smoke figures, not the verdict." if args.smoke else "."))
    write(f"{args.name}.md", "\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
