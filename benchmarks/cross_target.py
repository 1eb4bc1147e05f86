"""Issue 13: is the search hardware-aware? Search the tiny space under the same relative budget with
two targets' cost tables (ONNX Runtime 1 thread, torch eager 1 thread: same CPU, different per-op
character), then measure both chosen subnets' whole sampling loops on both targets, interleaved.
On each target, the subnet searched for it should be at least as fast at equal or better quality.

Usage: python benchmarks/cross_target.py [--seeds 0] [--steps 150] [--finetune 100]
Runs are resumable (finished searches, metrics.json present, are reused).

With the GPU (issue 32): `--gpu-table latency_tables/gpu-tiny.csv --proxy-only` adds the GPU target (its
table, --device gpu) and runs the table-only selection alone: the subnet each table picks under its
budget, every pick measured on every target (the GPU loop on the GPU, the CPU ones on this CPU);
results in cross_target_gpu.md/.csv. benchmarks/gpu/target.py runs the same selection in its one shot.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from common import RESULTS, add_train_device, git_rev, machine, write

from rcai.cost.archs import sample_archs
from rcai.cost.model import TableCostModel
from rcai.cost.table import CostTable
from rcai.deploy.bench import BenchConfig
from rcai.deploy.compare import compare_loops
from rcai.deploy.export import export_subnet_onnx
from rcai.io import atomic_write_csv, read_json
from rcai.search.config import DartsOptions
from rcai.search.strategies.base import StrategyConfig
from rcai.search.strategies.run import run_strategy
from rcai.presets import get_preset
from rcai.space.subnet import SubnetSpec
from rcai.train.evaluate import EvalConfig

# target name -> (cost table, engine of the whole-loop measurement)
TARGETS = {"ort": ("latency_tables/cpu-tiny.csv", "cpu"), "torch": ("latency_tables/torch-tiny.csv", "torch")}  # table, --device


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--finetune", type=int, default=100)
    ap.add_argument("--budget-factor", type=float, default=1.6, help="budget = base table loop latency / factor, per table")
    ap.add_argument("--steps-per-sample", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--eval-images", type=int, default=8)
    ap.add_argument("--out", default="runs/cross_target2")
    ap.add_argument("--proxy-archs", type=int, default=4000, help="uniform + as many skewed subnets for the table-only selection")
    ap.add_argument("--proxy-budget-factor", type=float, default=1.3)
    ap.add_argument("--gpu-table", default=None, help="a GPU cost table (rcai profile --device gpu): adds the GPU target")
    ap.add_argument("--proxy-only", action="store_true", help="only the table-only selection (no searches)")
    add_train_device(ap)
    args = ap.parse_args()
    if args.gpu_table:
        TARGETS["gpu"] = (args.gpu_table, "gpu")
    if args.proxy_only:
        models = {t: TableCostModel(get_preset("tiny"), CostTable.load(path)) for t, (path, _) in TARGETS.items()}
        md = [f"# Cross-target, table-only selection{' with the GPU' if args.gpu_table else ''}", "", f"Machine: {machine()}; git {git_rev()}."]
        md += proxy_section(models, args, "cross_target_gpu" if args.gpu_table else "cross_target_proxy")
        print("\n".join(md))
        write(("cross_target_gpu" if args.gpu_table else "cross_target_proxy") + ".md", "\n".join(md) + "\n")
        return
    preset, S = get_preset("tiny"), args.steps_per_sample
    models = {t: TableCostModel(preset, CostTable.load(path)) for t, (path, _) in TARGETS.items()}
    ev = EvalConfig(steps=20, max_images=args.eval_images)
    runs: dict[tuple[int, str], Path] = {}
    budgets = {}
    for seed in args.seeds:
        for t, (table_path, _) in TARGETS.items():
            budgets[t] = models[t].estimate(models[t].space.base_arch(), S).loop_ms / args.budget_factor
            d = Path(args.out) / f"seed{seed}" / t
            if not (d / "metrics.json").exists():
                cfg = StrategyConfig(strategy="darts", preset="tiny", cost_table=table_path, latency_budget_ms=budgets[t], steps_per_sample=S,
                                     seed=seed, darts=DartsOptions(steps=args.steps, warmup_steps=args.warmup, finetune_steps=args.finetune, eval=ev,
                                                                        train_device=args.train_device, train_precision=args.train_precision))
                run_strategy(cfg, d, resume=(d / "config.json").exists())
            runs[(seed, t)] = d
    candidates = {}
    for (seed, searched_for), d in runs.items():
        onnx_path = d / "model.onnx"
        if not onnx_path.exists():
            export_subnet_onnx(SubnetSpec.load(d / "subnet.json"), torch.load(d / "subnet.pt", weights_only=True), onnx_path,
                               weights_path=d / "subnet.pt")
        for on, (_, engine) in TARGETS.items():
            candidates[f"{seed}|{searched_for}|{on}"] = (onnx_path, engine)
    timing = compare_loops(candidates, BenchConfig(sampler="ddim", steps=S, threads=1, psnr=False), rounds=args.rounds)
    rows = []
    for (seed, searched_for), d in runs.items():
        m, spec = read_json(d / "metrics.json"), SubnetSpec.load(d / "subnet.json")
        for on in TARGETS:
            t = timing[f"{seed}|{searched_for}|{on}"]
            rows.append({"seed": seed, "searched_for": searched_for, "measured_on": on, "subnet": spec.hash,
                         "table_loop_ms": models[on].estimate(spec.choices, S).loop_ms, "measured_loop_ms": t["median_ms"],
                         "repeatability": t["repeatability"], "engine": t["engine"], "quality": m["quality"]["gain_db"], "psnr": m["psnr"], "ssim": m["ssim"],
                         "bicubic_psnr": m["bicubic_psnr"], "choices": ",".join(f"{k}={v}" for k, v in sorted(spec.choices.items()))})
    atomic_write_csv(RESULTS / "cross_target.csv", rows)
    md = [
        "# Cross-target: the subnet searched for each target, measured on both",
        "",
        f"Machine: {machine()}; git {git_rev()}. Both targets on this CPU with 1 thread: ONNX Runtime (table "
        f"`{TARGETS['ort'][0]}`) and torch eager (table `{TARGETS['torch'][0]}`).",
        f"Search: tiny preset, seeds {args.seeds}, {args.steps} bilevel steps ({args.warmup} warm-up) + {args.finetune} fine-tune "
        f"steps; same relative budget on each table: base loop / {args.budget_factor} "
        f"(ORT {budgets['ort']:.1f} ms, torch {budgets['torch']:.1f} ms; DDIM {S} steps, batch 1).",
        f"Measured: whole DDIM loops, median of {args.rounds} interleaved rounds (3 timed loops each) over all 4 (subnet, target) pairs.",
        "Quality: the search's own inherited-and-fine-tuned subnet, primary metric of rcai/train/quality.py (posterior-mean "
        f"PSNR gain over bicubic on the held-out photos, dB); PSNR/SSIM: DDIM 20 steps on {args.eval_images} crops.",
        "",
        "| seed | searched for | measured on | subnet | table loop ms | measured loop ms | repeatability | quality dB | PSNR | SSIM |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        md.append(f"| {r['seed']} | {r['searched_for']} | {r['measured_on']} | {r['subnet']} | {r['table_loop_ms']:.1f} | "
                  f"{r['measured_loop_ms']:.1f} | {r['repeatability']:.1%} | {r['quality']:+.3f} | {r['psnr']:.2f} | {r['ssim']:.3f} |")
    md += ["", "Per target, own subnet vs the other target's subnet (measured):", ""]
    for seed in args.seeds:
        for on in TARGETS:
            own = next(r for r in rows if r["seed"] == seed and r["measured_on"] == on and r["searched_for"] == on)
            other = next(r for r in rows if r["seed"] == seed and r["measured_on"] == on and r["searched_for"] != on)
            verdict = "faster" if own["measured_loop_ms"] < other["measured_loop_ms"] else "NOT faster"
            md.append(f"- seed {seed}, on {on}: own subnet {own['measured_loop_ms']:.1f} ms vs {other['measured_loop_ms']:.1f} ms "
                      f"({other['measured_loop_ms'] / own['measured_loop_ms']:.2f}x, {verdict}); quality {own['quality']:+.3f} vs "
                      f"{other['quality']:+.3f} dB" + (" (same subnet)" if own["subnet"] == other["subnet"] else ""))
    md += ["", "Choices:", ""] + [f"- {r['searched_for']} (seed {r['seed']}): {r['choices']}" for r in rows if r["measured_on"] == "ort"]
    md += proxy_section(models, args)
    print("\n".join(md))
    write("cross_target.md", "\n".join(md) + "\n")


def proxy_section(models: dict[str, TableCostModel], args: argparse.Namespace, name: str = "cross_target_proxy") -> list[str]:
    """Table-only selection with a fixed quality proxy (params): per table, the subnet with the most
    parameters whose table loop latency fits that table's budget; then both picks measured on both."""
    S, space = args.steps_per_sample, next(iter(models.values())).space
    archs = sample_archs(space, args.proxy_archs, 0, "uniform") + sample_archs(space, args.proxy_archs, 1, "skewed")
    est = {t: [m.estimate(a, S) for a in archs] for t, m in models.items()}
    budgets = {t: m.estimate(space.base_arch(), S).loop_ms / args.proxy_budget_factor for t, m in models.items()}
    picks = {}
    for t in models:
        fits = [i for i, e in enumerate(est[t]) if e.loop_ms <= budgets[t]]
        picks[t] = max(fits, key=lambda i: est[t][i].params)
    out = Path(args.out) / "proxy"
    candidates = {}
    for t, i in picks.items():
        spec = SubnetSpec(get_preset("tiny"), archs[i])
        path, weights = out / f"{t}.onnx", out / f"{t}.pt"
        if not path.exists():
            torch.manual_seed(0)
            state = spec.build().state_dict()
            out.mkdir(parents=True, exist_ok=True)
            torch.save(state, weights)
            export_subnet_onnx(spec, state, path, weights_path=weights, verify=False)
        for on, (_, engine) in TARGETS.items():
            candidates[f"{t}|{on}"] = (path, engine)
    timing = compare_loops(candidates, BenchConfig(sampler="ddim", steps=S, threads=1, psnr=False), rounds=args.rounds + 2)
    rows = [{"picked_for": t, "measured_on": on, "subnet": SubnetSpec(get_preset("tiny"), archs[i]).hash, "params": est[on][i].params,
             "table_loop_ms": est[on][i].loop_ms, "budget_ms": budgets[on], "measured_loop_ms": timing[f"{t}|{on}"]["median_ms"],
             "repeatability": timing[f"{t}|{on}"]["repeatability"]} for t, i in picks.items() for on in TARGETS]
    atomic_write_csv(RESULTS / f"{name}.csv", rows)
    md = ["", "## Table-only selection with a fixed quality proxy", "",
          f"Per table, among {2 * args.proxy_archs} sampled subnets ({args.proxy_archs} uniform + {args.proxy_archs} skewed), the one with "
          f"the most parameters (a stand-in for quality, not a trained result) whose table loop fits base / {args.proxy_budget_factor} "
          f"({', '.join(f'{t} {b:.1f} ms' for t, b in budgets.items())}). Every pick measured on every target: median of "
          f"{args.rounds + 2} interleaved rounds.", "",
          "| picked for | measured on | subnet | params | table loop ms | budget ms | measured loop ms | repeatability |",
          "|---|---|---|---:|---:|---:|---:|---:|"]
    md += [f"| {r['picked_for']} | {r['measured_on']} | {r['subnet']} | {r['params']:,.0f} | {r['table_loop_ms']:.1f} | {r['budget_ms']:.1f} | "
           f"{r['measured_loop_ms']:.1f} | {r['repeatability']:.1%} |" for r in rows]
    return md


if __name__ == "__main__":
    main()
