"""A foreign family for the latency predictor: diffusers `UNet2DModel` configurations (another
codebase's UNet design, never rcai's search space), exported to ONNX, timed with the interleaved
method (shared/MEASUREMENT.md). Benchmark-only: needs the `[bench]` extra (diffusers).

    python benchmarks/predictor_foreign.py export  --n 150           # configs + ONNX (weights) in runs/foreign
    python benchmarks/predictor_foreign.py measure                   # -> results/predictor_foreign.csv (~9 min here)
    python benchmarks/predictor_foreign.py evaluate --parts kshot &  # two processes: ~20 min each at load ~12
    python benchmarks/predictor_foreign.py evaluate --parts family features
    python benchmarks/predictor_foreign.py report --notes benchmarks/results/predictor_foreign.notes.md

On a fresh clone `evaluate` re-exports the graphs (no weights) from the configs in the CSV.

Each network is one denoising call at batch 1 (sample [1, C, S, S], timestep [1]). The timing
uses rcai's rounds engine (rcai.cost.rounds.measure_interleaved): a new random order every round,
short bursts, the reference kernel in every round, ONNX Runtime on CPU with 1 thread, the calling
thread's CPU clock; a killed run resumes after its last complete round. The estimator is p10 over
all calls; the re-measurement is p10 of the odd rounds vs p10 of the even rounds.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, load_text, machine  # noqa: E402

CSV = RESULTS / "predictor_foreign.csv"


def sample_config(rng: random.Random) -> dict:
    """One random UNet2DModel configuration, sized for a few ms per call on one CPU core."""
    n_blocks = rng.choice([2, 3, 3, 4])
    base = rng.choice([16, 16, 24, 32, 48])
    mults = rng.choice([(1, 2, 2, 4), (1, 1, 2, 2), (1, 2, 3, 4), (1, 2, 4, 4), (1, 1, 2, 4)])[:n_blocks]
    channels = [base * m for m in mults]
    attn_from = rng.choice([n_blocks, n_blocks, n_blocks - 1, max(1, n_blocks - 2)])  # blocks >= this have attention
    down = ["AttnDownBlock2D" if i >= attn_from else "DownBlock2D" for i in range(n_blocks)]
    up = ["AttnUpBlock2D" if i >= attn_from else "UpBlock2D" for i in reversed(range(n_blocks))]
    return {
        "sample_size": rng.choice([16, 24, 32, 32]),
        "in_channels": rng.choice([1, 3, 3, 4]),
        "block_out_channels": channels,
        "down_block_types": down,
        "up_block_types": up,
        "layers_per_block": rng.choice([1, 1, 2]),
        "norm_num_groups": 8,
        "attention_head_dim": rng.choice([8, 16]),
        "act_fn": rng.choice(["silu", "silu", "mish", "gelu"]),
        "add_attention": rng.random() < 0.6,
        "downsample_type": rng.choice(["conv", "conv", "resnet"]),
        "upsample_type": rng.choice(["conv", "conv", "resnet"]),
        "resnet_time_scale_shift": rng.choice(["default", "scale_shift"]),
    }


class _Call(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep):
        return self.unet(sample, timestep).sample


def build(cfg: dict) -> tuple[torch.nn.Module, tuple]:
    from diffusers import UNet2DModel

    c = dict(cfg)
    s = c.pop("sample_size")
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=s, out_channels=c["in_channels"], **{k: tuple(v) if isinstance(v, list) else v for k, v in c.items()})
    return _Call(unet).eval(), (torch.randn(1, cfg["in_channels"], s, s), torch.tensor([10.0]))


def export(cfg: dict, path: Path, params: bool = True) -> Path:
    import warnings

    model, inputs = build(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, inputs, str(path), input_names=["sample", "timestep"], output_names=["out"],
                          opset_version=17, dynamo=False, export_params=params)
    return path


def cmd_export(a) -> None:
    from rcai.progress import progress_bar

    work = Path(a.work)
    rng = random.Random(a.seed)
    configs = {f"u{k:03d}": sample_config(rng) for k in range(a.n)}
    (work / "models").mkdir(parents=True, exist_ok=True)
    (work / "configs.json").write_text(json.dumps(configs, indent=1))
    with progress_bar(True, "exporting UNet2DModel configurations", len(configs)) as advance:
        for name, cfg in (reversed(configs.items()) if a.reverse else configs.items()):
            p = work / "models" / f"{name}.onnx"
            if not p.exists():
                tmp = p.with_suffix(".tmp.onnx")
                export(cfg, tmp)
                tmp.rename(p)
            advance(name)


def _p10(calls) -> float:
    return float(np.percentile(np.asarray([t for r in calls for t in r]), 10))


def cmd_measure(a) -> None:
    from rcai.cost.rounds import NET, REFERENCE, InterleaveConfig, measure_interleaved
    from rcai.progress import progress_bar
    from rcai.targets import TargetSpec, resolve_device
    from rcai.targets.measure import pinned
    from rcai.targets.sysinfo import load_average

    work = Path(a.work)
    configs = json.loads((work / "configs.json").read_text())
    target = resolve_device(TargetSpec(device="cpu", threads=1))
    icfg = InterleaveConfig(rounds=a.rounds, net_burst=a.burst, burst=8, seed=a.seed)
    models = {NET + n: work / "models" / f"{n}.onnx" for n in configs}
    load_before = load_average()
    with pinned(1, icfg.pin), progress_bar(True, "interleaved rounds", a.rounds) as advance:
        calls = measure_interleaved(target, models, icfg, work / "rounds.csv", advance)
    load_after = load_average()
    rows = []
    for n, cfg in configs.items():
        r = calls[NET + n]
        rows.append({"name": n, "latency_ms": f"{_p10(r):.5g}", "odd_ms": f"{_p10(r[0::2]):.5g}", "even_ms": f"{_p10(r[1::2]):.5g}",
                     "median_ms": f"{float(np.median([t for x in r for t in x])):.5g}", "calls": sum(map(len, r)),
                     "config": json.dumps(cfg, sort_keys=True)})
    with open(CSV, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ref = calls[REFERENCE]
    meta = {"machine": machine(), "load_before": load_text(load_before), "load_after": load_text(load_after),
            "rounds": a.rounds, "net_burst": a.burst, "clock": icfg.clock, "estimator": "p10",
            "reference_p10_per_round": [round(float(np.percentile(x, 10)), 4) for x in ref]}
    CSV.with_suffix(".meta.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {CSV} ({len(rows)} networks); load {meta['load_before']} -> {meta['load_after']}")


# ---------------------------------------------------------------- evaluation

def dataset(work: Path) -> tuple[object, dict]:
    """The measured family as an rcai latency dataset (graphs cached next to work/dataset.csv); ONNX
    files that are absent (a fresh clone) are exported again, without weights, from the configs."""
    from rcai.predictor.dataset import load_dataset

    rows = list(csv.DictReader(open(CSV)))
    for r in rows:
        p = work / "models" / f"{r['name']}.onnx"
        if not p.exists():
            export(json.loads(r["config"]), p, params=False)
    (work / "dataset.csv").write_text("model,latency_ms\n" + "".join(f"models/{r['name']}.onnx,{r['latency_ms']}\n" for r in rows))
    return load_dataset(work / "dataset.csv"), {r["name"]: r for r in rows}


def scores(pred_ms, true_ms) -> dict:
    from rcai.stats import accuracy

    r = accuracy(pred_ms, true_ms)
    return {"spearman": r["spearman"], "acc_10": r["acc_10"], "acc_5": r["acc_5"],
            "ratio": float(np.median(np.asarray(pred_ms) / np.asarray(true_ms))), "msle": float(np.mean(np.log(np.asarray(pred_ms) / true_ms) ** 2))}


def kshot(base, ds, pool, test, K: int, draws: int, seed: int) -> list[dict]:
    """K shots drawn from `pool` (`draws` times): every method fitted on them, and the one that
    cross-validation within the K chooses, scored on `test`."""
    from rcai.predictor.finetune import METHODS, Shots, choose, cross_validate, drop_outliers
    from rcai.predictor.train import PredictorTrainConfig, deterministic

    out = []
    y = ds.latency_ms[test, 0]
    graphs = [ds.graphs[i] for i in test]
    for d in range(draws):
        shots = sorted(np.random.default_rng([seed, K, d]).choice(pool, K, replace=False).tolist())
        cfg = PredictorTrainConfig(seed=d)
        with deterministic():
            sh = Shots(base.model, ds.subset(shots))
            drop_outliers(sh)
            errs, _ = cross_validate(sh, cfg)
            chosen, reason = choose(errs)
            rows = np.flatnonzero(np.isfinite(sh.logy[:, 0]))
            for m in METHODS:
                model, _ = sh.fit(m, rows, cfg)
                with torch.no_grad():
                    from rcai.predictor.batch import collate

                    p = np.exp(model.log_ms(collate(graphs))[:, 0].double().numpy())
                out.append({"K": K, "draw": d, "method": m, "chosen": m == chosen, **scores(p, y)})
        print(f"K={K} draw {d}: chose {chosen} ({reason})", flush=True)
    return out


def train_family(ds, train, test, recipe: str, seeds: int) -> dict:
    """A predictor trained on the family's train part (ensemble: the mean log ms of `seeds` seeds)."""
    from rcai.predictor.model import ModelConfig
    from rcai.predictor.predictor import train_predictor
    from rcai.predictor.train import PredictorTrainConfig

    cfg, mcfg = {"default": (PredictorTrainConfig(), ModelConfig()),
                 "long": (PredictorTrainConfig(epochs=250, patience=40), ModelConfig()),
                 "wide": (PredictorTrainConfig(), ModelConfig(hidden=64)),
                 "wide-long": (PredictorTrainConfig(epochs=250, patience=40), ModelConfig(hidden=64)),
                 "op-counts": (PredictorTrainConfig(), ModelConfig(op_counts=True))}[recipe]
    import dataclasses
    import time

    logs = []
    t0 = time.time()
    for s in range(seeds):
        pred = train_predictor(ds.subset(train), cfg=dataclasses.replace(cfg, seed=s), model_cfg=mcfg)
        logs.append(pred.predict_log([ds.graphs[i] for i in test])[:, 0])
    return {"logs": logs, "seconds": time.time() - t0}


def cmd_evaluate(a) -> None:
    from rcai.predictor.predictor import LatencyPredictor

    work = Path(a.work)
    ds, rows = dataset(work)
    y = ds.latency_ms[:, 0]
    names = [Path(m).stem for m in ds.models]
    odd = np.array([float(rows[n]["odd_ms"]) for n in names])
    even = np.array([float(rows[n]["even_ms"]) for n in names])
    perm = np.random.default_rng(a.seed).permutation(len(ds))
    n_test = round(a.test_fraction * len(ds))
    test, train = sorted(perm[:n_test].tolist()), sorted(perm[n_test:].tolist())
    res = {"n_train": len(train), "n_test": len(test), "latency_range_ms": [float(y.min()), float(y.max())]}
    res["remeasure"] = scores(odd[test], even[test])
    lf = np.array([float(g.g[0, 0]) for g in ds.graphs])  # log1p(FLOPs)
    coef = np.polyfit(lf[train], np.log(y[train]), 1)
    res["logflops"] = scores(np.exp(np.polyval(coef, lf[test])), y[test])
    base = LatencyPredictor.load(a.init)
    res["zero"] = scores(base.predict([ds.graphs[i] for i in test]), y[test])
    if "family" in a.parts:
        res["family"] = {}
        for recipe in a.recipes:
            t = train_family(ds, train, test, recipe, a.seeds)
            res["family"][recipe] = {"single": [scores(np.exp(l), y[test]) for l in t["logs"]],
                                     "ensemble": scores(np.exp(np.mean(t["logs"], 0)), y[test]), "seconds": t["seconds"]}
            print(recipe, res["family"][recipe]["ensemble"], flush=True)
            _merge(work, res)
    if "features" in a.parts:  # a linear model of graph statistics: what do whole-graph counts explain?
        from sklearn.linear_model import RidgeCV

        from rcai.predictor.ops import N_OPS

        X = np.array([np.concatenate([g.g[0].numpy(), np.log1p(np.bincount(g.op.numpy(), minlength=N_OPS))]) for g in ds.graphs])
        for name, cols in (("global", slice(0, 6)), ("global+ops", slice(None))):
            r = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(X[train][:, cols], np.log(y[train]))
            res[f"ridge_{name}"] = scores(np.exp(r.predict(X[test][:, cols])), y[test])
            print(name, res[f"ridge_{name}"], flush=True)
        _merge(work, res)
    if "kshot" in a.parts:
        res["kshot"] = []
        for K in a.shots:
            res["kshot"] += kshot(base, ds, train, test, K, a.draws, a.seed)
            _merge(work, res)
    print(f"wrote {work}/evaluate-*.json")


def _merge(work: Path, res: dict) -> None:
    """work/evaluate-PART.json: each `evaluate --parts` process writes its own file; report merges them."""
    part = "-".join(k for k in ("family", "kshot", "ridge_global") if k in res) or "base"
    part += "-" + "-".join(sorted(res.get("family", {}))) if "family" in res else ""
    (work / f"evaluate-{part}.json").write_text(json.dumps(res, indent=1))


def _row(name: str, r: dict, extra: str = "") -> str:
    return f"| {name} | {r['spearman']:.3f} | {r['acc_10']:.0%} | {r['acc_5']:.0%} | {r['ratio']:.2f} | {_rms(r)} |{extra}"


def _rms(r: dict) -> str:
    """Root mean squared log error as a factor in % (what cross-validation scores)."""
    return f"{100 * np.expm1(np.sqrt(r['msle'])):.0f} %"


def _median(rs: list[dict]) -> dict:
    return {k: float(np.median([r[k] for r in rs])) for k in ("spearman", "acc_10", "acc_5", "ratio", "msle")}


def cmd_report(a) -> None:
    """benchmarks/results/predictor_foreign.md (+ _kshot.csv, .json) from work/evaluate-*.json."""
    work = Path(a.work)
    res = {}
    for f in sorted(work.glob("evaluate-*.json")):
        part = json.loads(f.read_text())
        res.update({**part, "family": {**res.get("family", {}), **part.get("family", {})}})
    if res:
        RESULTS.joinpath("predictor_foreign.json").write_text(json.dumps(res, indent=1))
    else:  # a fresh clone: the committed figures
        res = json.loads(RESULTS.joinpath("predictor_foreign.json").read_text())
    meta = json.loads(CSV.with_suffix(".meta.json").read_text())
    head = "| predictor | Spearman | Acc±10 | Acc±5 | median predicted / measured | rms log error |"
    lines = [head + " note |", "|---|---:|---:|---:|---:|---:|---|",
             _row("re-measurement: p10 of the odd rounds vs p10 of the even rounds", res["remeasure"], " the ceiling |"),
             _row(f"log-FLOPs fit on the {res['n_train']} training networks", res["logflops"], " |")]
    for k, what in (("ridge_global", "whole-graph totals (log FLOPs, params, bytes, outputs, nodes, edges)"),
                    ("ridge_global+ops", "the same + log count of every op type")):
        if k in res:
            lines.append(_row(f"ridge on {what}, same {res['n_train']}", res[k], " |"))
    for recipe, f in res["family"].items():
        n = len(f["single"])
        single = _median(f["single"])
        lines.append(_row(f"`rcai predictor train` on the {res['n_train']}, recipe {recipe}: one model (median of {n} seeds)", single, " |"))
        lines.append(_row(f"the same, ensemble of the {n} seeds (mean log ms)", f["ensemble"], f" {f['seconds'] / 60:.0f} min to train all {n} |"))
    lines.append(_row("the shipped `predictors/cpu-tiny.pt`, zero-shot", res["zero"], " |"))
    kshot = res["kshot"]
    ks = sorted({r["K"] for r in kshot})
    draws = sorted({r["draw"] for r in kshot})
    kl = ["| K | method | Spearman | Acc±10 | Acc±5 | median ratio | rms log error | worst draw Acc±10 | chosen in |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    never = []
    for K in ks:
        rs = [r for r in kshot if r["K"] == K]
        for m in ("zero", "level", "head", "full", "auto"):
            sel = [r for r in rs if (r["chosen"] if m == "auto" else r["method"] == m)]
            md = _median(sel)
            chosen = sum(r["chosen"] for r in rs if r["method"] == m) if m != "auto" else len(draws)
            kl.append(f"| {K} | {'**chosen by CV**' if m == 'auto' else m} | {md['spearman']:.3f} | {md['acc_10']:.0%} | {md['acc_5']:.0%} | "
                      f"{md['ratio']:.2f} | {_rms(md)} | {min(r['acc_10'] for r in sel):.0%} | {chosen}/{len(draws)} |")
        zero = {r["draw"]: r for r in rs if r["method"] == "zero"}
        worse = [r for r in rs if r["chosen"] and r["msle"] > zero[r["draw"]]["msle"] + 1e-12]
        below = [r for r in rs if r["chosen"] and r["acc_10"] < zero[r["draw"]]["acc_10"]]
        never.append(f"K={K}: held-out squared log error above zero-shot's in {len(worse)} of {len(draws)} draws, "
                     f"Acc±10 below zero-shot's in {len(below)} of {len(draws)}")
    with open(RESULTS / "predictor_foreign_kshot.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(kshot[0]))
        w.writeheader()
        w.writerows(kshot)
    text = TEMPLATE.format(machine=meta["machine"], load_before=meta["load_before"], load_after=meta["load_after"],
                           n=res["n_train"] + res["n_test"], n_train=res["n_train"], n_test=res["n_test"],
                           lo=res["latency_range_ms"][0], hi=res["latency_range_ms"][1], rounds=meta["rounds"],
                           burst=meta["net_burst"], table="\n".join(lines), ktable="\n".join(kl), never="; ".join(never),
                           draws=len(draws), notes=Path(a.notes).read_text() if a.notes else "")
    out = RESULTS / "predictor_foreign.md"
    out.write_text(text)
    print(f"wrote {out}")


TEMPLATE = """# The latency predictor on a foreign family: diffusers UNet2DModel configurations

`python benchmarks/predictor_foreign.py export|measure|evaluate|report` (issue 35). {n} random
`diffusers.UNet2DModel` configurations (another codebase's UNet: 2-4 resolution levels, 16-48 base
channels, attention blocks, GroupNorm, resnet or conv down/upsampling, SiLU/Mish/GELU; 16-32 px,
1-4 channels; never rcai's search space), one denoising call at batch 1, {lo:.2g}-{hi:.3g} ms, exported to
ONNX and timed with ONNX Runtime on CPU, 1 thread, with rcai's interleaved rounds: {rounds} rounds, each
visiting every network in a new random order for {burst} calls (plus 1 warm-up), the reference kernel in
every round, the calling thread's CPU clock; estimate = p10 of all calls.
Machine: {machine}; load average {load_before} before the timing, {load_after} after: shared with
other engineers' jobs, so the machine was loaded throughout.

Split: {n_train} networks to train on, the other {n_test} held out; every row is scored on the same
{n_test}. Acc±10 = share of networks predicted within 10 %.

{table}

## Few-shot: K measured networks of the family, adapted from `predictors/cpu-tiny.pt`

K networks drawn from the {n_train} ({draws} draws each), scored on the {n_test} held-out ones; medians
over the draws. `rcai predictor train --init predictors/cpu-tiny.pt --shots K` fits every method and
keeps the one cross-validation within the K chooses (rcai/predictor/finetune.py): a more complex
method must beat the current choice by more than the standard error of its paired gain.

{ktable}

Never worse than zero-shot? The chosen method, {never}.

{notes}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--n", type=int, default=150)
    e.add_argument("--work", default="runs/foreign")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--reverse", action="store_true", help="export from the last: a second process shares the work")
    m = sub.add_parser("measure")
    m.add_argument("--work", default="runs/foreign")
    m.add_argument("--rounds", type=int, default=24)
    m.add_argument("--burst", type=int, default=4)
    m.add_argument("--seed", type=int, default=0)
    v = sub.add_parser("evaluate")
    v.add_argument("--work", default="runs/foreign")
    v.add_argument("--init", default="predictors/cpu-tiny.pt")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--test-fraction", type=float, default=0.3)
    v.add_argument("--recipes", nargs="*", default=["default"], help="default | long | wide | wide-long | op-counts")
    v.add_argument("--seeds", type=int, default=3)
    v.add_argument("--shots", type=int, nargs="*", default=[5, 10, 20])
    v.add_argument("--draws", type=int, default=3)
    v.add_argument("--parts", nargs="*", default=["family", "features", "kshot"])
    rp = sub.add_parser("report")
    rp.add_argument("--work", default="runs/foreign")
    rp.add_argument("--notes", default="", help="a markdown file appended as the findings")
    a = ap.parse_args()
    {"export": cmd_export, "measure": cmd_measure, "evaluate": cmd_evaluate, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
