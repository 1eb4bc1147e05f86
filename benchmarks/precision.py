"""fp32 vs INT8 (ONNX Runtime static quantization) over whole sampling loops, tiny preset, 1 thread.

1. Subnets: the base, the cheapest (by the fp32 table), --random random ones and the knapsack picks
   (predictors/quality-tiny.json) of the fp32 table and of the INT8 table under the same whole-loop
   budget (--budget x the INT8 table's base loop, in ms). Each is trained briefly from scratch
   (rcai.train, --train-steps) and exported in fp32 and INT8 (rcai export's code path).
2. Quality: posterior-mean gain over bicubic on the held-out crops of the fp32 model and of its INT8
   export (loss with a paired 95% interval) and the PSNR of the INT8 loop's sample vs the fp32 torch
   loop's from the same noise (rcai bench's check); torch's own dynamic quantization of the base too.
3. Speed: every fp32 and INT8 loop (and torch eager fp32 / dynamic-int8 for the base) in one
   interleaved measurement (rcai bench's loop measurement via compare_loops), DDIM 50 steps, batch 1.
4. Table vs measurement: --acc-subnets random subnets (random weights), their INT8 and fp32 loops
   measured together, against the INT8 and the fp32 table's loop estimates (Acc±10%).

    python benchmarks/precision.py [--train-steps 150] [--random 8] [--acc-subnets 30] [--rounds 6]
        [--work runs/precision]      # trained runs and exports are kept there and reused
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rcai.cost.load import load_cost_model
from rcai.deploy import BenchConfig, DeploySidecar, compare_loops, export_subnet_onnx, load_state
from rcai.deploy.bench import psnr_vs_reference
from rcai.deploy.engines import Engine
from rcai.deploy.quality import OnnxModule, quality_loss
from rcai.deploy.quantize import CalibrationConfig
from rcai.deploy.weights import build_model
from rcai.diffusion import TorchDenoiser
from rcai.io import atomic_write_csv, atomic_write_json, atomic_write_text
from rcai.presets import get_preset
from rcai.stats import rank_corr as spearman
from rcai.space.space import SearchSpace
from rcai.space.subnet import SubnetSpec
from rcai.targets.sysinfo import cpu_model, load_average

from common import RESULTS, add_train_device, git_rev, load1
FP32_TABLE = "latency_tables/cpu-tiny.csv"
INT8_TABLE = "latency_tables/cpu-tiny-int8.csv"
QUALITY_MODEL = "predictors/quality-tiny.json"
STEPS = 50  # DDIM steps of the deployed loop
LEARNED_DB = 0.1  # a subnet whose fp32 gain is below this has barely left bicubic: its INT8 loss is ~0 by construction


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- 1. subnets ------------------------------------------------------------------------------------

def pick_subnets(args, preset, work: Path) -> tuple[dict[str, dict[str, str]], dict[str, Any]]:
    from rcai.search.strategies.run import run_knapsack

    path = work / "subnets.json"
    if path.exists():
        d = json.loads(path.read_text())
        return d["subnets"], d["picks"]
    space = SearchSpace.of(preset)
    t32, t8 = (load_cost_model(p, preset) for p in (args.fp32_table, args.int8_table))
    subnets = {"base": space.base_arch(), "cheapest": space.extreme_arch(lambda s: t32.op_metric(s, "latency_ms"), largest=False)[0]}
    rng = random.Random(args.seed)
    for k in range(args.random):
        subnets[f"random-{k}"] = space.random_arch(rng)
    base8 = t8.estimate(subnets["base"], STEPS).loop_ms
    budget = args.budget * base8
    picks: dict[str, Any] = {"budget_ms": budget, "budget_rel": args.budget, "base_int8_table_ms": base8}
    for name, table in (("pick-fp32-table", args.fp32_table), ("pick-int8-table", args.int8_table)):
        res, summary = run_knapsack(preset.name, table, args.quality_model, budget, STEPS, work / name)
        subnets[name] = dict(res.subnet.choices)
        picks[name] = {"table": table, "table_loop_ms": res.estimate.loop_ms, "predicted_gain_db": summary["best_score"]}
    # the fp32 table told the budget relative to its own base (a user who rescales the budget by hand)
    base32 = t32.estimate(subnets["base"], STEPS).loop_ms
    res, summary = run_knapsack(preset.name, args.fp32_table, args.quality_model, args.budget * base32, STEPS, work / "pick-fp32-table-rel")
    picks["pick-fp32-table-rel"] = {"table": args.fp32_table, "budget_ms": args.budget * base32, "table_loop_ms": res.estimate.loop_ms,
                                    "predicted_gain_db": summary["best_score"], "choices": dict(res.subnet.choices),
                                    "same_as": next((n for n, a in subnets.items() if a == dict(res.subnet.choices)), None)}
    atomic_write_json(path, {"subnets": subnets, "picks": picks})
    return subnets, picks


# -- 2. training and export ------------------------------------------------------------------------

def train_all(args, preset, subnets: dict[str, dict[str, str]], work: Path) -> dict[str, Path]:
    from rcai.train.evaluate import EvalConfig
    from rcai.train.protocol import TrainProtocol, train_job

    runs = {}
    for name, arch in subnets.items():
        run = work / "train" / name
        runs[name] = run
        if (run / "model.pt").exists() and (run / "metrics.json").exists():
            continue
        run.mkdir(parents=True, exist_ok=True)
        SubnetSpec(preset, arch).save(run.parent / f"{name}.subnet.json")
        t0 = time.time()
        protocol = TrainProtocol(steps=args.train_steps, batch_size=8, lr=2e-3, lr_schedule="cosine", ema=0.0, eval_at=())
        m = train_job(protocol, run, preset=preset.name, subnet=run.parent / f"{name}.subnet.json", seed=0, eval=EvalConfig(steps=5, max_images=1),
                      device=args.train_device, precision=args.train_precision).run()
        say(f"trained {name}: {m['quality']['gain_db']:+.3f} dB in {time.time() - t0:.0f} s (load {load1()})")
    return runs


def export_all(runs: dict[str, Path], work: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for name, run in runs.items():
        spec, weights = SubnetSpec.load(run / "subnet.json"), run / "model.pt"
        state = load_state(weights)
        paths = {}
        for precision in ("fp32", "int8"):
            p = work / "onnx" / f"{name}.{precision}.onnx"
            if not p.exists():
                rep = export_subnet_onnx(spec, state, p, weights_path=weights, precision=precision)
                if precision == "int8":
                    say(f"{name} int8: output {rep.int8_rel_error:.1%} off fp32 on held-out loop inputs")
            paths[precision] = p
        out[name] = {"spec": spec, "state": state, "weights": weights, **paths}
    return out


# -- 3. quality -------------------------------------------------------------------------------------

def torch_dynamic(model: torch.nn.Module) -> torch.nn.Module:
    """torch's own post-training dynamic quantization (the Linear layers: noise embedding, FiLM;
    torch has no dynamic quantization of convolutions)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def quality_rows(exports: dict[str, dict[str, Any]], work: Path) -> dict[str, dict[str, Any]]:
    path = work / "quality.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    cfg = BenchConfig(threads=1, steps=STEPS, image=None, seed=0, psnr=True)
    for name, e in exports.items():
        if name in done:
            continue
        ref = build_model(e["spec"], e["state"])
        q = quality_loss(OnnxModule(e["int8"], e["spec"].preset, threads=1), ref)
        p = psnr_vs_reference(e["int8"], cfg)
        done[name] = {**q, "psnr_int8_vs_fp32_db": p["psnr_db"], "psnr_reference": p["reference"]}
        if name == "base":
            qd = quality_loss(torch_dynamic(build_model(e["spec"], e["state"])), ref)
            done["base-torch-dynamic"] = qd
        atomic_write_json(path, done)
        say(f"quality {name}: fp32 {q['fp32_gain_db']:+.3f} dB, int8 {q['gain_db']:+.3f} dB, loss {q['loss_db']:+.3f} "
            f"[{q['loss_lo']:+.3f}, {q['loss_hi']:+.3f}]; sampled PSNR int8 vs fp32 {p['psnr_db']:.1f} dB")
    return done


# -- 2b. what to keep in fp32: the exclusion list, measured on the trained base ------------------------

ABLATION = {  # name -> QuantConfig overrides; "default" is QuantConfig() (Conv only, stem and head fp32)
    "every op ORT quantizes": {"op_types": (), "exclude": ()},
    "Conv incl. stem and head": {"exclude": ()},
    "Conv, per-tensor weights": {"per_channel": False},
    "Conv, int8 activations (S8S8)": {"activations": "int8"},
}


def ablation(exports: dict[str, dict[str, Any]], work: Path) -> dict[str, dict[str, Any]]:
    """The base quantized other ways: its output error on held-out loop inputs and its quality loss
    (the loops are timed in the speed run with the rest)."""
    from rcai.deploy.export import int8_vs_torch
    from rcai.targets.quantize import QuantConfig

    path = work / "ablation.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    b = exports["base"]
    ref = build_model(b["spec"], b["state"])
    for name, over in ABLATION.items():
        p = work / "onnx" / f"base.ablation-{len(done)}.onnx" if name not in done else Path(done[name]["onnx"])
        if name in done:
            continue
        export_subnet_onnx(b["spec"], b["state"], p, weights_path=b["weights"], precision="int8", verify=False, quant=QuantConfig(**over))
        rel, worst = int8_vs_torch(p, ref, b["spec"].preset)
        q = quality_loss(OnnxModule(p, b["spec"].preset, threads=1), ref)
        done[name] = {"onnx": str(p), "rel_error": rel, "max_abs_diff": worst, **q}
        atomic_write_json(path, done)
        say(f"ablation {name}: output {rel:.1%} off fp32, loss {q['loss_db']:+.3f} dB")
    return done


# -- 4. speed ----------------------------------------------------------------------------------------

def torch_engine(model: torch.nn.Module, label: str) -> Engine:
    info = {"device": "cpu", "threads": 1, "backend": "torch", "backend_version": torch.__version__, "precision": label}
    return Engine("torch", TorchDenoiser(model), info, f"torch {torch.__version__} eager ({label})", on_calling_thread=True)


def speed(exports: dict[str, dict[str, Any]], abl: dict[str, dict[str, Any]], rounds: int) -> dict[str, dict[str, Any]]:
    cands: dict[str, tuple[Any, Any]] = {f"base|ablation|{name}": (Path(a["onnx"]), "cpu") for name, a in abl.items()}
    for name, e in exports.items():
        cands[f"{name}|fp32"] = (e["fp32"], "cpu")
        cands[f"{name}|int8"] = (e["int8"], "cpu")
    b = exports["base"]
    cands["base|torch-fp32"] = (b["fp32"], torch_engine(build_model(b["spec"], b["state"]), "fp32"))
    cands["base|torch-dynamic-int8"] = (b["fp32"], torch_engine(torch_dynamic(build_model(b["spec"], b["state"])), "dynamic int8 Linear"))
    cfg = BenchConfig(threads=1, steps=STEPS, image=None, seed=0, psnr=False)
    return compare_loops(cands, cfg, rounds=rounds)


def accuracy(args, preset, work: Path) -> list[dict[str, Any]]:
    """Random subnets (random weights): INT8 and fp32 loops measured together vs both tables."""
    space = SearchSpace.of(preset)
    rng = random.Random(args.seed + 100)
    archs = [space.random_arch(rng) for _ in range(args.acc_subnets)]
    d = work / "acc"
    cands = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random init
        for i, a in enumerate(archs):
            spec = SubnetSpec(preset, a)
            for precision in ("fp32", "int8"):
                p = d / f"{i:03d}.{precision}.onnx"
                if not p.exists():
                    export_subnet_onnx(spec, None, p, verify=False, precision=precision, calibration=CalibrationConfig(inputs=8))
                cands[f"{i:03d}|{precision}"] = (p, "cpu")
    say(f"acc: {len(cands)} loops exported; measuring (load {load_average()})")
    res = compare_loops(cands, BenchConfig(threads=1, steps=STEPS, image=None, seed=0, psnr=False), rounds=args.acc_rounds)
    t32, t8 = load_cost_model(args.fp32_table, preset), load_cost_model(args.int8_table, preset, precision="int8")
    rows = []
    for i, a in enumerate(archs):
        m32, m8 = res[f"{i:03d}|fp32"], res[f"{i:03d}|int8"]
        e32, e8 = t32.estimate(a, STEPS).loop_ms, t8.estimate(a, STEPS).loop_ms
        rows.append({"subnet": i, "hash": SubnetSpec(preset, a).hash, "fp32_ms": m32["median_ms"], "int8_ms": m8["median_ms"],
                     "fp32_repeat": m32["repeatability"], "int8_repeat": m8["repeatability"],
                     "fp32_table_ms": e32, "int8_table_ms": e8, "fp32_err_pct": 100 * (e32 / m32["median_ms"] - 1),
                     "int8_err_pct": 100 * (e8 / m8["median_ms"] - 1), "speedup": m32["median_ms"] / m8["median_ms"]})
    return rows


# -- report -------------------------------------------------------------------------------------------

def lscpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        keep = ("Model name", "CPU(s)", "Thread(s) per core", "L2 cache", "L3 cache")
        flags = next((l for l in out.splitlines() if l.startswith("Flags")), "")
        vnni = ", ".join(f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if f in flags.split())
        return "; ".join(" ".join(l.split()) for l in out.splitlines() if l.split(":")[0].strip() in keep) + f"; int8 flags: {vnni or 'none'}"
    except Exception:
        return cpu_model()


def plot(rows_speed, acc, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.4))
    names = [r["subnet"] for r in rows_speed]
    x = np.arange(len(names))
    a1.bar(x - 0.2, [r["fp32_ms"] for r in rows_speed], 0.4, label="fp32 ORT")
    a1.bar(x + 0.2, [r["int8_ms"] for r in rows_speed], 0.4, label="INT8 ORT (QDQ)")
    a1.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    a1.set_ylabel("whole loop ms (DDIM 50, 1 thread)")
    a1.legend(fontsize=8)
    m = [r["int8_ms"] for r in acc]
    a2.scatter(m, [r["int8_table_ms"] for r in acc], s=10, label="INT8 table vs INT8 loop")
    a2.scatter([r["fp32_ms"] for r in acc], [r["fp32_table_ms"] for r in acc], s=10, label="fp32 table vs fp32 loop")
    lo = min(min(m), min(r["fp32_ms"] for r in acc)) * 0.9
    hi = max(r["fp32_ms"] for r in acc) * 1.1
    a2.plot([lo, hi], [lo, hi], "k--", lw=1)
    a2.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="gray", alpha=0.15, label="±10%")
    a2.set_xlabel("measured loop ms")
    a2.set_ylabel("table estimate ms")
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    global RESULTS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="runs/precision")
    ap.add_argument("--train-steps", type=int, default=150)
    ap.add_argument("--random", type=int, default=8)
    ap.add_argument("--acc-subnets", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--acc-rounds", type=int, default=4)
    ap.add_argument("--budget", type=float, default=0.6, help="loop budget as a fraction of the base's INT8-table loop")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fp32-table", default=FP32_TABLE)
    ap.add_argument("--int8-table", default=INT8_TABLE)
    ap.add_argument("--quality-model", default=QUALITY_MODEL)
    ap.add_argument("--results", default=str(Path(__file__).parent / "results"), help="folder of precision.md/.csv/.png")
    ap.add_argument("--report-only", action="store_true", help="rewrite precision.md/.png from the last run's files (no measurement)")
    ap.add_argument("--only", default="", help="stop after a phase: subnets | train | quality")
    add_train_device(ap)
    args = ap.parse_args()
    RESULTS = Path(args.results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    preset = get_preset("tiny")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        return rewrite_report(work)
    t0, load_start = time.time(), load_average()
    subnets, picks = pick_subnets(args, preset, work)
    say(f"{len(subnets)} subnets; budget {picks['budget_ms']:.0f} ms")
    if args.only == "subnets":
        return
    runs = train_all(args, preset, subnets, work)
    if args.only == "train":
        return
    exports = export_all(runs, work)
    quality = quality_rows(exports, work)
    abl = ablation(exports, work)
    if args.only == "quality":
        return
    say(f"speed: {2 * len(exports) + 2 + len(abl)} loops interleaved, {args.rounds} rounds (load {load_average()})")
    load_speed0 = load_average()
    sp = speed(exports, abl, args.rounds)
    load_speed1 = load_average()
    acc = accuracy(args, preset, work) if args.acc_subnets else []
    load_end = load_average()
    t8 = load_cost_model(args.int8_table, preset, precision="int8")
    t32 = load_cost_model(args.fp32_table, preset)
    rows = []
    for name, e in exports.items():
        q, a = quality[name], subnets[name]
        f, i = sp[f"{name}|fp32"], sp[f"{name}|int8"]
        rows.append({"subnet": name, "hash": e["spec"].hash, "fp32_ms": f["median_ms"], "int8_ms": i["median_ms"], "speedup": f["median_ms"] / i["median_ms"],
                     "fp32_repeat": f["repeatability"], "int8_repeat": i["repeatability"], "fp32_table_ms": t32.estimate(a, STEPS).loop_ms,
                     "int8_table_ms": t8.estimate(a, STEPS).loop_ms, "fp32_gain_db": q["fp32_gain_db"], "int8_gain_db": q["gain_db"],
                     "loss_db": q["loss_db"], "loss_lo": q["loss_lo"], "loss_hi": q["loss_hi"], "psnr_int8_vs_fp32_db": q["psnr_int8_vs_fp32_db"],
                     "int8_rel_error": DeploySidecar.for_onnx(e["int8"]).export_check["int8_rel_error"]})
    torch_rows = {k: sp[f"base|{k}"] for k in ("torch-fp32", "torch-dynamic-int8")}
    for name, a in abl.items():
        a["loop_ms"], a["repeat"] = sp[f"base|ablation|{name}"]["median_ms"], sp[f"base|ablation|{name}"]["repeatability"]
    atomic_write_csv(RESULTS / "precision.csv", rows)
    if acc:
        atomic_write_csv(RESULTS / "precision_acc.csv", acc)
    plot(rows, acc or [{"fp32_ms": r["fp32_ms"], "int8_ms": r["int8_ms"], "fp32_table_ms": r["fp32_table_ms"], "int8_table_ms": r["int8_table_ms"]} for r in rows],
         RESULTS / "precision.png")
    meta = {"cpu": lscpu(), "load_start": load_start, "load_speed": [load_speed0, load_speed1], "load_end": load_end, "minutes": (time.time() - t0) / 60,
            "git": git_rev(), "args": vars(args), "picks": picks, "quality": quality, "ablation": abl, "torch": torch_rows, "int8_table_meta": t8.table.meta.get("quantization")}
    atomic_write_json(work / "summary.json", meta)
    atomic_write_text(RESULTS / "precision.md", report(rows, acc, torch_rows, quality, picks, abl, meta))
    say(f"wrote {RESULTS / 'precision.md'} in {(time.time() - t0) / 60:.1f} min")


def _read_csv(path: Path) -> list[dict[str, Any]]:
    import csv

    def num(v: str) -> Any:
        try:
            return float(v)
        except ValueError:
            return v

    with open(path, newline="") as f:
        return [{k: num(v) for k, v in r.items()} for r in csv.DictReader(f)]


def rewrite_report(work: Path) -> None:
    meta = json.loads((work / "summary.json").read_text())
    rows = _read_csv(RESULTS / "precision.csv")
    acc = _read_csv(RESULTS / "precision_acc.csv") if (RESULTS / "precision_acc.csv").exists() else []
    plot(rows, acc or rows, RESULTS / "precision.png")
    atomic_write_text(RESULTS / "precision.md", report(rows, acc, meta["torch"], meta["quality"], meta["picks"], meta["ablation"], meta))
    say(f"rewrote {RESULTS / 'precision.md'}")


def _int8_estimate(choices) -> float:
    return load_cost_model(INT8_TABLE, get_preset("tiny"), precision="int8").estimate(choices, STEPS).loop_ms


def goals(rows, acc, picks, meta) -> list[str]:
    base = next(r for r in rows if r["subnet"] == "base")
    p8, p32 = next(r for r in rows if r["subnet"] == "pick-int8-table"), next(r for r in rows if r["subnet"] == "pick-fp32-table")
    learned = [r for r in rows if r["fp32_gain_db"] >= LEARNED_DB]
    out = [f"- INT8 whole loop >= 2x the fp32 ORT loop on the base: **missed**, {base['speedup']:.2f}x ({base['int8_ms']:.1f} vs {base['fp32_ms']:.1f} ms, same run); "
           f"{np.median([r['speedup'] for r in rows]):.2f}x median over the {len(rows)} subnets. The convs are 2-4x faster in INT8 at 32-64 "
           "channels but barely at 16 (dwsep3x3 at 16 channels is slower: the INT8 table), while GroupNorm, SiLU, attention, the residual adds, "
           "FiLM and the sampler's own per-step work stay fp32 and keep their time.",
           f"- Quality loss <= 0.1 dB on the primary metric: **met**, base {base['loss_db']:+.3f} dB [95% {base['loss_lo']:+.3f}, {base['loss_hi']:+.3f}]; "
           f"at most {max(r['loss_hi'] for r in learned):+.3f} dB (upper bound) over the {len(learned)} subnets that learned something "
           f"in {meta['args']['train_steps']} steps (short trainings: gains of +0.13..+0.51 dB, not the +0.74 dB of an 800-step base)."]
    if acc:
        e8 = [r["int8_err_pct"] for r in acc]
        out.append(f"- INT8 table vs measured INT8 loops, Acc±10% >= 95%: **{'met' if _acc10(e8) >= 0.95 else 'missed'}**, {_acc10(e8):.0%} over {len(acc)} "
                   f"subnets (mean |error| {np.mean(np.abs(e8)):.1f}%); the fp32 table on the same INT8 loops: "
                   f"{_acc10([100 * (r['fp32_table_ms'] / r['int8_ms'] - 1) for r in acc]):.0%}.")
    out.append(f"- The INT8-aware pick faster than the fp32-table pick at equal or better quality: **not as stated**. Under the same INT8 budget "
               f"({picks['budget_ms']:.0f} ms) the fp32 table, which overestimates INT8 loops (see below), picks a smaller subnet that leaves "
               f"{100 - 100 * p32['int8_ms'] / picks['budget_ms']:.0f}% of the budget unused: it is faster ({p32['int8_ms']:.1f} vs {p8['int8_ms']:.1f} ms) "
               f"and worse ({picks['pick-fp32-table']['predicted_gain_db']:+.3f} vs {picks['pick-int8-table']['predicted_gain_db']:+.3f} dB predicted; "
               f"{p32['int8_gain_db']:+.3f} vs {p8['int8_gain_db']:+.3f} dB measured in INT8 after {meta['args']['train_steps']} steps). The INT8 "
               "table's win is the better subnet that still fits the INT8 budget (it spends the 32-channel level on conv3x3, which INT8 makes "
               "2.3x cheaper there), not a faster one.")
    return out


def _acc10(errs) -> float:
    return float(np.mean(np.abs(np.asarray(errs)) <= 10.0))


def report(rows, acc, torch_rows, quality, picks, abl, meta) -> str:
    import onnxruntime as ort

    base = next(r for r in rows if r["subnet"] == "base")
    L = [
        "# Precision: fp32 vs INT8 whole sampling loops (tiny preset)",
        "",
        f"- CPU (`lscpu`): {meta['cpu']}.",
        f"- Shared machine (2 cores, other jobs running): 1-min load {meta['load_start']} at start, {meta['load_speed'][0]} -> {meta['load_speed'][1]} "
        f"around the speed run, {meta['load_end']} at the end; {meta['minutes']:.1f} min in all (git {meta['git']}).",
        f"- onnxruntime {ort.__version__}, torch {torch.__version__}; 1 thread; DDIM {STEPS} steps, batch 1, built-in photo crop; loops measured "
        f"by `rcai bench`'s loop measurement (compare_loops: interleaved rounds, {meta['args']['rounds']} rounds, process CPU time on 1 thread).",
        f"- Cost tables: INT8 `{meta['args']['int8_table']}` (`rcai profile --device cpu --preset tiny --threads 1 --calibrate 8 --precision int8`), "
        f"fp32 `{meta['args']['fp32_table']}` (the same command without --precision, minutes apart, same ORT: the committed "
        "latency_tables/cpu-tiny.csv is of an older ORT and method).",
        "- INT8: `onnxruntime.quantization.quantize_static`, QDQ, uint8 activations / int8 per-channel weights, MinMax, Conv only, stem and "
        "head convs kept fp32 (rcai/targets/quantize.py), calibrated on 64 inputs of the fp32 model's own DDIM loop over training-photo crops "
        "(8 crops x 8 noise levels, rcai/deploy/quantize.py). Every subnet trained from scratch for "
        f"{meta['args']['train_steps']} steps (batch 8, seed 0) so that the INT8 loss is read on trained weights.",
        "",
        "## Goals (issue 22)",
        "",
    ]
    L += goals(rows, acc, picks, meta)
    L += [
        "",
        "## Whole loop and quality, fp32 vs INT8 (one interleaved run)",
        "",
        "| subnet | fp32 loop ms | INT8 loop ms | speed-up | fp32 table ms | INT8 table ms | fp32 gain dB | INT8 gain dB | loss dB [95%] | output error | sampled PSNR INT8 vs fp32 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        L.append(f"| {r['subnet']} | {r['fp32_ms']:.1f} | {r['int8_ms']:.1f} | {r['speedup']:.2f}x | {r['fp32_table_ms']:.1f} | {r['int8_table_ms']:.1f} | "
                 f"{r['fp32_gain_db']:+.3f} | {r['int8_gain_db']:+.3f} | {r['loss_db']:+.3f} [{r['loss_lo']:+.3f}, {r['loss_hi']:+.3f}] | {r['int8_rel_error']:.1%} | {r['psnr_int8_vs_fp32_db']:.1f} dB |")
    sp = [r["speedup"] for r in rows]
    learned = [r for r in rows if r["fp32_gain_db"] >= LEARNED_DB]
    losses = [r["loss_db"] for r in learned] or [float("nan")]
    L += ["", f"- Speed-up over the {len(rows)} subnets: median {np.median(sp):.2f}x (min {min(sp):.2f}x, max {max(sp):.2f}x). "
          f"Re-measurement (second half of the rounds vs first): fp32 median {np.median([r['fp32_repeat'] for r in rows]):.1%}, "
          f"INT8 {np.median([r['int8_repeat'] for r in rows]):.1%}.",
          f"- Quality loss over the {len(learned)} subnets whose fp32 model learned something in {meta['args']['train_steps']} steps "
          f"(gain >= {LEARNED_DB} dB): median {np.median(losses):+.3f} dB, max {max(losses):+.3f} dB (upper 95% bound max "
          f"{max([r['loss_hi'] for r in learned] or [float('nan')]):+.3f} dB). The other {len(rows) - len(learned)} "
          f"({', '.join(r['subnet'] for r in rows if r['fp32_gain_db'] < LEARNED_DB) or 'none'}) still predict nearly a zero residual "
          "(bicubic): their loss is near 0 by construction and says little.",
          ]
    qb = quality["base"]
    L += ["", "## What stays fp32 (the exclusion list), measured on the base", "",
          "| base quantized as | loop ms | vs fp32 | output error vs fp32 (held-out loop inputs) | quality loss dB [95%] |", "|---|---:|---:|---:|---|",
          f"| fp32 | {base['fp32_ms']:.1f} | 1.00x | 0 | 0 |",
          f"| **Conv, stem and head fp32 (the default)** | {base['int8_ms']:.1f} | {base['speedup']:.2f}x | {base['int8_rel_error']:.1%} | "
          f"{qb['loss_db']:+.3f} [{qb['loss_lo']:+.3f}, {qb['loss_hi']:+.3f}] |"]
    for name, a in abl.items():
        L.append(f"| {name} | {a['loop_ms']:.1f} | {base['fp32_ms'] / a['loop_ms']:.2f}x | {a['rel_error']:.1%} | "
                 f"{a['loss_db']:+.3f} [{a['loss_lo']:+.3f}, {a['loss_hi']:+.3f}] |")
    L += ["", "Everything but Conv stays fp32: GroupNorm (InstanceNormalization + Mul/Add), SiLU, the attention's Einsum and Softmax, "
          "Resize, the residual Adds and FiLM. Quantizing every op ORT can (QDQ pairs around each small elementwise op) is slower than Conv alone "
          "and loses more; the stem (its input mixes the LR image with pure noise in one uint8 range) and the head (the output itself) cost "
          "little time and most of the loss."]
    byname = {k: a for k, a in abl.items()}
    if "Conv, int8 activations (S8S8)" in byname and "Conv, per-tensor weights" in byname:
        s8, pt = byname["Conv, int8 activations (S8S8)"], byname["Conv, per-tensor weights"]
        L += ["", f"int8 activations (S8S8, ORT's default) run {base['fp32_ms'] / s8['loop_ms']:.2f}x fp32: ORT's x86 QLinearConv is fast with uint8 "
              f"activations (U8S8, VNNI) only, as its documentation advises. Per-tensor weights lose the same ({pt['loss_db']:+.3f} dB) and run "
              f"{base['fp32_ms'] / pt['loop_ms']:.2f}x (within the run's noise of per-channel): per-channel stays the default, as the safer choice for "
              "channels of different ranges at no measurable cost."]
    tf, td = torch_rows["torch-fp32"], torch_rows["torch-dynamic-int8"]
    qd = quality.get("base-torch-dynamic", {})
    L += ["", "## What a user would pick instead: torch's own quantization (base)", "",
          "| base loop | ms | vs ORT fp32 |", "|---|---:|---:|",
          f"| ORT fp32 | {base['fp32_ms']:.1f} | 1.00x |", f"| ORT INT8 (this) | {base['int8_ms']:.1f} | {base['fp32_ms'] / base['int8_ms']:.2f}x |",
          f"| torch eager fp32 | {tf['median_ms']:.1f} | {base['fp32_ms'] / tf['median_ms']:.2f}x |",
          f"| torch eager, `quantize_dynamic` (Linear int8) | {td['median_ms']:.1f} | {base['fp32_ms'] / td['median_ms']:.2f}x |", "",
          f"torch's dynamic quantization covers only `nn.Linear` (the noise embedding and FiLM projections; torch has no dynamic int8 "
          f"convolution), so it leaves the convolutions, which are the network's time, in fp32: quality loss {qd.get('loss_db', float('nan')):+.3f} dB "
          f"[{qd.get('loss_lo', float('nan')):+.3f}, {qd.get('loss_hi', float('nan')):+.3f}]. torch's static (FX) quantization and `torch.compile` were not run "
          "(the FX path needs a traced model with quantization stubs in rcai's ops, which this issue does not touch)."]
    if acc:
        e8, e32 = [r["int8_err_pct"] for r in acc], [r["fp32_err_pct"] for r in acc]
        L += ["", f"## INT8 table vs measured INT8 loops ({len(acc)} random subnets, random weights, measured together with their fp32 loops, "
              f"{meta['args']['acc_rounds']} rounds)", "",
              "| table | Acc±10% | mean abs error | mean signed error | max abs error | Spearman |", "|---|---:|---:|---:|---:|---:|",
              f"| INT8 table vs INT8 loops | {_acc10(e8):.0%} | {np.mean(np.abs(e8)):.1f}% | {np.mean(e8):+.1f}% | {np.max(np.abs(e8)):.1f}% | "
              f"{spearman([r['int8_table_ms'] for r in acc], [r['int8_ms'] for r in acc]):.2f} |",
              f"| fp32 table vs fp32 loops | {_acc10(e32):.0%} | {np.mean(np.abs(e32)):.1f}% | {np.mean(e32):+.1f}% | {np.max(np.abs(e32)):.1f}% | "
              f"{spearman([r['fp32_table_ms'] for r in acc], [r['fp32_ms'] for r in acc]):.2f} |",
              f"| fp32 table vs INT8 loops (the wrong table) | {_acc10([100 * (r['fp32_table_ms'] / r['int8_ms'] - 1) for r in acc]):.0%} | "
              f"{np.mean([abs(100 * (r['fp32_table_ms'] / r['int8_ms'] - 1)) for r in acc]):.1f}% | "
              f"{np.mean([100 * (r['fp32_table_ms'] / r['int8_ms'] - 1) for r in acc]):+.1f}% | "
              f"{np.max([abs(100 * (r['fp32_table_ms'] / r['int8_ms'] - 1)) for r in acc]):.1f}% | "
              f"{spearman([r['fp32_table_ms'] for r in acc], [r['int8_ms'] for r in acc]):.2f} |",
              "", f"Speed-up of these {len(acc)} subnets: median {np.median([r['speedup'] for r in acc]):.2f}x "
              f"(min {min(r['speedup'] for r in acc):.2f}x, max {max(r['speedup'] for r in acc):.2f}x); re-measurement median "
              f"{np.median([r['int8_repeat'] for r in acc]):.1%} (INT8), {np.median([r['fp32_repeat'] for r in acc]):.1%} (fp32)."]
    p8, p32 = next(r for r in rows if r["subnet"] == "pick-int8-table"), next(r for r in rows if r["subnet"] == "pick-fp32-table")
    pk = picks
    rel = pk["pick-fp32-table-rel"]
    L += ["", f"## Hardware awareness: the knapsack pick (predictors/quality-tiny.json) under the same INT8 loop budget, {pk['budget_ms']:.0f} ms "
          f"({pk['budget_rel']:.2f} x the base's INT8-table loop)", "",
          "| pick by | table's loop estimate ms | predicted gain dB | INT8 loop measured ms | within budget | fp32 gain dB (trained) | INT8 gain dB (trained) |",
          "|---|---:|---:|---:|---|---:|---:|",
          f"| fp32 table | {pk['pick-fp32-table']['table_loop_ms']:.0f} (fp32 ms) | {pk['pick-fp32-table']['predicted_gain_db']:+.3f} | {p32['int8_ms']:.1f} | "
          f"{'yes' if p32['int8_ms'] <= pk['budget_ms'] else 'no'} | {p32['fp32_gain_db']:+.3f} | {p32['int8_gain_db']:+.3f} |",
          f"| INT8 table | {pk['pick-int8-table']['table_loop_ms']:.0f} | {pk['pick-int8-table']['predicted_gain_db']:+.3f} | {p8['int8_ms']:.1f} | "
          f"{'yes' if p8['int8_ms'] <= pk['budget_ms'] else 'no'} | {p8['fp32_gain_db']:+.3f} | {p8['int8_gain_db']:+.3f} |",
          "", f"- Measured in INT8 the INT8-table pick runs {p8['int8_ms'] / p32['int8_ms']:.2f}x the fp32-table pick's loop "
          f"({p8['int8_ms']:.1f} vs {p32['int8_ms']:.1f} ms; {p8['int8_ms'] / pk['budget_ms']:.0%} vs {p32['int8_ms'] / pk['budget_ms']:.0%} of the budget) "
          f"at {p8['int8_gain_db'] - p32['int8_gain_db']:+.3f} dB INT8 quality after {meta['args']['train_steps']} steps "
          f"({pk['pick-int8-table']['predicted_gain_db'] - pk['pick-fp32-table']['predicted_gain_db']:+.3f} dB predicted by the quality model, fitted on 800-step runs).", f"- With the budget restated relative to the fp32 table's own base ({rel['budget_ms']:.0f} fp32 ms), the fp32 table picks "
          f"{'the same subnet as ' + rel['same_as'] if rel['same_as'] else 'another subnet'} (predicted {rel['predicted_gain_db']:+.3f} dB; "
          f"INT8 table {_int8_estimate(rel['choices']):.0f} ms: faster than the INT8-table pick and predicted worse; not trained or measured here)."]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
