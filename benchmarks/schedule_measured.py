"""Step schedules measured: the base for the first k steps of the loop, the searched subnet for the
rest, built from a finished pipeline run (`make demo`), exported and timed on this machine beside the
two single subnets, the table's estimate (sum of every step's subnet + the sampler term) against the
measured loop, and each loop's output scored by the loop metric.

    python benchmarks/schedule_measured.py --run runs/demo [--split 10 --split 25] [--repeats 3] [--table T]

Timing: every repeat benches each loop once (`rcai bench`'s measurement: interleaved rounds inside
one loop), the order rotated from repeat to repeat; the figure is the median over repeats, its
spread (max/min - 1) the repeatability. Run it alone on a quiet machine (flock /tmp/rcai-timing.lock):
the load is recorded beside the figures. Writes results/schedule_measured.{md,csv}.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from common import git_rev, load1, machine, write

from rcai.cost.load import load_cost_model
from rcai.cost.schedule import schedule_cost
from rcai.deploy.bench import BenchConfig, bench_loop
from rcai.deploy.quality import deployed_loop_quality
from rcai.deploy.schedule_bench import bench_schedule
from rcai.deploy.schedule_export import export_schedule
from rcai.io import atomic_write_csv, read_json
from rcai.presets import get_preset
from rcai.space.step_schedule import StepSchedule
from rcai.train.loop_quality import LoopQualityConfig


def schedule_of(run: Path, preset: str, steps: int, k: int, pick_run: Path) -> StepSchedule:
    """The base for steps [0, k) (the calls nearest pure noise), the pick for [k, steps)."""
    runs = {"base": run / "base", "pick": pick_run}
    segments = [s for s in ({"start": 0, "stop": k, "subnet": "base"}, {"start": k, "stop": steps, "subnet": "pick"}) if s["stop"] > s["start"]]
    return StepSchedule.from_dict({"format": "rcai-schedule/1", "preset": preset, "steps": steps, "segments": segments,
                                   "subnets": {s["subnet"]: {"run": str(runs[s["subnet"]].resolve())} for s in segments}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/demo", help="a finished `rcai pipeline` run folder")
    ap.add_argument("--split", type=int, action="append", help="k: the base runs the first k steps (repeatable; default 10 and 25)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=6, help="rounds of each bench's own loop measurement")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--table", action="append", default=[], help="another cost table whose estimates are set beside the run's (repeatable)")
    ap.add_argument("--out", default="benchmarks/.cache/schedule_measured")
    args = ap.parse_args()
    run, out = Path(args.run), Path(args.out)
    summary = read_json(run / "summary.json", expect=dict)
    settings = read_json(run / "pipeline.json", expect=dict)
    steps, table, preset = summary["steps"], summary["table"], settings["preset"]
    pick_run = Path(summary["subnet"]["run"])
    singles = {"base": run / "base" / "model.onnx", "pick": next(pick_run.glob("*.onnx"))}
    scheds = {}
    for k in args.split or [10, 25]:
        folder = out / f"base{k}-pick{steps - k}"
        export_schedule(schedule_of(run, preset, steps, k, pick_run), folder)
        scheds[f"base x{k} + pick x{steps - k}"] = (folder, k)
    cfg = BenchConfig(device=settings.get("device", "cpu"), threads=args.threads, steps=steps, table=table, psnr=False, quality=False,
                      rounds=args.rounds)
    names = [*singles, *scheds]
    ms: dict[str, list[float]] = {n: [] for n in names}
    est: dict[str, float] = {}
    load = [load1()]
    for r in range(args.repeats):
        for n in names[r % len(names):] + names[: r % len(names)]:
            res = bench_schedule(scheds[n][0], cfg) if n in scheds else bench_loop(singles[n], cfg)
            ms[n].append(res.loop_ms)
            est[n] = res.estimates["table"]["loop_ms"]
            print(f"[{time.strftime('%H:%M:%S')}] repeat {r}: {n} {res.loop_ms:.1f} ms (table {est[n]:.1f})", flush=True)
        load.append(load1())
    p = get_preset(preset)
    others = {t: load_cost_model(t, p) for t in args.table}
    plans = {**{n: schedule_of(run, preset, steps, steps if n == "base" else 0, pick_run) for n in singles},
             **{n: schedule_of(run, preset, steps, k, pick_run) for n, (_, k) in scheds.items()}}
    other_est = {t: {n: schedule_cost(m, plans[n]).loop_ms for n in names} for t, m in others.items()}
    lq = LoopQualityConfig(steps=steps)
    quality = {n: deployed_loop_quality([singles[n]] * steps, p, lq, threads=args.threads) for n in singles}
    for n, (folder, k) in scheds.items():
        files = [folder / f"{'base' if i < k else 'pick'}.onnx" for i in range(steps)]
        quality[n] = deployed_loop_quality(files, p, lq, threads=args.threads)
    rows = []
    for n in names:
        med = statistics.median(ms[n])
        k = scheds[n][1] if n in scheds else None
        linear = None if k is None else (k * statistics.median(ms["base"]) + (steps - k) * statistics.median(ms["pick"])) / steps
        q = quality[n]
        rows.append({"loop": n, "table_ms": round(est[n], 2), "measured_ms": round(med, 2), "error_pct": round(100 * (est[n] / med - 1), 2),
                     "repeat_spread_pct": round(100 * (max(ms[n]) / min(ms[n]) - 1), 2), "from_singles_ms": None if linear is None else round(linear, 2),
                     "sample_psnr": round(q["sample_psnr"], 3), "sample_psnr_sd": round(q["sample_psnr_sd"], 3), "mean_psnr": round(q["mean_psnr"], 3),
                     "bicubic_psnr": round(q["bicubic_psnr"], 3),
                     **{f"table{i + 2}_ms": round(e[n], 2) for i, e in enumerate(other_est.values())},
                     **{f"table{i + 2}_error_pct": round(100 * (e[n] / med - 1), 2) for i, e in enumerate(other_est.values())}})
    atomic_write_csv(Path(__file__).resolve().parent / "results" / "schedule_measured.csv", rows, list(rows[0]))
    lines = [
        "# Step schedules measured (base early, the searched subnet late)",
        "",
        f"`python benchmarks/schedule_measured.py --run {args.run}` at {git_rev()}; {machine()}; load average (1 min) {' / '.join(f'{x:.2f}' for x in load)} "
        f"(before, after each repeat). Table `{table}` (profiled by the run on this machine). {steps}-step DDIM loops on ONNX Runtime, "
        f"{args.threads} thread(s), batch 1; each loop benched {args.repeats} times ({args.rounds} rounds each), the order rotated: "
        "the median over repeats, their spread (max/min - 1) beside it. Loop metric: the deployed loop on "
        f"{lq.crops} held-out crops x {lq.seeds} noise seeds (the same seeds for every loop; sd over seeds).",
        "",
        "| loop | table estimate ms | measured ms | estimate error | repeat spread | from the singles' loops ms | single-sample PSNR dB (sd) | mean-of-samples PSNR dB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['loop']} | {r['table_ms']:.1f} | {r['measured_ms']:.1f} | {r['error_pct']:+.1f}% | {r['repeat_spread_pct']:.1f}% | "
                     f"{'' if r['from_singles_ms'] is None else format(r['from_singles_ms'], '.1f')} | {r['sample_psnr']:.2f} ({r['sample_psnr_sd']:.2f}) | "
                     f"{r['mean_psnr']:.2f} |")
    lines += [f"| bicubic | | | | | | {rows[0]['bicubic_psnr']:.2f} | |", ""]
    for i, t in enumerate(other_est):
        lines += [f"Table {i + 2}, `{t}`: " + "; ".join(f"{r['loop']} {r[f'table{i + 2}_ms']:.1f} ms ({r[f'table{i + 2}_error_pct']:+.1f}%)" for r in rows)
                  + " (estimate, its error against the same measured loops).", ""]
    lines += [
              "`from the singles' loops`: k/S x the base's measured loop + (S-k)/S x the pick's, what a schedule costs if its steps cost what they "
              "cost in the single-subnet loops. One training seed per model: the quality columns carry the noise seeds' spread only.", ""]
    write("schedule_measured.md", "\n".join(lines))


if __name__ == "__main__":
    main()
