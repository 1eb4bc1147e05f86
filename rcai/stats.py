"""Statistics of repeated measurements: how much of a figure's spread is the thing measured and how
much is noise (training seeds, timing rounds), paired differences with their intervals, and how well
an estimate (a cost table, a latency predictor) matches a measurement: the one place for each."""
from __future__ import annotations

import math
import statistics
from itertools import combinations
from typing import Mapping, Sequence

import numpy as np
from scipy import stats as _st
from scipy.stats import spearmanr


def icc(table: Mapping[str, Sequence[float]]) -> float:
    """One-way random-effects intraclass correlation ICC(1): the share of the variance of a single
    measurement that lies between items (architectures) rather than within one (seeds). Items may
    have unequal counts (the k0 of the unbalanced ANOVA)."""
    groups = [np.asarray(v, float) for v in table.values() if len(v) >= 1]
    n = np.array([len(g) for g in groups])
    N, a = n.sum(), len(groups)
    if a < 2 or N - a < 1:
        return float("nan")
    grand = np.concatenate(groups).mean()
    msb = sum(len(g) * (g.mean() - grand) ** 2 for g in groups) / (a - 1)
    msw = sum(((g - g.mean()) ** 2).sum() for g in groups) / (N - a)
    k0 = (N - (n**2).sum() / N) / (a - 1)
    return float((msb - msw) / (msb + (k0 - 1) * msw))


def icc_consistency(table: Mapping[str, Mapping[int, float]]) -> float:
    """Two-way ICC(3,1), consistency: as ICC(1), but with each seed's shift common to every item
    removed first (a seed that is lucky for every subnet does not count as noise). The figure for
    comparisons made under one common seed. Items measured under every seed only."""
    seeds = sorted({s for v in table.values() for s in v})
    rows = [[v[s] for s in seeds] for v in table.values() if all(s in v for s in seeds)]
    X = np.asarray(rows, float)
    n, k = X.shape if X.ndim == 2 else (0, 0)
    if n < 2 or k < 2:
        return float("nan")
    resid = X - X.mean(1, keepdims=True) - X.mean(0, keepdims=True) + X.mean()
    msr = k * ((X.mean(1) - X.mean()) ** 2).sum() / (n - 1)
    mse = (resid**2).sum() / ((n - 1) * (k - 1))
    return float((msr - mse) / (msr + (k - 1) * mse))


def seed_spearman(table: Mapping[str, Mapping[int, float]]) -> tuple[float, list[float]]:
    """Mean over seed pairs of the Spearman correlation of the items' figures under seed i vs seed j
    (items measured under both); and the per-pair values."""
    seeds = sorted({s for v in table.values() for s in v})
    pairs = []
    for i, j in combinations(seeds, 2):
        both = [k for k, v in table.items() if i in v and j in v]
        if len(both) >= 3:
            pairs.append(float(spearmanr([table[k][i] for k in both], [table[k][j] for k in both])[0]))
    return (float(np.mean(pairs)) if pairs else float("nan")), pairs


def pooled_sd(table: Mapping[str, Sequence[float]]) -> float:
    """Within-item standard deviation pooled over items (seed-to-seed sd of one architecture)."""
    groups = [np.asarray(v, float) for v in table.values() if len(v) >= 2]
    dof = sum(len(g) - 1 for g in groups)
    return float(np.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / dof)) if dof else float("nan")


def ci95(xs: Sequence[float]) -> float:
    """Half-width of the 95 % Student-t interval of the mean of a few values (t of n - 1 dof for
    n <= 5, 2.0 beyond); nan for fewer than 2."""
    if len(xs) < 2:
        return float("nan")
    t = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78}.get(len(xs), 2.0)
    return t * statistics.stdev(xs) / math.sqrt(len(xs))


def seed_noise_sd(a: Sequence[float], b: Sequence[float]) -> float:
    """One architecture's sd over training seeds, from many architectures trained with two seeds
    each (a[i], b[i]): sqrt(var(a - b) / 2), the shift common to all (a lucky seed) removed."""
    return math.sqrt(statistics.variance([x - y for x, y in zip(a, b)]) / 2)


def beyond_noise_sd(sd: float, noise_sd: float) -> float:
    """The part of a spread `sd` that noise of sd `noise_sd` does not explain: sqrt(sd² - noise²), 0 at most."""
    return math.sqrt(max(sd**2 - noise_sd**2, 0.0))


def expected_max_normal(n: int) -> float:
    """E[max of n independent standard normals] (1.42 for n = 8), by quadrature: how far above the
    mean the best of n equally good candidates lies from noise alone, in sd."""
    x = np.linspace(-8, 8, 16001)
    return float(np.trapezoid(x * n * _st.norm.pdf(x) * _st.norm.cdf(x) ** (n - 1), x))


def paired_diff(a: Mapping[int, float], b: Mapping[int, float], resamples: int = 4000, seed: int = 0) -> dict[str, float]:
    """Mean of a - b over the seeds both have, with a 95% bootstrap interval over those seeds (a
    paired comparison: a seed's luck shared by both cancels)."""
    common = sorted(set(a) & set(b))
    d = np.array([a[s] - b[s] for s in common], float)
    if len(d) == 0:
        return {"diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    idx = np.random.default_rng(seed).integers(0, len(d), (resamples, len(d)))
    lo, hi = np.percentile(d[idx].mean(1), [2.5, 97.5])
    return {"diff": float(d.mean()), "lo": float(lo), "hi": float(hi), "n": len(d)}


def gap_to_median(a: Sequence[float], groups: Sequence[Sequence[float]], resamples: int = 4000, seed: int = 0) -> dict[str, float]:
    """mean(a) - median of the groups' means (one subnet's seeds vs a set of other subnets, each with
    its seeds), with a 95 % bootstrap interval that resamples a's seeds, the groups, and each drawn
    group's seeds: the interval holds both the pick's seed noise and which baselines were drawn."""
    a_arr = np.asarray(a, float)
    gs = [np.asarray(g, float) for g in groups if len(g)]
    if len(a_arr) == 0 or not gs:
        return {"diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    boot = np.empty(resamples)
    for k in range(resamples):
        pick = a_arr[rng.integers(0, len(a_arr), len(a_arr))].mean()
        means = [g[rng.integers(0, len(g), len(g))].mean() for g in (gs[i] for i in rng.integers(0, len(gs), len(gs)))]
        boot[k] = pick - np.median(means)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"diff": float(a_arr.mean() - np.median([g.mean() for g in gs])), "lo": float(lo), "hi": float(hi), "n": len(gs)}


def error_pct(estimate: float, measured: float) -> float:
    """Signed error of an estimate, in % of the measurement."""
    return 100.0 * (estimate - measured) / measured


def rank_corr(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman of two sequences; NaN for fewer than 3 pairs or a constant one (undefined)."""
    if len(a) < 3 or np.ptp(np.asarray(a, float)) == 0 or np.ptp(np.asarray(b, float)) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def accuracy(pred, true) -> dict[str, float]:
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
        "spearman": float("nan") if constant else float(_st.spearmanr(p, t).statistic),
        "kendall": float("nan") if constant else float(_st.kendalltau(p, t).statistic),
        "acc_5": float(np.mean(rel <= 0.05 + 1e-12)),
        "acc_10": float(np.mean(rel <= 0.10 + 1e-12)),
        "rmse_ms": float(np.sqrt(np.mean((p - t) ** 2))),
        "mape": float(np.mean(rel)),
    }
