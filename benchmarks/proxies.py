"""Issue 14: how well does each quality estimator rank tiny subnets by their trained quality?

Ground truth: the search-quality protocol's architectures (benchmarks/search_pareto.py), every one
trained from scratch and scored by the primary metric (rcai/train/quality.py, gain over bicubic, dB),
read from its results.jsonl (a subnet trained with several seeds: the mean). Every proxy of rcai/proxies
is computed on each distinct subnet (seeded init, fixed batch) and compared by Spearman ρ and Kendall τ,
with 95% bootstrap intervals over subnets. Beside them: a random score (what no information gives),
the table's loop latency, the ground truth's own seed-to-seed agreement (the ceiling), and the vote as
its rank-sum form over the set (Abdelfattah et al.'s pairwise majority, summed) next to the per-subnet
vote that strategies use. Also per budget: ρ among the random subnets of one latency (±5%), where
size proxies cannot win by tracking latency.

Proxy scores are cached per subnet in --cache, so a re-run with more results only computes new ones.
Beside each ρ: the same proxy's ρ in an earlier run's per-subnet csv (--previous; by default the first
search-quality run, L1 loss and constant lr: results/proxies_l1.csv).
Usage: python benchmarks/proxies.py [--results /work/main/runs/pareto-v2/results.jsonl] [--short-train]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from common import git_rev, load_text, machine, write

from rcai.targets.sysinfo import load_average

MEMBERS_RANK_SUM = ("synflow", "jacob_cov", "snip")  # rcai.proxies.vote.MEMBERS (checked in main)


def ground_truth(path: Path) -> dict[str, dict]:
    from rcai.evaluate import finished

    archs: dict[str, dict] = {}
    for r in finished(path):
        if "quality" not in r:
            continue
        a = archs.setdefault(r["arch"], {"choices": r["choices"], "by_seed": {}, "methods": set(), "budgets": set()})
        a["by_seed"][r["seed"]] = r["quality"]
        a["methods"].add(r["method"])
        a["budgets"].add(r["budget_frac"]) if r["method"] == "random" else None
    for a in archs.values():
        a["quality"] = statistics.mean(a["by_seed"].values())
    return archs


def previous_rho(path: Path, names: list[str]) -> tuple[int, dict[str, float]]:
    """Spearman ρ of each proxy vs quality in an earlier run's per-subnet csv (0, {} if absent)."""
    from scipy.stats import spearmanr

    if not path.is_file():
        return 0, {}
    lines = [x.split(",") for x in path.read_text().splitlines() if x.strip()]
    head, body = lines[0], lines[1:]
    col = lambda n: np.array([float(r[head.index(n)]) for r in body])  # noqa: E731
    q = col("quality")
    out = {n: float(spearmanr(col(n), q).statistic) for n in names if n in head}
    if all(m in head for m in MEMBERS_RANK_SUM):
        out["vote (rank sum over the set)"] = float(spearmanr(sum(np.argsort(np.argsort(col(m))) for m in MEMBERS_RANK_SUM), q).statistic)
    if "table_loop_ms" in head:
        out["table loop latency"] = float(spearmanr(col("table_loop_ms"), q).statistic)
    return len(body), out


def method_counts(gt: dict[str, dict]) -> str:
    methods = sorted({m for a in gt.values() for m in a["methods"]})
    return ", ".join(f"{m} {sum(m in a['methods'] for a in gt.values())}" for m in methods)


def boot_ci(x: np.ndarray, y: np.ndarray, stat, n: int, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        i = rng.integers(0, len(x), len(x))
        if len(set(x[i])) > 1 and len(set(y[i])) > 1:
            vals.append(stat(x[i], y[i]))
    lo, hi = np.nanpercentile(vals, [2.5, 97.5])
    return float(stat(x, y)), float(lo), float(hi)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="/work/main/runs/pareto-v2/results.jsonl")
    ap.add_argument("--cache", default="runs/proxies-v2/scores.jsonl", help="proxy scores per subnet (scores under another preset loss need another file)")
    ap.add_argument("--short-train", action="store_true", help="also the short-training estimator (seconds per subnet)")
    ap.add_argument("--supernet", default="/work/main/runs/pareto-v2/searched-0.8-s0/search/supernet.pt",
                    help="trained supernet for the inherited-weights estimator (skipped if absent)")
    ap.add_argument("--boot", type=int, default=2000)
    ap.add_argument("--previous", default=str(Path(__file__).resolve().parent / "results" / "proxies_l1.csv"),
                    help="an earlier run's proxies.csv (another protocol): its ρ per proxy goes beside today's")
    ap.add_argument("--previous-results", default="/work/main/runs/pareto/results.jsonl", help="the previous protocol's results.jsonl (its seed-to-seed ρ)")
    ap.add_argument("--previous-label", default="the first search-quality run (/work/main/runs/pareto): trained with the L1 loss and a constant lr, "
                    "proxies on the L1 loss")
    args = ap.parse_args()
    import torch
    from scipy.stats import kendalltau, spearmanr

    torch.set_num_threads(1)
    from rcai.cost.load import load_cost_model
    from rcai.proxies import PROXIES, ProxyConfig, make_estimator
    from rcai.proxies.vote import MEMBERS

    assert tuple(MEMBERS) == MEMBERS_RANK_SUM
    from rcai.presets import get_preset

    preset = get_preset("tiny")
    cfg = ProxyConfig()
    load_start = load_average()
    gt = ground_truth(Path(args.results))
    names = [n for n in PROXIES.names() if (n != "short_train" or args.short_train) and (n != "inherited" or Path(args.supernet).is_file())]
    cfg_of = lambda n: replace(cfg, supernet=args.supernet) if n == "inherited" else cfg  # noqa: E731
    cache_path = Path(args.cache)
    cache: dict[tuple[str, str], dict] = {}
    if cache_path.exists():
        for line in cache_path.read_text().splitlines():
            r = json.loads(line)
            if r.get("config") == cfg_of(r["proxy"]).to_dict():
                cache[(r["arch"], r["proxy"])] = r
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        est = None
        for h, a in gt.items():
            if (h, name) in cache:
                continue
            est = est or make_estimator(name, preset, cfg_of(name))
            t0 = time.perf_counter()
            score = est(a["choices"])
            rec = {"arch": h, "proxy": name, "score": score, "seconds": time.perf_counter() - t0, "config": cfg_of(name).to_dict()}
            cache[(h, name)] = rec
            with open(cache_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
        print(f"{name}: done", file=sys.stderr, flush=True)

    table = load_cost_model("latency_tables/cpu-tiny.csv", preset, warn=lambda m: None)
    hs = sorted(gt)
    q = np.array([gt[h]["quality"] for h in hs])
    cols: dict[str, np.ndarray] = {n: np.array([cache[(h, n)]["score"] for h in hs]) for n in names}
    secs = {n: statistics.median(cache[(h, n)]["seconds"] for h in hs) for n in names}
    ranks = {m: np.argsort(np.argsort(cols[m])) for m in MEMBERS}
    cols["vote (rank sum over the set)"] = sum(ranks.values()).astype(float)
    baselines = {"random score (no information)": np.random.default_rng(0).random(len(hs)),
                 "table loop latency": np.array([table.estimate(gt[h]["choices"], 50).loop_ms for h in hs])}
    rho = lambda x, y: spearmanr(x, y).statistic  # noqa: E731
    tau = lambda x, y: kendalltau(x, y).statistic  # noqa: E731

    cis: dict[str, tuple[float, float]] = {}
    n_prev, prev = previous_rho(Path(args.previous), names)

    def row(name, x, s="") -> tuple[float, str]:
        r, rlo, rhi = boot_ci(x, q, rho, args.boot)
        t, tlo, thi = boot_ci(x, q, tau, args.boot)
        cis[name] = (rlo, rhi)
        groups = {}
        for i, h in enumerate(hs):
            if gt[h]["methods"] == {"random"} and len(gt[h]["budgets"]) == 1:
                groups.setdefault(next(iter(gt[h]["budgets"])), []).append(i)
        within = [f"{b:g}: {rho(x[idx], q[idx]):+.2f} (n={len(idx)})" for b, idx in sorted(groups.items()) if len(idx) >= 5]
        p = f"{prev[name]:+.3f}" if name in prev else "–"
        return r, f"| {name} | {r:+.3f} [{rlo:+.2f}, {rhi:+.2f}] | {t:+.3f} [{tlo:+.2f}, {thi:+.2f}] | {'; '.join(within) or '–'} | {p} | {s} |"

    cols_rho = {n: rho(cols[n], q) for n in cols}
    rows = sorted((row(n, cols[n], f"{secs[n]:.2f}" if n in secs else "from its members") for n in cols), key=lambda r: -r[0])
    ranked = [(i + 1, r) for i, r in enumerate(rows)]
    def seed_rho(gt_: dict[str, dict]) -> str:
        pairs = [(a["by_seed"][0], a["by_seed"][1]) for a in gt_.values() if 0 in a["by_seed"] and 1 in a["by_seed"]]
        if len(pairs) < 3:
            return f"only {len(pairs)} subnets trained with two seeds so far (need ≥ 3)"
        x0, x1 = np.array(pairs).T
        r, lo, hi = boot_ci(x0, x1, rho, args.boot)
        return f"{len(pairs)} subnets trained with seeds 0 and 1, Spearman ρ seed 0 vs seed 1 = {r:+.3f} [{lo:+.2f}, {hi:+.2f}]"

    ceiling = f"Ground truth's own repeatability (the ceiling no proxy can beat): {seed_rho(gt)}."
    if Path(args.previous_results).is_file():
        ceiling += f" Under the previous protocol (`{args.previous_results}`): {seed_rho(ground_truth(Path(args.previous_results)))}."
    lines = [
        "# Zero-cost proxies vs trained quality (tiny)", "",
        f"`benchmarks/proxies.py`, rcai {git_rev()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: {machine()}; "
        f"load average (1/5/15 min) at start {load_text(load_start)}, at end "
        f"{load_text(load_average())}; 1 torch thread.", "",
        f"Ground truth: {len(hs)} distinct subnets of tiny from `{args.results}` "
        f"({sum(len(a['by_seed']) for a in gt.values())} trainings; methods: "
        f"{method_counts(gt)}), "
        f"each trained from scratch and scored by the primary quality metric (gain over bicubic, dB; mean over seeds). "
        f"Quality range {q.min():+.3f} to {q.max():+.3f} dB, median {np.median(q):+.3f}.", "",
        f"Proxies: seeded init (seed {cfg.seed}, output conv drawn), a fixed batch of {cfg.batch} training crops, the loss is the "
        f"preset's training loss (`preset_loss`: v-prediction, {preset.loss.upper()}; rcai/proxies/base.py). `inherited`: the subnet's weights copied from the trained "
        f"supernet `{args.supernet}` (a default search run of the same protocol), scored by the quality metric untrained further. Intervals: 95% bootstrap over subnets "
        f"({args.boot} resamples). s/subnet: median seconds per subnet (1 thread, shared machine).", "",
        ceiling, "",
        f"Previous protocol (column 'ρ before'): `{Path(args.previous).name}`, {n_prev} subnets, {args.previous_label}.", "",
        "| rank | proxy | Spearman ρ [95% CI] | Kendall τ [95% CI] | ρ within one budget (random subnets at ±5% of the loop) | ρ before | s/subnet |",
        "|---:|---|---:|---:|---|---:|---:|",
    ]
    lines += [f"| {i} {line}" for i, (_, line) in ranked]
    perm = np.random.default_rng(1)
    null = [rho(perm.permutation(len(hs)), q) for _ in range(2000)]
    null8 = [rho(perm.permutation(8), np.arange(8)) for _ in range(2000)]
    lines += ["", f"No information: a score unrelated to quality lands within Spearman ρ {np.percentile(null, 2.5):+.2f} .. "
              f"{np.percentile(null, 97.5):+.2f} for {len(hs)} subnets in 95% of draws (2000 random permutations), and within "
              f"{np.percentile(null8, 2.5):+.2f} .. {np.percentile(null8, 97.5):+.2f} for the 8 subnets of one budget: a proxy "
              "inside that band has shown nothing."]
    sure = [n for n in cols if cis[n][0] > 0]
    wrong = [n for n in cols if cis[n][1] < 0]
    vote_rank = next(i for i, (_, line) in ranked if line.startswith("| vote |"))
    lines += ["", f"Reading: {', '.join(sure) if sure else 'no estimator'} ha{'ve' if len(sure) > 1 else 's'} a Spearman interval above 0 over all "
              f"{len(hs)} subnets ({len(sure)} of {len(ranked)})" + (f"; {', '.join(wrong)} rank{'s' if len(wrong) == 1 else ''} them the wrong way round "
              "(interval below 0)" if wrong else "") + f"; the per-subnet vote ranks {vote_rank} of {len(ranked)}. "
              "Within one budget, n = 8 leaves any ρ inside ±0.7 unproven."]
    prev_est = sorted(((v, k) for k, v in prev.items() if k in cols), reverse=True)
    if prev_est:
        order = [k for _, k in prev_est]
        moved = sorted(((cols_rho[k] - v, k) for v, k in prev_est), reverse=True)
        vote = f", the per-subnet vote ranked {order.index('vote') + 1} of {len(order)}" if "vote" in order else ""
        lines += ["", f"Before (the previous protocol, {n_prev} subnets): best {order[0]} ρ {prev_est[0][0]:+.3f}{vote}. Largest changes of ρ "
                  "since: " + ", ".join(f"{k} {d:+.2f}" for d, k in moved[:3]) + "; " + ", ".join(f"{k} {d:+.2f}" for d, k in moved[-2:]) + "."]
    lines += ["", "Baselines (not proxies):", "", "| baseline | Spearman ρ [95% CI] | Kendall τ [95% CI] | within one budget | ρ before | |", "|---|---:|---:|---|---:|---|"]
    lines += [row(n, x)[1] for n, x in baselines.items()]
    lines += ["", f"Vote members: {', '.join(MEMBERS)}. `vote` is the per-subnet score the strategies use (each member's score "
              "placed among 16 fixed random references, averaged); the rank-sum form needs the whole set and so cannot drive a search.", ""]
    if len(hs) < 30:
        lines += [f"**Only {len(hs)} subnets so far (the goal is ≥ 30): the search-quality run was still adding results; intervals are wide.**", ""]
    lines += ["Per-subnet scores: `proxies.csv`.", ""]
    print("\n".join(lines))
    write("proxies.md", "\n".join(lines) + "\n")
    header = ["arch", "methods", "seeds", "quality"] + names + ["table_loop_ms"]
    csv = [",".join(header)] + [",".join([h, "+".join(sorted(gt[h]["methods"])), str(len(gt[h]["by_seed"])), f"{q[i]:.6g}"]
                                         + [f"{cols[n][i]:.6g}" for n in names] + [f"{baselines['table loop latency'][i]:.4g}"])
                                for i, h in enumerate(hs)]
    write("proxies.csv", "\n".join(csv) + "\n")


if __name__ == "__main__":
    main()
