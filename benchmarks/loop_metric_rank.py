"""Issue 40: does the loop-quality metric rank models stably? Seed-vs-seed Spearman over trained subnets.

Models: every subnet of the one-shot plan (results/oneshot_plan.json) trained here from scratch under
two seeds by oneshot_scratch.py (the `cpu` protocol to step 800; benchmarks/.cache/oneshot/scratch/
NAME-sSEED/train/model.pt). Each is judged by the deployed loop (rcai/train/loop_quality.py: ddim,
`--steps` denoiser calls, `--seeds` noise seeds on `--crops` held-out crops, one thread) and, beside
it, by the primary metric (posterior-mean gain over bicubic, read from the training's curve).

For each metric: Spearman and Kendall of training seed A vs training seed B over the subnets (how
stably the metric ranks models), and Spearman of each loop figure against the posterior mean (mean
of the seeds). Writes results/loop_metric.{md,csv}. Cached per model (.cache/oneshot/loop-metric.json).

Usage: python benchmarks/loop_metric_rank.py [--steps 10 --seeds 4 --crops 16]
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from common import RESULTS, git_rev, load1, machine, write
from oneshot_scratch import CACHE as SCRATCH, load_plan, quality

CACHE = Path("benchmarks/.cache/oneshot/loop-metric.json")
STEP = 800
FIGURES = ("sample_psnr", "mean_psnr", "sample_ssim", "consistency_psnr")


def judged(run: Path, cfg) -> dict[str, float]:
    """The loop-quality figures of one trained run, cached by run folder and config."""
    done = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    key = f"{run}|{cfg.steps}|{cfg.seeds}|{cfg.crops}"
    if key not in done:
        import torch

        from rcai.cli.sample import load_run_model
        from rcai.diffusion import TorchDenoiser
        from rcai.train.loop_quality import loop_quality

        torch.set_num_threads(1)
        model, spec = load_run_model(run)
        res = loop_quality(TorchDenoiser(model.eval()), spec.preset, cfg)
        done[key] = {k: res[k] for k in FIGURES} | {"bicubic_psnr": res["bicubic_psnr"]}
        CACHE.write_text(json.dumps(done, indent=1))
    return done[key]


def main() -> None:
    from scipy.stats import kendalltau, spearmanr

    from rcai.train.loop_quality import LoopQualityConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--crops", type=int, default=16)
    args = ap.parse_args()
    cfg = LoopQualityConfig(steps=args.steps, seeds=args.seeds, crops=args.crops)
    started, load0, t0 = machine(), load1(), time.time()
    plan = load_plan()
    pm = quality(plan, STEP)
    pairs = {}  # name -> (seed a, seed b) trained here to STEP
    for n in plan:
        seeds = sorted(s for s in pm.get(n, {}) if (SCRATCH / f"{n}-s{s}" / "train" / "model.pt").exists())
        if len(seeds) >= 2:
            pairs[n] = tuple(seeds[:2])
    rows = []
    for n, (a, b) in pairs.items():
        ra, rb = (judged(SCRATCH / f"{n}-s{s}" / "train", cfg) for s in (a, b))
        rows.append({"subnet": n, "seed_a": a, "seed_b": b, "posterior_gain_a": pm[n][a], "posterior_gain_b": pm[n][b],
                     **{f"{k}_a": ra[k] for k in FIGURES}, **{f"{k}_b": rb[k] for k in FIGURES}, "bicubic_psnr": ra["bicubic_psnr"]})
        print(f"[{time.strftime('%H:%M:%S')}] {n}: sample PSNR {ra['sample_psnr']:.3f} / {rb['sample_psnr']:.3f}", flush=True)
    with open(RESULTS / "loop_metric.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    col = lambda k: np.array([r[k] for r in rows])  # noqa: E731
    pm_mean = (col("posterior_gain_a") + col("posterior_gain_b")) / 2
    lines = ["# Loop-quality metric: does it rank models stably? (issue 40)", "",
             f"`benchmarks/loop_metric_rank.py --steps {args.steps} --seeds {args.seeds} --crops {args.crops}`, rcai {git_rev()}, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: {started}; load avg {load1():.2f} at the end; {time.time() - t0:.0f} s "
             "(figures are seeded: load does not change them).", "",
             f"Models: {len(rows)} subnets trained from scratch under two seeds each (the `cpu` protocol to step {STEP}; oneshot_scratch.py), "
             f"{len(rows)} x 2 networks. Loop: ddim, {args.steps} denoiser calls, {args.seeds} noise seeds x {args.crops} held-out crops; "
             f"bicubic {rows[0]['bicubic_psnr']:.3f} dB on these crops.", "",
             "| metric | training seed A vs B: Spearman | Kendall | vs the posterior mean (mean of seeds): Spearman | mean over models (dB) |",
             "|---|---:|---:|---:|---:|"]
    rho = lambda x, y: float(spearmanr(x, y)[0])  # noqa: E731
    tau = lambda x, y: float(kendalltau(x, y)[0])  # noqa: E731
    lines.append(f"| posterior-mean gain (the primary metric) | {rho(col('posterior_gain_a'), col('posterior_gain_b')):+.2f} | "
                 f"{tau(col('posterior_gain_a'), col('posterior_gain_b')):+.2f} | – | {pm_mean.mean():+.3f} |")
    for k in FIGURES:
        a, b = col(f"{k}_a"), col(f"{k}_b")
        lines.append(f"| loop `{k}` | {rho(a, b):+.2f} | {tau(a, b):+.2f} | {rho((a + b) / 2, pm_mean):+.2f} | {((a + b) / 2).mean():.3f} |")
    lines += ["", "Per model and seed: `loop_metric.csv`."]
    write("loop_metric.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
