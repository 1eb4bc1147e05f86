"""Issue 20 §1: at which training protocol do architectures differ by more than training noise?

12 subnets spread over the latency range (the base, the cheapest, and 2 random subnets at each of
0.35 / 0.45 / 0.55 / 0.65 / 0.75 x the base's loop by the cost table, +-5 %) are each trained from
scratch with 3 seeds under `rcai.train.protocol.SIGNAL` (constant lr, EMA of the weights, one run
per subnet and seed evaluated at every step of `eval_at`, so the curve costs one training). Per step:
the seed-to-seed Spearman of the 12 subnets (mean over the seed pairs), the ICC(1) (between-subnet
variance / total), the pooled seed-to-seed sd of one subnet, the spread of the subnet means, and the
cost (core-seconds per subnet). Resumable: a killed run continues each training where it stopped.

With `--protocol NAME` (a registered protocol, rcai/train/protocol.py) other than `signal`, the
figures go to results/signal_NAME.{md,csv,png}; `--subnets` trains a subset of the plan, and the
trainings advance rung by rung (every subnet and seed to the first eval_at step, then on to the next),
so a study stopped early still has every subnet at the rungs it passed. Every training goes through
the one job type and the executors (rcai.train.protocol.protocol_job, rcai.search.executors).

Usage: python benchmarks/training_signal.py [--jobs 2] [--seeds 0 1 2] [--out benchmarks/.cache/signal]
       python benchmarks/training_signal.py --protocol cpu --subnets base cheapest r35-0 --seeds 0 1
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

from common import RESULTS, git_rev, load1, machine, write

FRACS = (0.35, 0.45, 0.55, 0.65, 0.75)
PREV = {"protocol": "cosine lr 2e-3, 800 steps, last weights (results/search_pareto.md)", "spearman": 0.58}


def plan(table_path: str, out: Path) -> dict[str, dict]:
    """name -> {choices, table_loop_ms}; fixed once in results/signal_plan.json."""
    if (RESULTS / "signal_plan.json").exists():
        return json.loads((RESULTS / "signal_plan.json").read_text())
    from rcai.cost.load import load_cost_model
    from rcai.evaluate import MatchedLatency
    from rcai.presets import get_preset

    at = MatchedLatency(load_cost_model(table_path, get_preset("tiny")), 50)
    archs = {"base": at.base, "cheapest": at.cheapest}
    for f in FRACS:
        for i, a in enumerate(at.random(f, 2, seed=9100 + round(f * 100))):
            archs[f"r{round(f * 100)}-{i}"] = a
    p = {k: {"choices": a, "table_loop_ms": at.loop(a), "frac": at.frac(a)} for k, a in archs.items()}
    (RESULTS / "signal_plan.json").write_text(json.dumps(p, indent=1))
    return p


PROTOCOL = "signal"  # set by --protocol


def protocol():
    from rcai.train.protocol import PROTOCOLS

    return PROTOCOLS.get(PROTOCOL)


def suffix() -> str:
    return "" if PROTOCOL == "signal" else f"_{PROTOCOL}"


def job(payload) -> dict:
    """Train one (subnet, seed) to `rung` (None: the whole protocol) as a TrainJob in this worker;
    CPU seconds add up over the rungs (cpu_s.json)."""
    name, choices, seed, out, proto, rung = payload
    from rcai.presets import get_preset
    from rcai.space.subnet import SubnetSpec
    from rcai.train.protocol import PROTOCOLS, curve, protocol_job

    from rcai.io import read_json

    run = Path(out) / f"{name}-s{seed}"
    t0 = time.process_time()
    if rung is not None and rung in curve(run):  # a rerun: this run went past the rung already
        m = read_json(run / "train" / "metrics.json", expect=dict)
    else:
        m = protocol_job(SubnetSpec(get_preset("tiny"), choices), seed, run, PROTOCOLS.get(proto), steps=rung, device="cpu").run()
    cpu = time.process_time() - t0
    spent = json.loads((run / "cpu_s.json").read_text()) if (run / "cpu_s.json").exists() else {}
    if cpu > 5:  # a rung read back from its folder costs nothing
        spent[str(m["train_steps"])] = cpu
        (run / "cpu_s.json").write_text(json.dumps(spent))
    return {"name": name, "seed": seed, "curve": curve(run), "final": m["quality"]["gain_db"], "cpu_s": sum(spent.values()),
            "steps": m["train_steps"], "params": m["params"], "precision": m.get("precision", "fp32")}


def committed(p: dict, name: str | None = None) -> list[dict]:
    """Finished (subnet, seed) curves of results/signal.csv (or of another protocol's, by its name): a
    later run (another session) trains only the rest."""
    from rcai.train.protocol import PROTOCOLS

    name = name or PROTOCOL
    SIGNAL = PROTOCOLS.get(name)
    path = RESULTS / ("signal.csv" if name == "signal" else f"signal_{name}.csv")
    if not path.exists():
        return []
    curves: dict[tuple[str, int], dict] = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            c = curves.setdefault((r["subnet"], int(r["seed"])), {"name": r["subnet"], "seed": int(r["seed"]), "curve": {}, "cpu_s": float(r["cpu_s"]),
                                                                  "precision": r.get("precision") or "unrecorded"})
            c["curve"][int(r["step"])] = float(r["quality_db"])
    return [c for (n, _), c in curves.items() if n in p and set(SIGNAL.eval_at) <= set(c["curve"])]


def analyse(rows: list[dict], p: dict, name: str | None = None) -> list[dict]:
    """Per eval step of the protocol (default: this run's): the agreement figures of the table."""
    import numpy as np

    from scipy.stats import spearmanr

    from rcai.stats import icc, icc_consistency, pooled_sd, seed_spearman
    from rcai.train.protocol import PROTOCOLS

    SIGNAL = PROTOCOLS.get(name or PROTOCOL)

    out = []
    for step in SIGNAL.eval_at:
        by = {}
        for r in rows:
            if step in r["curve"]:
                by.setdefault(r["name"], {})[r["seed"]] = r["curve"][step]
        by = {k: v for k, v in by.items() if len(v) >= 2}  # subnets measured under two seeds or more
        if len(by) < 3:
            continue
        means = [np.mean(list(v.values())) for v in by.values()]
        rho, pairs = seed_spearman(by)
        last = max(SIGNAL.eval_at)
        within = []  # does the ranking at this step predict the ranking at the last step, under one seed (a rung's job)?
        for seed in sorted({r["seed"] for r in rows}):
            both = [r for r in rows if r["seed"] == seed and step in r["curve"] and last in r["curve"]]
            if len(both) >= 4:
                within.append(float(spearmanr([r["curve"][step] for r in both], [r["curve"][last] for r in both])[0]))
        cost = np.median([r["cpu_s"] * step / r.get("steps", SIGNAL.steps) for r in rows])
        out.append({"step": step, "subnets": len(by), "spearman": rho, "spearman_pairs": pairs, "icc": icc({k: list(v.values()) for k, v in by.items()}),
                    "icc3": icc_consistency(by), "seed_shift": {s: float(np.mean([v[s] - np.mean(list(v.values())) for v in by.values() if s in v]))
                                                                for s in sorted({s for v in by.values() for s in v})},
                    "seed_sd": pooled_sd({k: list(v.values()) for k, v in by.items()}), "between_sd": float(np.std(means, ddof=1)),
                    "spread": float(max(means) - min(means)), "cpu_s": float(cost), "to_last": float(np.mean(within)) if within else float("nan")})
    return out


def _by_name(rows: list[dict]) -> dict[str, set]:
    out: dict[str, set] = {}
    for r in rows:
        out.setdefault(r["name"], set()).add(r["seed"])
    return out


def report(rows: list[dict], p: dict, stats: list[dict], started: str, args) -> None:
    import numpy as np

    SIGNAL = protocol()
    with open(RESULTS / f"signal{suffix()}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subnet", "table_frac_of_base", "seed", "step", "quality_db", "cpu_s", "precision"])
        for r in sorted(rows, key=lambda r: (r["name"], r["seed"])):
            for s, q in sorted(r["curve"].items()):
                w.writerow([r["name"], f"{p[r['name']]['frac']:.3f}", r["seed"], s, f"{q:.4f}", f"{r['cpu_s']:.0f}", r.get("precision", "")])
    if not stats:
        return
    last = max(s["step"] for s in stats)
    lines = [
        "# Signal before search: training length vs seed-to-seed agreement (issue 20 §1)",
        "",
        f"Machine: {started}; load avg at the end {load1():.2f}; rcai {git_rev()}. {args.note} "
        f"{len({r['name'] for r in rows})} subnets (base, cheapest, 2 random at each of {', '.join(map(str, FRACS))} x the base's table loop) x "
        f"seeds {sorted({r['seed'] for r in rows})}, tiny preset, trained from scratch with the `{PROTOCOL}` protocol (rcai/train/protocol.py): "
        f"{SIGNAL.to_dict()}, precision {sorted({r.get('precision', 'unrecorded') for r in rows})}; each (subnet, seed) is one run evaluated at every step of eval_at on the 64 held-out crops "
        "(primary metric: posterior-mean gain over bicubic, dB). Reproduce: `python benchmarks/training_signal.py --jobs 2"
        + (f" --protocol {PROTOCOL} --subnets {' '.join(sorted(_by_name(rows)))} --seeds {' '.join(map(str, sorted({r['seed'] for r in rows})))}" if suffix() else "") + "`.",
        "",
        f"Figures over the subnets trained with two seeds or more: {sum(len(v) >= 2 for v in _by_name(rows).values())} of {len(p)}.",
        "",
        "| steps | subnets | seed-vs-seed Spearman (mean of pairs) | pairs | ICC(1) | ICC(3,1) consistency | each seed's shift (dB) | one subnet's seed sd (dB) | sd of subnet means (dB) | spread of means (dB) | rank vs the last step, same seed | CPU s per subnet |",
        "|---:|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for s in stats:
        lines.append(f"| {s['step']} | {s['subnets']} | {s['spearman']:+.2f} | {' '.join(f'{x:+.2f}' for x in s['spearman_pairs'])} | {s['icc']:.2f} | {s['icc3']:.2f} | "
                     f"{' '.join(f's{k} {v:+.3f}' for k, v in s['seed_shift'].items())} | {s['seed_sd']:.3f} | {s['between_sd']:.3f} | {s['spread']:.3f} | {s['to_last']:+.2f} | {s['cpu_s']:.0f} |")
    lines += ["", "ICC(1) counts a seed that is lucky for every subnet as noise; ICC(3,1) removes each seed's common shift first: "
              "the figure for comparisons made under one common training seed, as `rcai search --strategy halving` makes them "
              "(`--train-seed`). \"Rank vs the last step\": Spearman of the subnets' quality at that step against their quality at the "
              "last step under the same seed (mean over seeds): how well a rung of a multi-fidelity search predicts the full training.", "", f"Previous protocol ({PREV['protocol']}): seed 0 vs seed 1 Spearman {PREV['spearman']:+.2f} over 10 subnets.", "",
              f"Per subnet at {last} steps (mean ± sd over seeds):", "", "| subnet | table loop (x base) | quality (dB) | per seed |", "|---|---:|---:|---|"]
    by = {}
    for r in rows:
        if last in r["curve"]:
            by.setdefault(r["name"], {})[r["seed"]] = r["curve"][last]
    for name, v in sorted(by.items(), key=lambda kv: -p[kv[0]]["frac"]):
        q = list(v.values())
        lines.append(f"| {name} | {p[name]['frac']:.2f} | {np.mean(q):+.3f} ± {np.std(q, ddof=1) if len(q) > 1 else float('nan'):.3f} | "
                     + " ".join(f"s{k} {x:+.3f}" for k, x in sorted(v.items())) + " |")
    goal = [s for s in stats if s["spearman"] >= 0.8 and s["icc"] >= 0.8]
    lines += ["", "Reading: " + (f"the goal (Spearman >= 0.8 and ICC >= 0.8) is first met at {goal[0]['step']} steps "
                                 f"({goal[0]['cpu_s']:.0f} CPU s per subnet)." if goal else
                                 f"the goal (Spearman >= 0.8 and ICC >= 0.8) is not met up to {last} steps; best: Spearman "
                                 f"{max(s['spearman'] for s in stats):+.2f}, ICC {max(s['icc'] for s in stats):.2f}.")]
    if suffix():
        lines += [""] + against_signal(stats, by, p)
    lines += ["", f"![curve](signal{suffix()}.png)", ""]
    write(f"signal{suffix()}.md", "\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    steps = [s["step"] for s in stats]
    a1.plot(steps, [s["spearman"] for s in stats], "o-", label="seed-vs-seed Spearman")
    a1.plot(steps, [s["icc"] for s in stats], "s-", label="ICC(1)")
    a1.plot(steps, [s["icc3"] for s in stats], "^-", label="ICC(3,1), seed shift removed")
    a1.plot(steps, [s["to_last"] for s in stats], "x:", label="rank vs last step, same seed")
    a1.axhline(0.8, color="gray", ls="--", lw=1)
    a1.set_xlabel("training steps")
    a1.set_ylim(-0.2, 1.0)
    a1.legend(fontsize=8)
    for name, v in by.items():
        xs = [p[name]["frac"]] * len(v)
        a2.scatter(xs, list(v.values()), s=10)
    a2.set_xlabel("table loop latency / base's")
    a2.set_ylabel(f"quality at {last} steps (dB)")
    fig.tight_layout()
    fig.savefig(RESULTS / f"signal{suffix()}.png", dpi=100)
    plt.close(fig)


def against_signal(stats: list[dict], by: dict, p: dict) -> list[str]:
    """Issue 31's goals for a faster protocol, beside the `signal` protocol (batch 8, fp32) on the same subnets."""
    import numpy as np

    base = by.get("base", {})
    gain = float(np.mean(list(base.values()))) if base else float("nan")
    held = [s["step"] for s in stats if s["subnets"] == len(p) and s["icc3"] >= 0.9 and s["spearman"] >= 0.85]
    out = [f"Against issue 31's goals (all {len(p)} subnets: ICC(3,1) >= 0.9 and seed-vs-seed Spearman >= 0.85; the base's gain >= +1.2 dB): "
           + (f"ICC and Spearman hold at {', '.join(map(str, held))} steps" if held else "ICC and Spearman do not both hold at any step")
           + f"; the base's gain at {stats[-1]['step']} steps is {gain:+.3f} dB ({'holds' if gain >= 1.2 else f'{1.2 - gain:.3f} dB short'})."]
    seeds = {seed for v in by.values() for seed in v}
    old_rows = [r for r in committed(p, "signal") if r["seed"] in seeds]  # the same seeds: one pair against one pair
    if old_rows:
        old = {s["step"]: s for s in analyse(old_rows, p, "signal")}
        out += ["", f"The `signal` protocol (batch 8, fp32, results/signal.md) on the same subnets and seeds {sorted(seeds)}, at the same steps "
                "(its CPU seconds were measured on another machine, an Intel Xeon, at another load):", "",
                "| steps | protocol | subnets | seed-vs-seed Spearman | ICC(3,1) | one subnet's seed sd (dB) | spread of means (dB) | CPU s per subnet |",
                "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for s in stats:
            for name, row in ((PROTOCOL, s), ("signal", old.get(s["step"]))):
                if row:
                    out.append(f"| {s['step']} | {name} | {row['subnets']} | {row['spearman']:+.2f} | {row['icc3']:.2f} | {row['seed_sd']:.3f} | "
                               f"{row['spread']:.3f} | {row['cpu_s']:.0f} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cost-table", default="latency_tables/cpu-tiny.csv")
    ap.add_argument("--out", default="benchmarks/.cache/signal")
    ap.add_argument("--report-only", action="store_true", help="rewrite signal.md/.png from results/signal.csv")
    ap.add_argument("--note", default="", help="a sentence for the report (e.g. the load the trainings ran at)")
    ap.add_argument("--protocol", default="signal", help="a registered training protocol (rcai/train/protocol.py)")
    ap.add_argument("--subnets", nargs="+", default=None, help="names of the plan to train (default: all 12)")
    args = ap.parse_args()
    global PROTOCOL
    PROTOCOL = args.protocol
    protocol()  # an unknown name fails here
    out = Path(args.out) if args.protocol == "signal" else Path(args.out + suffix())
    started = machine()
    p = plan(args.cost_table, out)
    if args.subnets:
        unknown = set(args.subnets) - set(p)
        if unknown:
            raise SystemExit(f"--subnets: not in the plan: {sorted(unknown)} (known: {sorted(p)})")
        p = {k: v for k, v in p.items() if k in args.subnets}
    rows = committed(p)
    if args.report_only:
        return report(rows, p, analyse(rows, p), started, args)
    from rcai.search.executors import make_executor

    have = {(r["name"], r["seed"]) for r in rows}
    pool = make_executor("local", args.jobs, threads=1)
    try:
        if args.protocol == "signal":  # the original order: whole trainings, seed-major (a partial run already pairs seeds)
            todo = [(n, p[n]["choices"], s, str(out), PROTOCOL, None) for s in args.seeds for n in p if (n, s) not in have]
            for i, r in enumerate(pool.map(job, todo), 1):
                rows.append(r)
                print(f"[{i}/{len(todo)}] {r['name']} seed {r['seed']}: " + " ".join(f"{s}:{q:+.3f}" for s, q in sorted(r["curve"].items())), flush=True)
                report(rows, p, analyse(rows, p), started, args)
        else:  # rung by rung: every (subnet, seed) reaches a rung before any goes further
            todo = [(n, p[n]["choices"], s, str(out), PROTOCOL) for n in p for s in args.seeds if (n, s) not in have]
            for rung in protocol().eval_at:
                done = pool.map(job, [t + (rung,) for t in todo])
                rows = [r for r in rows if (r["name"], r["seed"]) in have] + done
                print(f"rung {rung}: " + " ".join(f"{r['name']}/s{r['seed']} {r['curve'][rung]:+.3f}" for r in done), flush=True)
                report(rows, p, analyse(rows, p), started, args)
    finally:
        pool.close()
    report(rows, p, analyse(rows, p), started, args)


if __name__ == "__main__":
    main()
