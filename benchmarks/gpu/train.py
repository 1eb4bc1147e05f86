"""Issue 31: training on a GPU, by rcai's own `train()` (the code path of `rcai train`), in one
script that stops itself inside a budget (`--budget-s`, default 210 s, by its own clock).

(a) speed: the tiny base, batch 8, trained on cuda and on the CPU (one torch thread), interleaved
    rounds, each device in its default precision (rcai/train/device.py); steps/s of the loop;
(c) device-independent checkpoints: a run started on the GPU and resumed on the CPU (fp32 both) vs the
    same run uninterrupted, beside a resume on the GPU itself and a second seed (the noise scale);
(d) bf16 vs fp32 on the GPU: short trainings interleaved, steps/s and quality;
(b) the base on the `gpu` protocol (rcai/train/protocol.py) for the rest of the budget: the run is
    extended segment by segment (constant lr), each segment ending with the posterior-mean gain and
    the sampled PSNR (DDIM) against bicubic's; the report says where the samples cross bicubic.

Writes gpu_train.md, gpu_train.csv and gpu_train.png to --out (default benchmarks/results); the
report is rewritten after every phase, so a kill leaves what was measured.
`--smoke`: everything on the CPU with tiny step counts (<60 s), to check the script here.

Usage (GPU machine, from the checkout): PYTHONPATH=$PWD python3 benchmarks/gpu/train.py --out "$OUT"
"""
from __future__ import annotations

import argparse
import csv
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py

from common import git_rev, machine  # noqa: E402


class OutOfBudget(Exception):
    pass


class Clock:
    def __init__(self, budget: float):
        self.t0, self.budget = time.monotonic(), budget

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.t0)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0


def cfg_of(args, **kw):
    from rcai.train.evaluate import EvalConfig
    from rcai.train.trainer import TrainConfig

    base = dict(preset=args.preset, steps=10, batch_size=8, lr=2e-3, lr_schedule="constant", ema=0.998, seed=0, log_every=50, ckpt_every=10**6,
                eval=EvalConfig(steps=args.ddim, max_images=args.eval_images, seed=0))
    return TrainConfig(**{**base, **kw})


def run(cfg, folder: Path, resume: bool = False, final_eval: bool = True, threads: int | None = None) -> dict:
    from rcai.train.job import TrainJob

    return TrainJob(cfg, str(folder), resume=resume, threads=threads, final_eval=final_eval).run()


def speed(args, R: dict, work: Path, clock: Clock, gpu: str) -> None:
    """(a) interleaved rounds: cpu (1 thread) and gpu, fresh runs, the loop's steps/s."""
    n = {"cpu": args.cpu_steps, gpu: args.gpu_steps}
    for dev in n:  # warm-up (CUDA context, cuDNN autotuning, oneDNN kernels): not counted
        run(cfg_of(args, steps=3, device=dev), work / f"warm-{dev.replace(':', '')}", final_eval=False, threads=1 if dev == "cpu" else None)
    rows = R.setdefault("speed", [])
    for r in range(args.rounds):
        order = list(n) if r % 2 == 0 else list(n)[::-1]
        for dev in order:
            if clock.left() < args.reserve + 10:
                return
            m = run(cfg_of(args, steps=n[dev], device=dev), work / f"speed-{dev.replace(':', '')}-{r}", final_eval=False,
                    threads=1 if dev == "cpu" else None)
            rows.append({"round": r, "device": dev, "precision": m["precision"], "steps": m["steps_run"], "seconds": m["train_s"],
                         "steps_s": m["steps_run"] / m["train_s"], "device_name": m["device_name"]})
            print(f"speed {dev} {m['precision']}: {rows[-1]['steps_s']:.1f} steps/s", flush=True)


def resume_check(args, R: dict, work: Path, clock: Clock, gpu: str) -> None:
    """(c) GPU run resumed on the CPU vs uninterrupted; fp32 on both; batch and lr of the gpu protocol."""
    from rcai.io import read_jsonl
    from rcai.train.protocol import GPU

    total, half = args.resume_steps, args.resume_steps // 2
    kw = dict(batch_size=GPU.batch_size, ema=GPU.ema, precision="fp32", ckpt_every=half, eval_at=(total,))
    out: dict = {}

    def q(m):
        return m["quality"]["gain_db"]

    plan = [
        ("uninterrupted", [(gpu, total)], 0),
        ("gpu->cpu", [(gpu, half), ("cpu", total)], 0),
        ("gpu->gpu", [(gpu, half), (gpu, total)], 0),
        ("seed 1", [(gpu, total)], 1),
    ]
    for name, legs, seed in plan:
        folder = work / f"resume-{name.replace('>', '').replace(' ', '')}"
        t = time.monotonic()
        for i, (dev, steps) in enumerate(legs):
            if clock.left() < args.reserve + 5:
                R["resume"] = out
                return
            last = i == len(legs) - 1
            m = run(cfg_of(args, steps=steps, device=dev, seed=seed, **kw), folder, resume=i > 0, final_eval=last,
                    threads=args.cpu_threads if dev == "cpu" else None)
        loss = [r["loss"] for r in read_jsonl(folder / "log.jsonl") if "loss" in r][-1]
        out[name] = {"quality": q(m), "psnr": m.get("psnr"), "last_loss": loss, "seconds": time.monotonic() - t, "legs": legs}
        print(f"resume {name}: quality {q(m):+.4f} dB", flush=True)
        R["resume"] = out


def precision_check(args, R: dict, work: Path, clock: Clock, gpu: str) -> None:
    """(d) fp32 vs bf16 on the GPU, interleaved fresh runs of the gpu protocol's batch."""
    from rcai.train.protocol import GPU

    rows = R.setdefault("precision", [])
    if clock.left() < args.reserve + 12:
        R["precision_skipped"] = f"not run: {clock.left():.0f} s left (the budget went to (b))"
        return
    for r in range(args.rounds):
        for prec in (("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")):
            if clock.left() < args.reserve + args.keep_for_d / 2:
                return
            m = run(cfg_of(args, steps=args.prec_steps, batch_size=GPU.batch_size, device=gpu, precision=prec, eval_at=(args.prec_steps,)),
                    work / f"prec-{prec}-{r}")
            rows.append({"round": r, "precision": prec, "steps_s": m["steps_run"] / m["train_s"], "quality": m["quality"]["gain_db"],
                         "psnr": m["psnr"], "bicubic_psnr": m["bicubic_psnr"]})
            print(f"precision {prec}: {rows[-1]['steps_s']:.1f} steps/s, quality {rows[-1]['quality']:+.3f}", flush=True)


def protocol_run(args, R: dict, work: Path, clock: Clock, gpu: str) -> None:
    """(b) the base on the gpu protocol, extended segment by segment while the budget lasts."""
    from rcai.train.protocol import GPU

    p = replace(GPU, steps=args.protocol_steps, eval_at=(args.protocol_steps,)) if args.protocol_steps else GPU
    marks = list(range(args.segment, p.steps + 1, args.segment))
    folder, rows = work / "protocol", R.setdefault("protocol", [])
    rate = None
    for k, stop in enumerate(marks):
        need = (args.segment / rate + args.eval_s) if rate else 0.0
        if clock.left() - args.reserve - args.keep_for_d < need:
            R["protocol_stopped"] = f"stopped at {rows[-1]['step'] if rows else 0} of {p.steps} steps: the budget left ({clock.left():.0f} s) could not hold another segment"
            return
        cfg = cfg_of(args, steps=stop, batch_size=p.batch_size, lr=p.lr, lr_schedule=p.lr_schedule, ema=p.ema, eval_at=tuple(marks[: k + 1]),
                     device=gpu, ckpt_every=args.segment)
        t = time.monotonic()
        m = run(cfg, folder, resume=k > 0)
        rate = m["steps_run"] / m["train_s"]
        args.eval_s = max(1.0, time.monotonic() - t - m["train_s"])
        rows.append({"step": stop, "quality": m["quality"]["gain_db"], "psnr": m["psnr"], "bicubic_psnr": m["bicubic_psnr"], "ssim": m["ssim"],
                     "steps_s": rate, "elapsed_s": clock.elapsed(), "precision": m["precision"]})
        print(f"protocol {stop}: quality {rows[-1]['quality']:+.3f} dB, sampled {m['psnr']:.2f} (bicubic {m['bicubic_psnr']:.2f}), {rate:.1f} steps/s", flush=True)
        report(args, R)


def crossing(rows: list[dict]) -> str:
    if not rows:
        return "no point measured"
    bic = rows[0]["bicubic_psnr"]
    for a, b in zip([None] + rows[:-1], rows):
        if b["psnr"] >= bic:
            if a is None:
                return f"sampled PSNR is above bicubic's ({bic:.2f} dB) from the first point ({b['step']} steps)"
            x = a["step"] + (bic - a["psnr"]) / (b["psnr"] - a["psnr"]) * (b["step"] - a["step"])
            return f"sampled PSNR crosses bicubic's ({bic:.2f} dB) at about {x:.0f} steps (between {a['step']} and {b['step']})"
    last = rows[-1]
    return (f"sampled PSNR stays below bicubic's ({bic:.2f} dB): {last['psnr']:.2f} dB at {last['step']} steps, "
            f"{bic - last['psnr']:.2f} dB short")


def report(args, R: dict) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    L = ["# Training on the GPU (issue 31)", "", f"Machine: {R['machine']}; rcai {R['rev']}; budget {args.budget_s:.0f} s "
         f"({'SMOKE run on the CPU: tiny step counts, not figures' if args.smoke else 'hard-stopped by the script'}), "
         f"spent {R.get('elapsed', 0):.0f} s. Reproduce: `PYTHONPATH=$PWD python3 benchmarks/gpu/train.py --budget-s {args.budget_s:.0f}{' --smoke' if args.smoke else ''}`.", ""]
    if R.get("speed"):
        L += ["## (a) `rcai train` of the tiny base: GPU vs one CPU thread", "",
              f"Fresh runs of {args.preset} base, batch 8, interleaved rounds (order alternating), steps/s of the training loop "
              "(`train()`'s own timing, warm-up excluded), each device in its default precision:", "",
              "| device | precision | rounds | steps/s (median) | per round |", "|---|---|---:|---:|---|"]
        med = {}
        for dev in dict.fromkeys(r["device"] for r in R["speed"]):
            rs = [r for r in R["speed"] if r["device"] == dev]
            med[dev] = statistics.median(r["steps_s"] for r in rs)
            per = " ".join(f"{r['steps_s']:.1f}" for r in rs)
            L.append(f"| {dev} ({rs[0]['device_name']}) | {rs[0]['precision']} | {len(rs)} | {med[dev]:.1f} | {per} |")
        if "cpu" in med and len(med) == 2:
            other = next(d for d in med if d != "cpu")
            ratio = med[other] / med["cpu"]
            L += ["", f"{other} / one CPU thread: **{ratio:.1f}x** (goal >= 10x: {'met' if ratio >= 10 else 'not met'})."]
        L.append("")
    if R.get("protocol"):
        rows = R["protocol"]
        L += ["## (b) The base on the GPU protocol", "", f"`gpu` protocol (rcai/train/protocol.py): batch 32, constant lr 2e-3, EMA 0.998, "
              f"extended in segments of {args.segment} steps; at each mark the posterior-mean gain (64 held-out crops) and the sampled PSNR "
              f"(DDIM {args.ddim} steps, {args.eval_images} crops) against bicubic's.", "",
              "| steps | posterior-mean gain (dB) | sampled PSNR (dB) | bicubic PSNR | SSIM | steps/s | elapsed s |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            L.append(f"| {r['step']} | {r['quality']:+.3f} | {r['psnr']:.2f} | {r['bicubic_psnr']:.2f} | {r['ssim']:.3f} | {r['steps_s']:.1f} | {r['elapsed_s']:.0f} |")
        best = max(r["quality"] for r in rows)
        L += ["", f"Reading: {crossing(rows)}. Best posterior-mean gain {best:+.3f} dB (goal >= +1.5 dB: {'met' if best >= 1.5 else 'not met'}). "
              + R.get("protocol_stopped", ""), "", "![sampled PSNR over training](gpu_train.png)", ""]
        plot(rows, out / "gpu_train.png")
    if R.get("resume"):
        res = R["resume"]
        L += ["## (c) A run started on the GPU, resumed on the CPU", "",
              f"Base, batch 32, constant lr 2e-3, EMA 0.998, fp32 on both devices, {args.resume_steps} steps; the checkpoint at "
              f"{args.resume_steps // 2} steps (saved device-independent) resumed on the other device. The loss's draws come from a "
              "generator on the training device seeded by (seed, step), so the resumed half draws other noise than the GPU would: "
              "the runs agree within seed noise, not bit for bit (rcai/train/device.py). Tolerance: |Δ quality| <= "
              f"{args.tolerance} dB, set beside the seed-to-seed difference measured here.", "",
              "| run | quality (dB) | Δ vs uninterrupted | last logged loss | seconds |", "|---|---:|---:|---:|---:|"]
        ref = res.get("uninterrupted", {}).get("quality")
        for name, v in res.items():
            d = v["quality"] - ref if ref is not None else float("nan")
            L.append(f"| {name} | {v['quality']:+.4f} | {d:+.4f} | {v['last_loss']:.4f} | {v['seconds']:.1f} |")
        if ref is not None and "gpu->cpu" in res:
            d = abs(res["gpu->cpu"]["quality"] - ref)
            seed = abs(res["seed 1"]["quality"] - ref) if "seed 1" in res else float("nan")
            L += ["", f"GPU -> CPU: |Δ| = {d:.4f} dB ({'within' if d <= args.tolerance else 'OUTSIDE'} the {args.tolerance} dB tolerance); "
                  f"another seed differs by {seed:.4f} dB."]
            if "gpu->gpu" in res:
                g = abs(res["gpu->gpu"]["quality"] - ref)
                L.append(f"GPU -> GPU (same device, same draws): |Δ| = {g:.2e} dB ({'bit for bit' if g == 0 else 'cuDNN non-determinism'}).")
        L.append("")
    if R.get("precision_skipped") and not R.get("precision"):
        L += ["## (d) bf16 vs fp32 on the GPU", "", R["precision_skipped"], ""]
    if R.get("precision"):
        L += ["## (d) bf16 vs fp32 on the GPU", "", f"Fresh runs of the base, batch 32, {args.prec_steps} steps, interleaved:", "",
              "| precision | runs | steps/s (median) | quality (dB, median) | sampled PSNR (median) |", "|---|---:|---:|---:|---:|"]
        for prec in ("fp32", "bf16"):
            rs = [r for r in R["precision"] if r["precision"] == prec]
            if rs:
                L.append(f"| {prec} | {len(rs)} | {statistics.median(r['steps_s'] for r in rs):.1f} | {statistics.median(r['quality'] for r in rs):+.3f} | "
                         f"{statistics.median(r['psnr'] for r in rs):.2f} |")
        L.append("")
    if R.get("error"):
        L += ["## Stopped", "", R["error"], ""]
    if R.get("errors"):
        L += ["## Errors", ""] + [f"- {e}" for e in R["errors"]] + [""]
    (out / "gpu_train.md").write_text("\n".join(L))
    with open(out / "gpu_train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["phase", "key", "value"])
        for phase in ("speed", "precision", "protocol"):
            for i, r in enumerate(R.get(phase, [])):
                for k, v in r.items():
                    w.writerow([phase, f"{i}.{k}", v])
        for name, v in R.get("resume", {}).items():
            for k, x in v.items():
                w.writerow(["resume", f"{name}.{k}", x])


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot([r["step"] for r in rows], [r["psnr"] for r in rows], "o-", label="base: sampled PSNR")
    ax.axhline(rows[0]["bicubic_psnr"], color="gray", ls="--", label=f"bicubic {rows[0]['bicubic_psnr']:.2f} dB")
    ax.set_xlabel("training steps (batch 32, gpu protocol)")
    ax.set_ylabel("PSNR (dB)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-s", type=float, default=None, help="seconds for everything (default 210; --smoke: 55)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results"))
    ap.add_argument("--smoke", action="store_true", help="all on the CPU, tiny step counts (<60 s): checks the script")
    ap.add_argument("--device", default="cuda", help="the GPU's training device")
    ap.add_argument("--only", default="abcd", help="the parts to run, e.g. bd (default: all; run in the order a, c, b, d)")
    args = ap.parse_args()
    args.preset, args.rounds, args.cpu_threads, args.tolerance, args.reserve, args.eval_s = "tiny", 3, None, 0.1, 6.0, 5.0
    args.keep_for_d = 0.0
    if args.smoke:
        args.device, args.preset, args.budget_s = "cpu", "micro", args.budget_s or 55.0
        args.cpu_steps, args.gpu_steps, args.resume_steps, args.prec_steps, args.rounds = 3, 3, 4, 3, 1
        args.segment, args.protocol_steps, args.ddim, args.eval_images, args.reserve, args.keep_for_d = 3, 6, 4, 2, 3.0, 0.0
    else:
        args.budget_s = args.budget_s or 210.0
        args.keep_for_d = 24.0 if args.budget_s >= 200 else 0.0  # seconds (b) leaves for (d); below 200 s (b) takes them
        args.cpu_steps, args.gpu_steps, args.resume_steps, args.prec_steps = 20, 200, 160, 150
        args.segment, args.protocol_steps, args.ddim, args.eval_images = 600, 0, 50, 64
    clock = Clock(args.budget_s)

    def alarm(*_):
        raise OutOfBudget(f"the budget of {args.budget_s:.0f} s ran out")

    signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, max(1.0, args.budget_s - 2.0))
    from rcai.train.device import resolve_train_device

    R: dict = {"machine": machine(), "rev": git_rev()}
    gpu = str(resolve_train_device(args.device))
    work = Path(tempfile.mkdtemp(prefix="rcai-gpu-train-"))
    try:
        for part, phase in (("a", speed), ("c", resume_check), ("b", protocol_run), ("d", precision_check)):  # (b) takes what (d) does not need
            if part in args.only:
                try:
                    phase(args, R, work, clock, gpu)
                except OutOfBudget:
                    raise
                except Exception as e:  # one part failing does not cost the others their minutes on the GPU
                    import traceback

                    traceback.print_exc()
                    R.setdefault("errors", []).append(f"({part}) {type(e).__name__}: {e}")
            R["elapsed"] = clock.elapsed()
            report(args, R)
    except OutOfBudget as e:
        R["error"] = f"{e} during the run; the tables hold what finished."
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        R["elapsed"] = clock.elapsed()
        report(args, R)
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {Path(args.out) / 'gpu_train.md'} in {clock.elapsed():.0f} s", flush=True)
    if R.get("errors"):
        sys.exit(1)


if __name__ == "__main__":
    main()
