"""Accuracy of latency predictions."""
from __future__ import annotations

import numpy as np
from scipy import stats


def evaluate(pred, true) -> dict[str, float]:
    """n, spearman, kendall, acc_5, acc_10 (share with |pred - true| / true <= 5 % / 10 %),
    rmse_ms, mape (mean |pred - true| / true, as a fraction). Latencies in ms."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(true, dtype=np.float64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"pred has {p.size} values, true has {t.size}")
    if t.size == 0:
        raise ValueError("no values to evaluate")
    rel = np.abs(p - t) / t
    constant = np.ptp(p) == 0 or np.ptp(t) == 0  # rank correlation undefined
    return {
        "n": int(t.size),
        "spearman": float("nan") if constant else float(stats.spearmanr(p, t).statistic),
        "kendall": float("nan") if constant else float(stats.kendalltau(p, t).statistic),
        "acc_5": float(np.mean(rel <= 0.05 + 1e-12)),
        "acc_10": float(np.mean(rel <= 0.10 + 1e-12)),
        "rmse_ms": float(np.sqrt(np.mean((p - t) ** 2))),
        "mape": float(np.mean(rel)),
    }
