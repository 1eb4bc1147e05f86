"""Issue 9: does the supernet's data signal rank the ops the way training each subnet from scratch does?

For each gradient estimator of the bilevel search (gdas: straight-through Gumbel; paired: leave-one-out
REINFORCE over two paths on the same batch; simple: the continuous DARTS relaxation) the search runs
with its defaults but **no cost term** (lambda_latency = 0), so alpha learns from the data alone. The
op preference it ends with (mean log-softmax(alpha) of each op over the slots that offer it) is set
beside the per-op effects of the quality model (`predictors/quality-tiny.json`: subnets trained from
scratch, rcai/proxies/additive.py), which is what the Pareto benchmark rewards.

A search can only beat random subnets at a latency if its data signal agrees with training from
scratch; a signal that prefers the ops that train worst makes it lose to them.
Usage: python benchmarks/supernet_signal.py [--softmax gdas paired simple] [--seeds 0 1] [--jobs 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from common import RESULTS, git_rev, machine, write

GNCONV = ("conv3x3", "conv5x5", "dwsep3x3", "narrow3x3", "skip")


def run(payload) -> dict:
    softmax, seed, table = payload
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from rcai.search.config import DartsOptions
    from rcai.search.strategies.base import StrategyConfig
    from rcai.search.strategies.darts.engine import build_bilevel
    from rcai.search.strategies.run import build_problem
    from rcai.search.select import alpha_logprobs

    cfg = StrategyConfig(strategy="darts", preset="tiny", cost_table=table, seed=seed,
                         darts=DartsOptions(softmax=softmax, penalty="expected", lambda_latency=0.0))
    engine = build_bilevel(cfg, build_problem(cfg))
    t0 = time.perf_counter()
    for step in range(cfg.darts.steps):
        engine.step(step)
    prefs: dict[str, list[float]] = {}
    for slot in alpha_logprobs(engine.supernet).values():
        for op, lp in slot.items():
            prefs.setdefault(op, []).append(lp)
    return {"softmax": softmax, "seed": seed, "steps": cfg.darts.steps, "seconds": time.perf_counter() - t0,
            "pref": {op: statistics.mean(v) for op, v in prefs.items()}}


def report(rows: list[dict], model, args) -> str:
    from scipy.stats import spearmanr

    truth = {op: model.effects.get(op, 0.0) for op in GNCONV}
    truth_order = sorted(GNCONV, key=lambda o: -truth[o])
    lines = ["# Does the supernet's data signal rank the ops like training from scratch? (tiny)", "",
             f"Machine: {machine()}; rcai {git_rev()}. Each search: `rcai search` defaults (450 steps, 150 warm-up), softmax as named, "
             "**no cost term** (lambda_latency 0): alpha learns from the data alone. Preference = mean log-softmax(alpha) of the op over "
             "the slots offering it (uniform: log 1/5 = -1.609 in a GN-conv slot, log 1/2 = -0.693 in a mix slot).", "",
             f"From scratch (the quality model `{args.quality_model}`: {model.n} random subnets trained {model.source and 'as in ' + model.source}; "
             f"leave-one-out Spearman {model.loo_spearman:+.2f}), dB per slot vs skip: "
             + ", ".join(f"{op} {truth[op]:+.4f} [{model.ci95.get(op, [0, 0])[0]:+.4f}, {model.ci95.get(op, [0, 0])[1]:+.4f}]"
                         for op in truth_order if op != "skip")
             + f"; attention vs a GN-conv mix {model.effects.get('attention', 0.0):+.4f} dB.", "",
             "| estimator | seed | " + " | ".join(truth_order) + " | attention − gnconv | Spearman vs from scratch (5 GN-conv ops) | seconds |",
             "|---|---:|" + "---:|" * len(truth_order) + "---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (args.softmax.index(r["softmax"]) if r["softmax"] in args.softmax else 99, r["seed"])):
        p = r["pref"]
        rho = spearmanr([p[o] for o in GNCONV], [truth[o] for o in GNCONV]).statistic
        r["rho"] = rho
        lines.append(f"| {r['softmax']} | {r['seed']} | " + " | ".join(f"{p[o]:+.2f}" for o in truth_order)
                     + f" | {p['attention'] - p['gnconv']:+.2f} | {rho:+.2f} | {r['seconds']:.0f} |")
    imported = [f"{r['softmax']} seed {r['seed']}" for r in rows if r.get("imported")]
    if imported:
        lines += ["", f"Rows {', '.join(imported)}: {next(r['imported'] for r in rows if r.get('imported'))} (same config, preferences to 3 decimals)."]
    lines += ["", "Mean Spearman vs from scratch per estimator: " + ", ".join(
        f"{s} {statistics.mean(r['rho'] for r in rows if r['softmax'] == s):+.2f}" for s in args.softmax if any(r["softmax"] == s for r in rows)) + ".",
        "Does an estimator agree with itself? Spearman of the 5 GN-conv ops' preferences, seed against seed: " + ", ".join(
        f"{s} {spearmanr(*[[r['pref'][o] for o in GNCONV] for r in rs[:2]]).statistic:+.2f}"
        for s in args.softmax for rs in [[r for r in rows if r["softmax"] == s]] if len(rs) >= 2) + ".", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--softmax", nargs="+", default=["gdas", "paired", "simple"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--table", default="latency_tables/cpu-tiny.csv")
    ap.add_argument("--quality-model", default="predictors/quality-tiny.json")
    ap.add_argument("--out", default="runs/supernet-signal")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    from rcai.evaluate import append, records
    from rcai.proxies.additive import AdditiveQuality
    from rcai.presets import get_preset

    model = AdditiveQuality.load(args.quality_model, get_preset("tiny"))
    log = Path(args.out) / "results.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    rows = records(log)
    done = {(r["softmax"], r["seed"]) for r in rows}
    todo = [(s, seed, args.table) for s in args.softmax for seed in args.seeds if (s, seed) not in done]
    print(f"{len(done)} runs done, {len(todo)} to run", file=sys.stderr)
    from rcai.procs import owned_pool

    with owned_pool(args.jobs) as pool:  # workers die with this script (issue 24)
        for rec in pool.imap_unordered(run, sorted(todo, key=lambda t: t[0] != "simple")):  # the slow one first
            append(log, rec)
            rows.append(rec)
            print(f"{rec['softmax']} s{rec['seed']}: {rec['seconds']:.0f} s", file=sys.stderr)
    write("supernet_signal.md", report(rows, model, args))
    print(f"wrote {RESULTS / 'supernet_signal.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
