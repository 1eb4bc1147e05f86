"""Issue 39: the from-scratch ground truth of the one-shot benchmarks (oneshot_rank.py, oneshot_search.py).

Every subnet the benchmarks judge is named in one plan, results/oneshot_plan.json (name -> choices,
its group, and its loop as a fraction of the base's by each target's cost table), and trained from
scratch with the `cpu` protocol (rcai/train/protocol.py: batch 32, constant lr, EMA, bf16 where the
CPU has it), one run folder per (subnet, seed) under benchmarks/.cache/oneshot/scratch, rung by rung
(every subnet reaches a rung before any goes further), each training one TrainJob through the local
executor, one CPU thread each. A killed run resumes: each folder continues where it stopped.

The 12 subnets of the signal study (results/signal_plan.json) are not retrained: their seeds 0 and 1
are read from results/signal_cpu.csv, trained with the same protocol.

Groups: `rank` = 12 random subnets within [0.9, 1.0] x a budget of 0.6 x the base's loop on the fp32
table (the rank study's near-budget set, and that budget's random pool), `pool-TARGET-PCT` the random
pools of the other (target, budget) pairs, `pick`, `uniform`: added by oneshot_search.py.

Usage: python benchmarks/oneshot_scratch.py --group rank --seeds 1 2 --rungs 800 1200 --jobs 1
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from common import RESULTS

PLAN = RESULTS / "oneshot_plan.json"
CACHE = Path("benchmarks/.cache/oneshot/scratch")
TABLES = {"fp32": "latency_tables/cpu-tiny.csv", "int8": "latency_tables/cpu-tiny-int8.csv"}
PROTOCOL = "cpu"
SIGNAL_NAMES = ("base", "cheapest", "r35-0", "r35-1", "r45-0", "r45-1", "r55-0", "r55-1", "r65-0", "r65-1", "r75-0", "r75-1")


def matched(target: str):
    from rcai.cost.load import load_cost_model
    from rcai.evaluate.baselines import MatchedLatency
    from rcai.presets import get_preset

    return MatchedLatency(load_cost_model(TABLES[target], get_preset("tiny")), 50)


def fracs(choices: dict) -> dict[str, float]:
    """The subnet's loop as a fraction of the base's, by every target's table."""
    return {t: round(matched(t).frac(choices), 4) for t in TABLES}


def load_plan() -> dict[str, dict]:
    if PLAN.exists():
        return json.loads(PLAN.read_text())
    signal = json.loads((RESULTS / "signal_plan.json").read_text())
    p = {n: {"choices": signal[n]["choices"], "group": "signal"} for n in SIGNAL_NAMES}
    add_pool(p, "rank", "fp32", 0.6, 12, seed=3960)
    return p


def save_plan(p: dict[str, dict]) -> None:
    for v in p.values():
        v.setdefault("frac", fracs(v["choices"]))
    PLAN.write_text(json.dumps(p, indent=1))


def add_pool(p: dict[str, dict], group: str, target: str, budget: float, n: int, seed: int) -> list[str]:
    """n distinct random subnets with a loop in [0.9, 1.0] x the budget (`budget` x the base's loop
    on `target`'s table), named TARGET-PCT-i; the plan is saved."""
    from rcai.search.select import sample_at_latency

    at = matched(target)
    lo, hi = 0.9 * at.target(budget), at.target(budget)
    names = []
    for i, a in enumerate(sample_at_latency(at.space, at.loop, (lo + hi) / 2, (hi - lo) / (hi + lo), n, seed=seed)):
        name = f"{target}-{round(budget * 100)}-{i}"
        p[name] = {"choices": a, "group": group, "target": target, "budget": budget}
        names.append(name)
    save_plan(p)
    return names


def signal_curves() -> dict[tuple[str, int], dict[int, float]]:
    """(name, seed) -> step -> quality of the signal study (results/signal_cpu.csv)."""
    out: dict[tuple[str, int], dict[int, float]] = {}
    with open(RESULTS / "signal_cpu.csv") as f:
        for r in csv.DictReader(f):
            out.setdefault((r["subnet"], int(r["seed"])), {})[int(r["step"])] = float(r["quality_db"])
    return out


def run_dir(name: str, seed: int) -> Path:
    return CACHE / f"{name}-s{seed}"


def job(payload) -> dict:
    """(name, choices, seed, rung): one training to `rung` in this worker; returns its curve."""
    name, choices, seed, rung = payload
    from rcai.presets import get_preset
    from rcai.space.subnet import SubnetSpec
    from rcai.train.protocol import PROTOCOLS, curve, protocol_job

    run = run_dir(name, seed)
    if rung not in curve(run):
        t0 = time.process_time()
        protocol_job(SubnetSpec(get_preset("tiny"), choices), seed, run, PROTOCOLS.get(PROTOCOL), steps=rung, samples=False, device="cpu").run()
        spent = json.loads((run / "cpu_s.json").read_text()) if (run / "cpu_s.json").exists() else {}
        spent[str(rung)] = time.process_time() - t0
        (run / "cpu_s.json").write_text(json.dumps(spent))
    return {"name": name, "seed": seed, "curve": curve(run)}


def curves(p: dict[str, dict]) -> dict[tuple[str, int], dict[int, float]]:
    """Every (subnet, seed) curve there is: the signal study's and the run folders'."""
    from rcai.train.protocol import curve

    out = {k: v for k, v in signal_curves().items() if k[0] in p}
    for d in CACHE.glob("*-s*") if CACHE.exists() else []:
        name, seed = d.name.rsplit("-s", 1)
        if name in p and (c := curve(d)):
            out[(name, int(seed))] = c
    return out


def quality(p: dict, step: int, seeds=None) -> dict[str, dict[int, float]]:
    """name -> seed -> quality at `step` (where trained that far)."""
    out: dict[str, dict[int, float]] = {}
    for (name, seed), c in curves(p).items():
        if step in c and (seeds is None or seed in seeds):
            out.setdefault(name, {})[seed] = c[step]
    return out


def train(items: list[tuple[str, int]], rungs: list[int], jobs: int) -> None:
    """Train (name, seed) items of the plan rung by rung (signal-study pairs are read, not trained)."""
    from rcai.search.executors import make_executor

    p = load_plan()
    have = signal_curves()
    todo = [(n, p[n]["choices"], s) for n, s in dict.fromkeys(items) if (n, s) not in have]
    if not todo:
        return
    with make_executor("local", jobs, threads=1) as pool:
        for rung in rungs:
            left = [t + (rung,) for t in todo]
            print(f"[{time.strftime('%H:%M:%S')}] rung {rung}: {len(left)} trainings on {jobs} processes", flush=True)
            for _, r in pool.imap_unordered(_indexed, list(enumerate(left))):
                print(f"[{time.strftime('%H:%M:%S')}] {r['name']} s{r['seed']} @{rung}: {r['curve'][rung]:+.4f} dB", flush=True)


def _indexed(item):
    i, payload = item
    return i, job(payload)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--group", default="rank")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rungs", type=int, nargs="+", default=[800, 1200])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--names", nargs="+", default=None, help="only these subnets of the group (e.g. to split it over processes)")
    args = ap.parse_args()
    p = load_plan()
    save_plan(p)
    names = [n for n, v in p.items() if v["group"] == args.group and (args.names is None or n in args.names)]
    train([(n, s) for n in names for s in args.seeds], args.rungs, args.jobs)


if __name__ == "__main__":
    main()
