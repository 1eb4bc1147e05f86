"""Whole sampling loop: ONNX Runtime (IO binding, reused buffers) vs torch eager, same subnet, same
steps, same numpy sampler, measured in interleaved rounds in one run (goal: ORT >= 1.5x faster).

Subnets of the tiny preset: the base model (conv3x3 + attention) and a cheap one (dwsep3x3
everywhere, no attention), random weights (timing does not depend on them). Extra candidates:
ORT with plain session.run (no IO binding), and the sampler alone (a denoiser returning zeros),
which is the loop's floor.

    python benchmarks/bench_loop.py [--steps 50] [--rounds 7] [--threads 1 2]
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from rcai.deploy import BenchConfig, DeploySidecar, export_subnet_onnx
from rcai.deploy.compare import compare_loops
from rcai.deploy.engines import Engine
from rcai.io import atomic_write_bytes, atomic_write_csv, atomic_write_text
from rcai.presets import get_preset
from rcai.space.space import SearchSpace
from rcai.space.subnet import SubnetSpec
from rcai.targets import get_target
from rcai.targets.sysinfo import cpu_model

from common import load1

RESULTS = Path(__file__).parent / "results"


def cheap_arch(space: SearchSpace) -> dict[str, str]:
    """dwsep3x3 in every GN-conv slot, the gnconv branch (not attention) in every multi-op slot."""
    return space.pick(lambda s: "dwsep3x3" if "dwsep3x3" in s.choices else ("gnconv" if "gnconv" in s.choices else next(iter(s.choices))))


def export_subnets(tmp: Path) -> dict[str, Path]:
    p = get_preset("tiny")
    space = SearchSpace(p)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, arch in (("base", space.base_arch()), ("cheap", cheap_arch(space))):
            out[name] = export_subnet_onnx(SubnetSpec(p, arch), None, tmp / f"{name}.onnx").onnx_path
    return {k: Path(v) for k, v in out.items()}


def plain_engine(path: Path, batch: int, threads: int) -> Engine:
    """ORT with session.run(feeds) each step: allocates outputs every call, no IO binding."""
    target = get_target("onnxruntime", threads=threads)
    sess = ort.InferenceSession(str(path), target.session_options(), providers=["CPUExecutionProvider"])
    return Engine("onnx-plain", lambda x6, lvl: sess.run(None, {"x": x6, "noise_level": lvl})[0], {"device": "cpu", "threads": threads},
                  "onnxruntime session.run", on_calling_thread=target.computes_on_calling_thread())


def sampler_only(path: Path, batch: int) -> Engine:
    hr = DeploySidecar.for_onnx(path).preset.hr_size
    zeros = np.zeros((batch, 3, hr, hr), np.float32)
    return Engine("none", lambda x6, lvl: zeros, {"device": "cpu", "threads": 1}, "denoiser returns zeros (sampler + loop only)",
                  on_calling_thread=True)


def run(args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_subnets(Path(tmp))
        for t in args.threads:
            cfg = BenchConfig(threads=t, sampler="ddim", steps=args.steps, image="random", batch=1)
            cands = {}
            for name, path in paths.items():
                cands[f"{name}/onnx"] = (path, "cpu")
                cands[f"{name}/torch"] = (path, "torch")
            cands["base/onnx-plain-run"] = (paths["base"], plain_engine(paths["base"], 1, t))
            cands["sampler-only"] = (paths["base"], sampler_only(paths["base"], 1))
            load_start = load1()
            res = compare_loops(cands, cfg, rounds=args.rounds)
            load_end = load1()
            for name, r in res.items():
                m = r["per_round_medians"]
                rows.append({
                    "threads": t, "candidate": name, "steps": args.steps, "loop_ms": r["median_ms"], "clock": r["clock"],
                    "wall_ms": r["wall_ms"], "cpu_ms": r["cpu_ms"],
                    "step_ms": r["median_ms"] / args.steps, "round_min_ms": min(m), "round_max_ms": max(m),
                    "repeatability": r["repeatability"], "rounds": len(m), "load_before": load_start, "load_after": load_end,
                    "engine": r["engine"],
                })
            print(f"threads={t} done (load {load_start:.2f} -> {load_end:.2f})", flush=True)
    return rows


def ratio(rows: list[dict], t: int, a: str, b: str) -> float:
    get = {r["candidate"]: r["loop_ms"] for r in rows if r["threads"] == t}
    return get[a] / get[b]


def report(rows: list[dict], args) -> str:
    lines = [
        "# Whole sampling loop: ONNX Runtime vs torch eager (tiny preset)",
        "",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}; python "
        f"{platform.python_version()}, onnxruntime {ort.__version__}, torch {torch.__version__}",
        f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. The machine is shared with other "
        "agents' jobs (load averages below), so absolute times are noisy; ratios come from one run with "
        "candidates interleaved (order rotating each round).",
        f"- Loop: DDIM {args.steps} steps, batch 1, LR 32x32 -> 64x64, the same numpy sampler for every candidate. "
        f"Measured with the one loop measurement (rcai.targets.loops, as `rcai bench` and the pipeline): {args.rounds} rounds, "
        "a new random order each round, one timed loop per candidate a round; figure = median of all its loops on the clock "
        "`rcai bench` quotes (process CPU time with 1 thread, wall with 2: several threads are not one thread's CPU time). "
        "Repeatability = |second half of the rounds - first half| / figure.",
        "- Threads set explicitly: ORT intra-op threads and torch.set_num_threads are both = `threads`.",
        "",
        "| threads | candidate | loop (ms) | clock | wall / CPU (ms) | per step (ms) | round min..max (ms) | repeatability | load before/after |",
        "|---:|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['threads']} | {r['candidate']} | {r['loop_ms']:.1f} | {r['clock']} | {r['wall_ms']:.1f} / {r['cpu_ms']:.1f} | {r['step_ms']:.2f} | {r['round_min_ms']:.1f}..{r['round_max_ms']:.1f} "
            f"| {r['repeatability']:.1%} | {r['load_before']:.2f}/{r['load_after']:.2f} |"
        )
    lines += ["", "## Ratios (torch eager loop time / ORT loop time, same run)", ""]
    for t in args.threads:
        lines.append(
            f"- threads={t}: base {ratio(rows, t, 'base/torch', 'base/onnx'):.2f}x, cheap {ratio(rows, t, 'cheap/torch', 'cheap/onnx'):.2f}x "
            f"(goal >= 1.5x); plain session.run / IO binding (base): {ratio(rows, t, 'base/onnx-plain-run', 'base/onnx'):.2f}x; "
            f"sampler-only floor = {ratio(rows, t, 'sampler-only', 'base/onnx'):.1%} of the base ORT loop"
        )
    peak_load = max(max(r["load_before"], r["load_after"]) for r in rows)
    if peak_load > (os.cpu_count() or 1):
        lines += [
            "",
            f"Reading: the 1-minute load reached {peak_load:.1f} on {os.cpu_count()} cores, so the machine was "
            "oversubscribed. Multi-thread rows then measure contention more than the engines: torch's OpenMP "
            "workers degrade far more than ORT's thread pool when a core is taken, so ratios at threads > 1 "
            "overstate ORT's advantage on an idle machine; the threads=1 ratios are the representative ones.",
        ]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = sorted({r["threads"] for r in rows})
    names = [r["candidate"] for r in rows if r["threads"] == threads[0]]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    w = 0.8 / len(threads)
    for k, t in enumerate(threads):
        vals = {r["candidate"]: r for r in rows if r["threads"] == t}
        x = np.arange(len(names)) + k * w
        ax.bar(x, [vals[n]["loop_ms"] for n in names], w, label=f"{t} thread(s)",
               yerr=[[vals[n]["loop_ms"] - vals[n]["round_min_ms"] for n in names], [vals[n]["round_max_ms"] - vals[n]["loop_ms"] for n in names]])
    ax.set_xticks(np.arange(len(names)) + w * (len(threads) - 1) / 2, names, rotation=20, ha="right")
    ax.set_ylabel("whole loop (ms), median of rounds")
    ax.set_title(f"DDIM {rows[0]['steps']}-step loop, tiny preset (bars: min..max round)")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_loop")
    args = ap.parse_args()
    rows = run(args)
    text = report(rows, args)
    atomic_write_text(args.out.with_suffix(".md"), text)
    atomic_write_csv(args.out.with_suffix(".csv"), rows)
    plot(rows, args.out.with_suffix(".png"))
    print(text)


if __name__ == "__main__":
    main()
