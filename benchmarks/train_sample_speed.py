"""Issue 2: training-step and sampling-step time of the tiny preset, supernet vs subnets.

Interleaved rounds (every candidate once per round, order rotating) so machine drift hits all
alike; medians of per-round medians; repeatability = first half vs second half of the rounds.
Usage: python benchmarks/train_sample_speed.py [--rounds 7] [--threads 2]
"""
from __future__ import annotations

import argparse
import random

import torch

from common import RESULTS, git_rev, machine, write

from rcai.io import atomic_write_csv

from rcai.cost.counters import op_flops
from rcai.diffusion import diffusion_loss
from rcai.model.unet import UNet
from rcai.presets import get_preset
from rcai.space.space import SearchSpace
from rcai.targets import MeasureConfig, interleaved_rounds
from rcai.train.setup import schedule_of


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    preset = get_preset("tiny")
    space = SearchSpace(preset)
    schedule = schedule_of(preset)
    archs = {
        "supernet": None,
        "base subnet": space.base_arch(),
        "random subnet": space.random_arch(random.Random(0)),
        "smallest subnet": space.extreme_arch(op_flops, largest=False)[0],
    }
    torch.manual_seed(0)
    models = {k: UNet(preset, a) for k, a in archs.items()}
    hr = preset.hr_size
    lr_up, y0 = torch.rand(args.batch, 3, hr, hr) * 2 - 1, torch.rand(args.batch, 3, hr, hr) * 2 - 1
    x1, nl1 = torch.randn(1, 6, hr, hr), torch.rand(1, 1)
    fns = {}
    for name, m in models.items():
        opt = torch.optim.Adam(m.parameters(), lr=1e-4)

        def train_step(m=m, opt=opt):
            loss = diffusion_loss(m, schedule, lr_up, y0)
            opt.zero_grad()
            loss.backward()
            opt.step()

        def sample_step(m=m):
            with torch.inference_mode():
                m(x1, nl1)

        fns[f"train|{name}"] = train_step
        fns[f"sample|{name}"] = sample_step
    cfg = MeasureConfig(warmup=2, min_repeats=5, max_repeats=20, chunk=5, rel_tol=0.02, max_seconds=3.0)
    res = interleaved_rounds(fns, args.rounds, cfg)
    rows = []
    for key, r in res.items():
        kind, name = key.split("|")
        params = sum(p.numel() for p in models[name].parameters())
        rows.append({"kind": kind, "network": name, "median_ms": r["median_ms"], "repeatability": r["repeatability"], "params": params})
    for kind in ("train", "sample"):
        ref = next(r["median_ms"] for r in rows if r["kind"] == kind and r["network"] == "supernet")
        for r in rows:
            if r["kind"] == kind:
                r["speedup_vs_supernet"] = ref / r["median_ms"]
    atomic_write_csv(RESULTS / "train_sample_speed.csv", rows)
    md = [
        "# Training-step and sampling-step time, tiny preset (torch eager, CPU)",
        "",
        f"Machine: {machine()}; torch threads {args.threads}; git {git_rev()}.",
        f"Train step = diffusion_loss + backward + Adam at batch {args.batch}, {hr}x{hr}; sample step = one denoiser call at batch 1.",
        f"{args.rounds} interleaved rounds; median of per-round medians; repeatability = |median(first half) - median(second half)| / median.",
        "",
        "| step | network | params | median ms | vs supernet | repeatability |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        md.append(f"| {r['kind']} | {r['network']} | {r['params']:,} | {r['median_ms']:.2f} | {r['speedup_vs_supernet']:.2f}x | {r['repeatability']:.1%} |")
    print("\n".join(md))
    write("train_sample_speed.md", "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
