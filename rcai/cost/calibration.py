"""Calibration of a cost table to whole sampling loops (`rcai profile --calibrate N`).

An isolated op's latency is not its cost inside a graph: a skip op costs a call and a copy alone and
nothing in a graph; caches are warm in a graph; the graph pays the per-call overhead once. Nor is a
statistic of isolated calls (p10 of an op's calls, one fixed input) the figure a loop is quoted by
(the median of whole loops: every call, a new input each step). A handful of whole subnets, their
DDIM loops measured right after the ops with the one loop measurement (rcai.cost.loops), fit per step

    (loop_ms - sampler loop_ms) / steps = overhead_ms + sum over ops of factor[op kind] * table latency(op)

(target "loop"; tables from before fitted single calls: target "call"). That fit is the measured
conversion from the table's statistic and clock to the loop's; the sampler's own per-step cost is
the separate, measured term `sampler_ms` of the table's meta.

by least squares on relative errors, the factors pulled towards their common scale (ridge, on each
kind's share of a network: a kind departs from the others only where the subnets show it clearly,
which keeps the table's ranking) and bounded to [0, MAX]. With a handful of subnets the pull must be
strong: at the old RIDGE = 0.3 two kinds of small share traded places (dwsep3x3 -> 0, skip -> 3, the
bound), the "cheapest" subnet became all-dwsep and its loop was estimated 28 % low; refitting the same
measurements at 30 brings random subnets' median error from 3.5-4.6 % to 2.4-2.7 % and Acc±5 from
56-62 % to 88-91 % (benchmarks/results/calibration_ridge.md). The overhead's and the scale's weak
priors do not grow with it.
Kinds whose sum is the same in every calibration subnet (the fixed ops) keep factor 1: their
in-graph difference is one constant, absorbed by overhead_ms. The fit is stored in the table's
meta.json and every estimate made from the table uses it (TableCostModel; the search's expected
cost folds the factors into the per-op costs).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..config import JsonConfig
from ..errors import RcaiError

MAX_FACTOR = 3.0
RIDGE = 30.0  # weight of (factor - scale)^2, scaled by the kind's share of a network (benchmarks/results/calibration_ridge.md)
WEAK = 0.003  # weight of the overhead's pull to the table's own and of the scale's to 1


@dataclass
class Calibration(JsonConfig):
    overhead_ms: float  # added once per network, replacing the table's per-call overhead; it also absorbs the
    # in-graph difference of the fixed ops (the same in every subnet), so it may be negative
    factors: dict[str, float] = field(default_factory=dict)  # op kind -> factor; absent kinds: 1
    subnets: int = 0  # how many whole subnets the fit saw
    ridge: float = RIDGE
    fit: dict[str, float] = field(default_factory=dict)  # errors on the calibration subnets themselves
    measured: list[dict[str, Any]] = field(default_factory=list)  # the calibration subnets (arch, ms)
    target: str = "call"  # what was fitted: "loop" (whole loops per step, the sampler's term removed) | "call" (single calls)
    model: str = "kinds"  # kinds: a factor per op kind | launch: scale x table latency + kernel_ms per kernel (fit_launch)
    kernel_ms: float = 0.0  # launch: the per-kernel floor
    scale: float = 1.0  # launch: the factor on every op's table latency

    def factor(self, kind: str) -> float:
        return float(self.factors.get(kind, 1.0))

    def op_ms(self, kind: str, table_ms: float, kernels: float = 0.0) -> float:
        """An op's cost inside a whole step (without the per-step overhead_ms)."""
        if self.model == "launch":
            return self.scale * table_ms + self.kernel_ms * kernels
        return self.factor(kind) * table_ms


def fit_calibration(
    kind_sums: Sequence[Mapping[str, float]], measured_ms: Sequence[float], ridge: float = RIDGE, prior_overhead_ms: float = 0.0
) -> Calibration:
    """Fit overhead_ms and per-kind factors. kind_sums[i][kind] = sum of the table latencies of
    subnet i's ops of that kind; measured_ms[i] = subnet i measured whole."""
    from scipy.optimize import lsq_linear

    if len(kind_sums) != len(measured_ms) or not kind_sums:
        raise RcaiError("calibration: need one measured latency per subnet, and at least one subnet")
    y = np.asarray(measured_ms, dtype=np.float64)
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise RcaiError("calibration: measured latencies must be positive")
    kinds = sorted({k for s in kind_sums for k in s})
    S = np.array([[float(s.get(k, 0.0)) for k in kinds] for s in kind_sums])
    spread = S.max(0) - S.min(0)
    varying = [j for j, k in enumerate(kinds) if spread[j] > 1e-9 * max(S[:, j].max(), 1e-12)]
    fixed = S[:, [j for j in range(len(kinds)) if j not in varying]].sum(1)  # same in every subnet
    const = float(fixed[0]) if fixed.size else 0.0
    V, K = S[:, varying], len(varying)
    # unknowns x = [overhead, scale, f_k for varying k]; data rows relative to the measured latency;
    # each factor is pulled towards the common scale (ridge), the scale weakly towards 1
    A = np.column_stack([np.ones(len(y)), np.zeros(len(y)), V]) / y[:, None]
    b = (y - fixed) / y
    share = V.mean(0) / y.mean()
    reg_A, reg_b = np.zeros((K + 2, K + 2)), np.zeros(K + 2)
    weak = np.sqrt(WEAK)
    reg_A[0, 0], reg_b[0] = weak / y.mean(), weak * prior_overhead_ms / y.mean()
    reg_A[1, 1], reg_b[1] = weak, weak
    for i, w in enumerate(share):
        reg_A[i + 2, i + 2], reg_A[i + 2, 1] = np.sqrt(ridge) * w, -np.sqrt(ridge) * w
    lo = np.r_[-const, 0.2, np.zeros(K)]
    hi = np.r_[np.inf, 5.0, np.full(K, MAX_FACTOR)]
    x = lsq_linear(np.vstack([A, reg_A]), np.r_[b, reg_b], bounds=(lo, hi)).x
    factors = {kinds[j]: float(f) for j, f in zip(varying, x[2:])}
    pred = x[0] + fixed + V @ x[2:]
    err = np.abs(pred / y - 1)
    return Calibration(
        overhead_ms=float(x[0]),
        factors=factors,
        subnets=len(y),
        ridge=ridge,
        fit={"mape": float(err.mean()), "max_err": float(err.max()), "acc_10": float((err <= 0.10).mean()), "scale": float(x[1])},
    )


CALIBRATION_MODELS = ("kinds", "launch")
LAUNCH_PRIOR = 0.01  # weight of the scale's pull to 1 (kernels and latency sums are correlated over a handful of subnets)


def fit_launch(table_sums: Sequence[float], kernel_sums: Sequence[float], measured_ms: Sequence[float]) -> Calibration:
    """The launch-bound fit (a GPU at small batch): per step,

        measured = overhead_ms + kernel_ms * (kernels of the subnet) + scale * (sum of its ops' table latencies)

    by least squares on relative errors, kernel_ms >= 0, scale in [0, 5] weakly pulled to 1. The
    kernel term carries what an additive table of isolated calls (each less a per-call overhead)
    loses: the per-kernel floor that dominates a launch-bound step."""
    from scipy.optimize import lsq_linear

    y = np.asarray(measured_ms, dtype=np.float64)
    S, K = np.asarray(table_sums, dtype=np.float64), np.asarray(kernel_sums, dtype=np.float64)
    if not (len(y) == len(S) == len(K)) or not len(y):
        raise RcaiError("calibration: need one measured latency, latency sum and kernel count per subnet")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise RcaiError("calibration: measured latencies must be positive")
    A = np.column_stack([np.ones_like(y), K, S]) / y[:, None]
    b = np.ones_like(y)
    w = np.sqrt(LAUNCH_PRIOR)
    A = np.vstack([A, [0.0, 0.0, w]])
    b = np.r_[b, w]
    x = lsq_linear(A, b, bounds=([-float(y.min()), 0.0, 0.0], [np.inf, np.inf, 5.0])).x
    pred = x[0] + x[1] * K + x[2] * S
    err = np.abs(pred / y - 1)
    return Calibration(overhead_ms=float(x[0]), subnets=len(y), ridge=LAUNCH_PRIOR, model="launch", kernel_ms=float(x[1]), scale=float(x[2]),
                       fit={"mape": float(err.mean()), "max_err": float(err.max()), "acc_10": float((err <= 0.10).mean()), "scale": float(x[2])})
