"""The measurement loop shared by every target, and interleaved rounds for benchmarks."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import RcaiError
from .timing import MeasureConfig, Timer, TimingStats


def perf_counter_timer(fn: Callable[[Any], object], arg: Any) -> float:
    """Wall time of fn(arg) in ms (time.perf_counter_ns)."""
    t0 = time.perf_counter_ns()
    fn(arg)
    return (time.perf_counter_ns() - t0) / 1e6


def self_reporting_timer(fn: Callable[[Any], object], arg: Any) -> float:
    """Like perf_counter_timer, but a call that returns a number reports its own time in ms
    (e.g. measured with CUDA events); None means "use the wall time"."""
    t0 = time.perf_counter_ns()
    r = fn(arg)
    wall = (time.perf_counter_ns() - t0) / 1e6
    return float(r) if isinstance(r, (int, float)) and not isinstance(r, bool) else wall


def summarize(samples_ms: Sequence[float]) -> TimingStats:
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no samples")
    mean = float(a.mean())
    return TimingStats(
        median_ms=float(np.median(a)),
        p10_ms=float(np.percentile(a, 10)),
        p90_ms=float(np.percentile(a, 90)),
        mean_ms=mean,
        cv=float(a.std() / mean) if mean > 0 else 0.0,
        count=int(a.size),
    )


def measure_loop(
    fn: Callable[[Any], object], args: Sequence[Any], cfg: MeasureConfig, timer: Timer = perf_counter_timer
) -> TimingStats:
    """Time fn(args[i % len(args)]) as MeasureConfig describes; only the call itself is timed.

    Stops after a chunk when >= min_repeats samples exist and the median of all samples moved by
    <= rel_tol (relative to the previous chunk's median); or at max_repeats samples; or, checked
    after every sample, once the timed calls add up to max_seconds (warm-up also stops there)."""
    if not args:
        raise RcaiError("measure: no inputs to cycle through")
    n = len(args)
    budget_ms = cfg.max_seconds * 1e3
    spent = 0.0
    for i in range(cfg.warmup):
        spent += timer(fn, args[i % n])
        if spent >= budget_ms:
            break
    samples: list[float] = []
    spent, prev = 0.0, None
    k = cfg.warmup  # keep cycling the pool from where the warm-up left off
    while len(samples) < cfg.max_repeats:
        for _ in range(min(cfg.chunk, cfg.max_repeats - len(samples))):
            t = timer(fn, args[k % n])
            k += 1
            samples.append(t)
            spent += t
            if spent >= budget_ms:
                return summarize(samples)
        med = statistics.median(samples)
        if len(samples) >= cfg.min_repeats and prev is not None and abs(med - prev) <= cfg.rel_tol * prev:
            break
        prev = med
    return summarize(samples)


def measure_callable(fn: Callable[[], float | None], cfg: MeasureConfig) -> TimingStats:
    """measure_loop for a no-argument callable that may report its own time (see self_reporting_timer)."""
    return measure_loop(lambda _: fn(), [None], cfg, timer=self_reporting_timer)


def repeatability(round_medians: Sequence[float]) -> float:
    """|median(first half) - median(second half)| / median(all), over the per-round medians in
    order. With an odd number of rounds the middle round is in neither half. 0.03 means the
    second half of the run measured 3% away from the first half."""
    m = list(round_medians)
    if len(m) < 2:
        return float("nan")
    h = len(m) // 2
    first, second = statistics.median(m[:h]), statistics.median(m[len(m) - h :])
    overall = statistics.median(m)
    return abs(first - second) / overall if overall > 0 else 0.0


def interleaved_rounds(
    fns: Mapping[str, Callable[[], float | None] | Any], rounds: int, per_round: MeasureConfig
) -> dict[str, dict[str, Any]]:
    """Measure every candidate once per round, alternating candidates (order rotates each round),
    so drift of the machine (clock, thermals, neighbours) hits all of them alike.

    A candidate is a Prepared (measured with its own staging and timer, seed = round) or a
    no-argument callable (see measure_callable). Returns per name: median_ms (median of the
    per-round medians), per_round_medians (in round order) and repeatability (see above)."""
    if rounds < 1:
        raise RcaiError("interleaved_rounds: rounds must be >= 1")
    if not fns:
        raise RcaiError("interleaved_rounds: no candidates")
    names = list(fns)
    medians: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            f = fns[name]
            stats = f.measure(per_round, seed=r) if hasattr(f, "measure") else measure_callable(f, per_round)
            medians[name].append(stats.median_ms)
    return {
        name: {"median_ms": statistics.median(m), "per_round_medians": m, "repeatability": repeatability(m)}
        for name, m in medians.items()
    }
