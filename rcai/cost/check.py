"""`rcai tables check` and `rcai profile --check`: does a cost table predict whole subnets here?

check_table: a table's whole-network estimate against measured subnets. Figures per dataset: the
table estimate (calibrated where the table is: what search and every estimate use), the same table
without its calibration, the raw sum of isolated ops, and the measurement's own repeatability (first
half of its rounds vs second half; no estimate can be more accurate than the measurement repeats).
Subnets the table was calibrated on are left out.

fidelity_check: the whole check a user runs on their own machine, for one measuring method: profile
a table (with calibration), measure 40+ other subnets, profile a second table minutes later, and
report re-measurement repeatability, table vs measured for both tables, the two tables op by op,
the profiling time and the load average.
"""
from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import RcaiError
from ..predictor.metrics import evaluate
from ..space.subnet import SubnetSpec
from .model import TableCostModel
from .table import CostTable


def read_dataset_rows(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    if not path.exists():
        raise RcaiError(f"{path}: dataset not found")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"latency_ms", "subnet"}
    if not rows or not need <= set(rows[0]):
        raise RcaiError(f"{path}: needs columns {sorted(need)} and at least one row (written by `rcai profile --archs`)")
    return rows


def _figures(est, measured) -> dict[str, float]:
    e, t = np.asarray(est), np.asarray(measured)
    return {**evaluate(e, t), "bias": float(np.median(e / t) - 1)}


def _halves(r: dict[str, str], path: str | Path, line: int) -> tuple[float, float] | None:
    """The two half-run measurements of a dataset row (older datasets: first and last round)."""
    if r.get("half1_ms") and r.get("half2_ms"):
        h = (float(r["half1_ms"]), float(r["half2_ms"]))  # nan where the run had one round
        return (_ms(path, line, "half1_ms", r["half1_ms"]), _ms(path, line, "half2_ms", r["half2_ms"])) if all(np.isfinite(h)) else None
    if r.get("round_ms"):
        x = [_ms(path, line, "round_ms", v) for v in r["round_ms"].split("|")]
        return (x[0], x[-1]) if len(x) >= 2 else None
    return None


def _ms(path: str | Path, line: int, column: str, text: str | None) -> float:
    """A measured latency: a positive finite number of ms, else a one-line error naming the line."""
    try:
        v = float(text or "")
    except ValueError:
        v = math.nan
    if not math.isfinite(v) or v <= 0:
        raise RcaiError(f"{path}:{line}: {column} must be a positive finite number of ms, got {text!r}")
    return v


def check_table(table: CostTable, dataset: str | Path, force: bool = False) -> dict[str, Any]:
    rows = read_dataset_rows(dataset)
    root = Path(dataset).parent
    first = SubnetSpec.load(root / rows[0]["subnet"])
    model = TableCostModel(first.preset, table, force=force)
    bare = TableCostModel(first.preset, table, force=force, calibrated=False)
    calib = {tuple(sorted(m["arch"].items())) for m in (table.calibration.measured if table.calibration else [])}
    measured, est, uncal, raw, halves, left_out = [], [], [], [], [], 0
    for line, r in enumerate(rows, start=2):
        spec = SubnetSpec.load(root / r["subnet"], expect_preset=first.preset)
        if tuple(sorted(spec.choices.items())) in calib:
            left_out += 1
            continue
        specs = model.space.arch_specs(spec.choices)
        measured.append(_ms(dataset, line, "latency_ms", r["latency_ms"]))
        est.append(model.estimate(spec.choices).latency_ms)
        uncal.append(bare.estimate(spec.choices).latency_ms)
        raw.append(sum(table.rows[s.key][table.latency_column] for s in specs))
        halves.append(_halves(r, dataset, line))
    if not measured:
        raise RcaiError(f"{dataset}: every subnet was one the table is calibrated on; measure others")
    out: dict[str, Any] = {
        "table": str(table.path),
        "dataset": str(dataset),
        "overhead_ms": model.overhead_ms,
        "calibrated": table.calibration is not None,
        "calibration_subnets_left_out": left_out,
        "table_sum": _figures(est, measured),
        "raw_sum": _figures(raw, measured),
        "_arrays": {"measured": measured, "table_sum": est, "raw_sum": raw},
    }
    if table.calibration is not None:
        out["uncalibrated"] = _figures(uncal, measured)
        out["_arrays"]["uncalibrated"] = uncal
    if halves and all(h is not None for h in halves):
        h1, h2 = np.array([h[0] for h in halves]), np.array([h[1] for h in halves])
        out["repeatability"] = _figures(h2, h1)
    return out


def compare_tables(a: CostTable, b: CostTable) -> dict[str, Any]:
    """Two tables op by op (each one's latency column): share of ops within 5% / 10%, median and
    largest deviation |b/a - 1|, and the op that moved most."""
    keys = sorted(k for k in set(a.rows) & set(b.rows) if a.rows[k][a.latency_column] > 0)
    if not keys:
        raise RcaiError(f"{a.path} and {b.path} have no op in common")
    dev = np.array([abs(b.rows[k][b.latency_column] / a.rows[k][a.latency_column] - 1) for k in keys])
    worst = int(dev.argmax())
    return {"ops": len(keys), "within_5": float(np.mean(dev <= 0.05)), "within_10": float(np.mean(dev <= 0.10)),
            "median_dev": float(np.median(dev)), "max_dev": float(dev.max()), "worst_op": keys[worst]}


# -- the whole check ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class FidelityConfig:
    preset: str = "tiny"
    device: str = "cpu"
    threads: int | None = 1
    batch: int = 1
    subnets: int = 40  # measured subnets the tables are checked against (besides the base model)
    calibrate: int = 8  # whole subnets the table is calibrated on (<= 10)
    seed: int = 1  # of the measured subnets (calibration subnets come from their own seed)
    rounds: int = 12  # interleaved rounds of the subnet measurement


def _configs(cfg: FidelityConfig, method: str):
    from .archs import ArchDatasetConfig
    from .profile import NET_MEASURE, OP_MEASURE, InterleaveConfig, ProfileConfig

    base = ProfileConfig(preset=cfg.preset, device=cfg.device, threads=cfg.threads, batch=cfg.batch)
    archs = ArchDatasetConfig(archs=cfg.subnets + 1, rounds=cfg.rounds, seed=cfg.seed)
    if method == "old":  # the methods before issue 10, with their defaults then
        return (replace(base, method="sequential", measure=OP_MEASURE), replace(base, measure=NET_MEASURE),
                replace(archs, method="sequential", rounds=2))
    clock = {"new": "auto", "new-wall": "wall"}[method]
    p = replace(base, interleave=InterleaveConfig(clock=clock), calibrate=cfg.calibrate)
    return p, p, archs


CHECK_METHODS = ("new", "new-wall", "old")


def fidelity_check(cfg: FidelityConfig, method: str, workdir: str | Path, progress: bool = False,
                   log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Table A (timed), the subnets, table B, then every figure; files stay in workdir."""
    from .archs import profile_archs
    from .profile import load_average, profile_ops

    if method not in CHECK_METHODS:
        raise RcaiError(f"unknown check method {method!r}; known: {', '.join(CHECK_METHODS)}")
    workdir = Path(workdir)
    pcfg, ncfg, acfg = _configs(cfg, method)
    out: dict[str, Any] = {"method": method, "load_start": load_average(), "started": time.strftime("%H:%M:%S", time.gmtime())}
    t0 = time.perf_counter()
    log(f"[{method}] profiling table A")
    a = profile_ops(pcfg, workdir / "a.csv", progress=progress)
    out["profile_seconds"] = time.perf_counter() - t0
    log(f"[{method}] measuring {acfg.archs} subnets")
    t1 = time.perf_counter()
    dataset = profile_archs(ncfg, acfg, workdir / "archs", progress=progress)
    out["subnets_seconds"] = time.perf_counter() - t1
    log(f"[{method}] profiling table B")
    t2 = time.perf_counter()
    b = profile_ops(pcfg, workdir / "b.csv", progress=progress)
    out["minutes_between_tables"] = (t2 - t0) / 60
    out["load_end"] = load_average()
    out["a"] = check_table(a, dataset)
    out["b"] = check_table(b, dataset)
    out["a_vs_b"] = compare_tables(a, b)
    out["drift"] = {k: t.meta.get("drift") for k, t in (("a", a), ("b", b))}
    out["clock"] = a.meta.get("clock", "wall")
    out["calibration"] = {k: t.meta.get("calibration", {}).get("factors") for k, t in (("a", a), ("b", b))}
    return out
