"""Issue 31: training speed and quality on this CPU, fp32 vs bf16 (autocast), batch 8 vs 32.

Speed: the tiny base trained by rcai's own `train()` (one torch thread), fresh runs of a few steps,
every setting once per round in a rotating order; samples/s of the training loop (train()'s own
timing, a warm-up run per setting first), medians over rounds. The old default is fp32 at batch 8
(the `signal` protocol), the new one the `cpu` protocol: batch 32 in the precision `auto` picks.
Quality: the base trained `--quality-steps` steps at batch 32 in fp32 and in bf16, under two seeds,
interleaved; bf16's difference from fp32 beside the seed-to-seed difference (the primary metric,
posterior-mean gain over bicubic on the 64 held-out crops).

Usage: python benchmarks/train_speed.py [--rounds 3] [--steps 8] [--quality-steps 200]
"""
from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
from pathlib import Path

from common import RESULTS, git_rev, load1, machine, write

SETTINGS = [("fp32", 8), ("bf16", 8), ("fp32", 32), ("bf16", 32)]


def run(prec: str, batch: int, steps: int, folder: Path, seed: int = 0, final_eval: bool = False) -> dict:
    from rcai.train.evaluate import EvalConfig
    from rcai.train.protocol import TrainProtocol, train_job

    protocol = TrainProtocol(steps=steps, batch_size=batch, lr=2e-3, lr_schedule="constant", ema=0.998, eval_at=(steps,) if final_eval else ())
    return train_job(protocol, folder, preset="tiny", seed=seed, device="cpu", precision=prec, eval=EvalConfig(max_images=0), resume=False,
                     final_eval=final_eval, ckpt_every=10**6, log_every=10**6).run()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8, help="steps of each timed run")
    ap.add_argument("--quality-steps", type=int, default=200)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    import torch

    from rcai.train.device import cpu_has_bf16, resolve_precision

    torch.set_num_threads(1)
    started, work = machine(), Path(tempfile.mkdtemp(prefix="rcai-train-speed-"))
    rows = []
    for prec, batch in SETTINGS:  # warm-up (oneDNN kernels)
        run(prec, batch, 2, work / f"warm-{prec}-{batch}")
    for r in range(args.rounds):
        for k in range(len(SETTINGS)):
            prec, batch = SETTINGS[(k + r) % len(SETTINGS)]
            m = run(prec, batch, args.steps, work / f"s-{prec}-{batch}-{r}")
            rows.append({"round": r, "precision": prec, "batch": batch, "steps_s": m["steps_run"] / m["train_s"],
                         "samples_s": batch * m["steps_run"] / m["train_s"]})
            print(f"round {r} {prec} b{batch}: {rows[-1]['samples_s']:.1f} samples/s", flush=True)
    qrows = []
    for seed in (0, 1):
        for prec in (("fp32", "bf16") if seed == 0 else ("bf16", "fp32")):
            m = run(prec, 32, args.quality_steps, work / f"q-{prec}-{seed}", seed=seed, final_eval=True)
            qrows.append({"precision": prec, "seed": seed, "quality": m["quality"]["gain_db"], "loop_s": m["train_s"]})
            print(f"quality {prec} seed {seed}: {qrows[-1]['quality']:+.3f} dB", flush=True)
    with open(RESULTS / "train_speed.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["kind", "round", "precision", "batch", "seed", "steps_s", "samples_s", "quality"])
        w.writeheader()
        for r in rows:
            w.writerow({"kind": "speed", **r})
        for r in qrows:
            w.writerow({"kind": "quality", "batch": 32, "round": "", **{k: v for k, v in r.items() if k != "loop_s"}})
    med = {(p, b): statistics.median(r["samples_s"] for r in rows if (r["precision"], r["batch"]) == (p, b)) for p, b in SETTINGS}
    new_prec = resolve_precision("auto", torch.device("cpu"))
    old, new = med[("fp32", 8)], med[(new_prec, 32)]
    q = {(r["precision"], r["seed"]): r["quality"] for r in qrows}
    d_prec = [q[("bf16", s)] - q[("fp32", s)] for s in (0, 1)]
    d_seed = [q[(p, 1)] - q[(p, 0)] for p in ("fp32", "bf16")]
    L = ["# Training speed on this CPU: fp32 vs bf16, batch 8 vs 32 (issue 31)", "",
         f"Machine: {started}; load avg at the end {load1():.2f}; rcai {git_rev()}; native bf16: {cpu_has_bf16()}. {args.note}", "",
         f"The tiny base trained by `rcai.train.trainer.train` on one torch thread, fresh runs of {args.steps} steps, {args.rounds} rounds, "
         "the four settings in a rotating order each round; samples/s of the training loop, median over rounds. "
         f"Reproduce: `python benchmarks/train_speed.py --rounds {args.rounds} --steps {args.steps} --quality-steps {args.quality_steps}`.", "",
         "| precision | batch | samples/s (median) | steps/s | per round (samples/s) | vs fp32 batch 8 |", "|---|---:|---:|---:|---|---:|"]
    for p, b in SETTINGS:
        per = " ".join(f"{r['samples_s']:.0f}" for r in rows if (r["precision"], r["batch"]) == (p, b))
        L.append(f"| {p} | {b} | {med[(p, b)]:.1f} | {med[(p, b)] / b:.2f} | {per} | {med[(p, b)] / old:.2f}x |")
    L += ["", f"Old default (`signal` protocol: fp32, batch 8) {old:.1f} samples/s; new default (`cpu` protocol: batch 32, `auto` precision = "
          f"{new_prec} here) {new:.1f} samples/s: **{new / old:.2f}x** (goal >= 1.5x).", "",
          f"Quality at equal samples: the base, batch 32, {args.quality_steps} steps, constant lr 2e-3, EMA 0.998, fp32 vs bf16 under seeds 0 and 1 "
          "(interleaved):", "", "| precision | seed 0 (dB) | seed 1 (dB) |", "|---|---:|---:|"]
    for p in ("fp32", "bf16"):
        L.append(f"| {p} | {q[(p, 0)]:+.3f} | {q[(p, 1)]:+.3f} |")
    L += ["", f"bf16 - fp32: {' '.join(f'{d:+.3f}' for d in d_prec)} dB (seeds 0, 1); seed 1 - seed 0: {' '.join(f'{d:+.3f}' for d in d_seed)} dB "
          "(fp32, bf16). " + ("bf16's difference is within the seed-to-seed difference." if max(map(abs, d_prec)) <= max(map(abs, d_seed))
                               else "bf16's difference exceeds the seed-to-seed difference here: read with care."), ""]
    write("train_speed.md", "\n".join(L))
    print((RESULTS / "train_speed.md").read_text())


if __name__ == "__main__":
    main()
