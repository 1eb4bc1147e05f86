"""`rcai tables check`: a cost table's whole-network estimate against measured subnets.

Three figures per dataset: the overhead-corrected table sum (what search uses), the raw sum of
isolated-op medians, and round-vs-round repeatability of the measurement itself (no estimate can
be more accurate than the measurement repeats)."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

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
    measured, corrected, raw, rounds = [], [], [], []
    for line, r in enumerate(rows, start=2):
        spec = SubnetSpec.load(root / r["subnet"], expect_preset=first.preset)
        specs = model.space.arch_specs(spec.choices)
        measured.append(_ms(dataset, line, "latency_ms", r["latency_ms"]))
        corrected.append(model.estimate(spec.choices).latency_ms)
        raw.append(sum(table.rows[s.key]["median_ms"] for s in specs))
        if r.get("round_ms"):
            rounds.append([_ms(dataset, line, "round_ms", x) for x in r["round_ms"].split("|")])
    t = np.asarray(measured)
    out = {
        "table": str(table.path),
        "dataset": str(dataset),
        "overhead_ms": table.overhead_ms,
        "table_sum": {**evaluate(corrected, t), "bias": float(np.median(np.asarray(corrected) / t) - 1)},
        "raw_sum": {**evaluate(raw, t), "bias": float(np.median(np.asarray(raw) / t) - 1)},
        "_arrays": {"measured": measured, "table_sum": corrected, "raw_sum": raw},
    }
    if rounds and all(len(x) >= 2 for x in rounds):
        first_r, last_r = np.array([x[0] for x in rounds]), np.array([x[-1] for x in rounds])
        out["repeatability"] = {**evaluate(last_r, first_r), "bias": float(np.median(last_r / first_r) - 1)}
    return out
