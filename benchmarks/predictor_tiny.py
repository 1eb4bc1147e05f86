"""Issue 5, benchmark 1: the GNN predictor on our own target (tiny preset, ONNX Runtime CPU),
against the table sum and a FLOPs fit, on subnets held out from training.

Usage: python benchmarks/predictor_tiny.py [--data latency_tables/cpu-tiny-archs/dataset.csv]
         [--train 500] [--test 200] [--out predictors/cpu-tiny.pt] [--seed 0]
Writes train.csv / test.csv beside the dataset (the split), the predictor file, and
results/predictor_tiny.{md,csv,png}. The measurement's own repeatability (round 2 vs round 1 on
the test subnets) is the ceiling of any estimate and is reported beside it.
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import time
from pathlib import Path

import numpy as np

from common import RESULTS, git_rev, machine, scatter_vs_measured, write

from rcai.cost.model import TableCostModel
from rcai.io import atomic_write_csv
from rcai.cost.table import CostTable
from rcai.predictor import LatencyPredictor, evaluate, train_predictor
from rcai.predictor.train import PredictorTrainConfig
from rcai.space.subnet import SubnetSpec


def split_rows(path: Path, n_train: int, n_test: int, seed: int, root: Path) -> tuple[list[dict], list[dict]]:
    """Shuffled train/test rows of one dataset; the base model (row 0) always trains. Paths are
    rebased to `root`, the folder of the combined train.csv / test.csv."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("model", "subnet"):
            r[k] = os.path.relpath(path.parent / r[k], root)
    order = list(range(1, len(rows)))
    random.Random(seed).shuffle(order)
    train, test = [rows[0]] + [rows[i] for i in order[: n_train - 1]], [rows[i] for i in order[n_train - 1 : n_train - 1 + n_test]]
    if len(test) < n_test:
        raise SystemExit(f"{path}: {len(rows)} rows, need {n_train + n_test}")
    return train, test


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="latency_tables/cpu-tiny-archs/dataset.csv", help="uniformly sampled subnets")
    ap.add_argument("--skewed", default="latency_tables/cpu-tiny-archs-skewed/dataset.csv", help="skewed subnets ('' to skip)")
    ap.add_argument("--table", default="latency_tables/cpu-tiny.csv")
    ap.add_argument("--train", type=int, default=500)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--skewed-train", type=int, default=100)
    ap.add_argument("--skewed-test", type=int, default=49)
    ap.add_argument("--out", default="predictors/cpu-tiny.pt")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data = Path(args.data)
    root = data.parent
    train_rows, test_rows = split_rows(data, args.train, args.test, args.seed, root)
    groups = {"uniform": test_rows}
    if args.skewed:
        sk_train, sk_test = split_rows(Path(args.skewed), args.skewed_train, args.skewed_test, args.seed, root)
        train_rows += sk_train[1:]  # its base model duplicates the uniform set's
        groups["skewed"] = sk_test
    train_csv = atomic_write_csv(root / "train.csv", train_rows)
    atomic_write_csv(root / "test.csv", [r for g in groups.values() for r in g])

    t0 = time.perf_counter()
    pred = train_predictor(str(train_csv), cfg=PredictorTrainConfig(seed=args.seed), progress=True)
    train_s = time.perf_counter() - t0
    pred.save(args.out)
    pred = LatencyPredictor.load(args.out)

    table = CostTable.load(args.table)
    tcm = TableCostModel(SubnetSpec.load(root / train_rows[0]["subnet"]).preset, table)
    archs = lambda rs: [SubnetSpec.load(root / r["subnet"]).choices for r in rs]  # noqa: E731
    # FLOPs baseline: log-latency linear in log-FLOPs, fitted on the training subnets
    a, b = np.polyfit(np.log([tcm.estimate(x).flops for x in archs(train_rows)]), np.log([float(r["latency_ms"]) for r in train_rows]), 1)
    lines = [
        "# GNN latency predictor on the tiny preset (ONNX Runtime CPU)",
        "",
        f"Machine: {machine()}; git {git_rev()}. Data: `{data}` (700 uniformly sampled subnets) and `{args.skewed}` (150 subnets "
        "whose ops are skewed towards one or two op types, reaching the extremes), each subnet measured in 2 interleaved rounds, "
        f"1 ORT thread. Train {len(train_rows)} (uniform {args.train} + skewed {args.skewed_train - 1}); predictor trained in "
        f"{train_s:.0f} s -> `{args.out}`. Held-out test sets below.",
        "",
        "| test set | estimate | n | Acc±10% | Acc±5% | Spearman | Kendall | MAPE | RMSE ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    csv_rows, plot = [], {}
    for group, rows in groups.items():
        true = np.array([float(r["latency_ms"]) for r in rows])
        est = {
            "GNN predictor": pred.predict([str(root / r["model"]) for r in rows]),
            "table sum (overhead once)": np.array([tcm.estimate(x).latency_ms for x in archs(rows)]),
            "FLOPs (log-log fit on train)": np.exp(a * np.log([tcm.estimate(x).flops for x in archs(rows)]) + b),
        }
        rounds = [[float(v) for v in r["round_ms"].split("|")] for r in rows]
        results = {**{k: evaluate(v, true) for k, v in est.items()},
                    "re-measurement (round 2 vs round 1)": evaluate([x[-1] for x in rounds], [x[0] for x in rounds])}
        for name, r in results.items():
            lines.append(f"| {group} | {name} | {r['n']} | {r['acc_10']:.1%} | {r['acc_5']:.1%} | {r['spearman']:.3f} | {r['kendall']:.3f} | "
                         f"{r['mape']:.1%} | {r['rmse_ms']:.3f} |")
        for i, r in enumerate(rows):
            csv_rows.append({"test_set": group, "model": r["model"], "measured_ms": r["latency_ms"],
                             **{k.split(" ")[0].lower() + "_ms": f"{v[i]:.5g}" for k, v in est.items()}})
        plot[group] = (true, est["GNN predictor"])
    lines += ["", "Goal (issue 5): Acc±10% ≥ 95% and Spearman ≥ 0.95 for the GNN. The re-measurement row is the noise ceiling.",
              "", "![GNN predicted vs measured](predictor_tiny.png)"]
    write("predictor_tiny.md", "\n".join(lines) + "\n")
    atomic_write_csv(RESULTS / "predictor_tiny.csv", csv_rows)
    true_all = np.concatenate([t for t, _ in plot.values()])
    scatter_vs_measured(true_all, {f"GNN, {g} test": np.concatenate([e if gg == g else np.full(len(t), np.nan) for gg, (t, e) in plot.items()])
                                   for g in plot}, RESULTS / "predictor_tiny.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
