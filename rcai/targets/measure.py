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
    order (half_split with the median). With an odd number of rounds the middle round is in neither
    half. 0.03 means the second half of the run measured 3% away from the first half."""
    m = list(round_medians)
    if len(m) < 2:
        return float("nan")
    first, second = half_split([[x] for x in m], "median")
    overall = statistics.median(m)
    return abs(first - second) / overall if overall > 0 else 0.0


def interleaved_rounds(
    fns: Mapping[str, Callable[[], float | None] | Any], rounds: int, per_round: MeasureConfig, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Measure every candidate once per round with `interleave` (a new random order each round), so
    drift of the machine (clock, thermals, neighbours) hits all of them alike; one round's visit of a
    candidate is a converging MeasureConfig loop and yields its median.

    A candidate is a Prepared (measured with its own staging and timer, seed = round) or a
    no-argument callable (see measure_callable). Returns per name: median_ms (median of the
    per-round medians), per_round_medians (in round order) and repeatability (see above)."""
    if rounds < 1:
        raise RcaiError("interleaved_rounds: rounds must be >= 1")
    if not fns:
        raise RcaiError("interleaved_rounds: no candidates")
    visit = {name: 0 for name in fns}

    def item(name: str) -> Callable[[], float]:
        f = fns[name]

        def one() -> float:
            r, visit[name] = visit[name], visit[name] + 1
            stats = f.measure(per_round, seed=r) if hasattr(f, "measure") else measure_callable(f, per_round)
            return stats.median_ms

        return one

    calls = interleave({name: item(name) for name in fns}, rounds, 1, warmup=0, visit_warmup=0, seed=seed)
    medians = {name: [r[0] for r in rs] for name, rs in calls.items()}
    return {
        name: {"median_ms": statistics.median(m), "per_round_medians": m, "repeatability": repeatability(m)}
        for name, m in medians.items()
    }


# -- interleaved short bursts (what repeats on a shared VM: random order, short bursts, many rounds) ---

def _trimmed_low(a: np.ndarray) -> float:
    """Mean of the calls between the 5th and 25th percentiles: a low estimate less jumpy than the minimum."""
    lo, hi = np.percentile(a, [5, 25])
    sel = a[(a >= lo) & (a <= hi)]
    return float(sel.mean()) if sel.size else float(np.median(a))


# Estimators over all timed calls of an item (every round pooled). p10 is the default: see
# benchmarks/results/fidelity.md for how each repeats on this machine kind.
ESTIMATORS: dict[str, Callable[[np.ndarray], float]] = {
    "p10": lambda a: float(np.percentile(a, 10)),
    "median": lambda a: float(np.median(a)),
    "min": lambda a: float(a.min()),
    "trimmed_low": _trimmed_low,
}


def estimate(calls: Sequence[float] | np.ndarray, estimator: str = "p10") -> float:
    if estimator not in ESTIMATORS:
        raise RcaiError(f"unknown estimator {estimator!r}; known: {', '.join(ESTIMATORS)}")
    a = np.asarray(calls, dtype=np.float64).ravel()
    if a.size == 0:
        raise RcaiError("estimate: no timed calls")
    return ESTIMATORS[estimator](a)


def half_split(per_round: Sequence[Sequence[float]], estimator: str = "p10") -> tuple[float, float]:
    """The estimator over the calls of the first half of the rounds and over the second half (the
    middle round of an odd count in neither): two independent measurements taken at different times."""
    h = len(per_round) // 2
    if h < 1:
        return float("nan"), float("nan")
    first = [t for r in per_round[:h] for t in r]
    second = [t for r in per_round[len(per_round) - h :] for t in r]
    return estimate(first, estimator), estimate(second, estimator)


def round_visits(names: Sequence[str], rounds: int, seed: int, start: int = 0) -> list[list[str]]:
    """The visit order of every round from `start` on: all names, in a new random order each round
    (seeded by seed and round, so a resumed run repeats the order it would have had)."""
    import random

    out = []
    for r in range(start, rounds):
        order = list(names)
        random.Random(f"{seed}:{r}").shuffle(order)
        out.append(order)
    return out


def interleave(
    items: Mapping[str, Callable[[], Any]],
    rounds: int,
    burst: int | Mapping[str, int],
    warmup: int = 3,
    visit_warmup: int = 1,
    seed: int = 0,
    start: int = 0,
    on_round: Callable[[int, dict[str, list[float]]], None] | None = None,
) -> dict[str, list[list[Any]]]:
    """The one rounds engine (op tables, subnet datasets, whole loops, benchmarks): time every item in
    `rounds` rounds; each round visits all items in a new random order and times a burst of `burst`
    calls of each (after `visit_warmup` untimed ones; a mapping gives each name its own burst). An
    item is a no-argument callable that runs one call and returns its time in ms (see call_timer),
    or any record of it (a whole loop returns both clocks: rcai.targets.loops). Every item first gets
    `warmup` untimed calls. on_round(r, {name: calls}) is called after each round (to save it).
    Returns {name: [calls of round start, ..., calls of round rounds-1]}."""
    if not items:
        raise RcaiError("interleave: nothing to measure")
    bursts = {n: int(burst[n]) if isinstance(burst, Mapping) else int(burst) for n in items}
    if rounds < 1 or min(bursts.values()) < 1:
        raise RcaiError("interleave: rounds and burst must be >= 1")
    for f in items.values():
        for _ in range(warmup):
            f()
    out: dict[str, list[list[float]]] = {n: [] for n in items}
    for k, order in enumerate(round_visits(list(items), rounds, seed, start)):
        this: dict[str, list[float]] = {}
        for name in order:
            f = items[name]
            for _ in range(visit_warmup):
                f()
            this[name] = [f() for _ in range(bursts[name])]
        for name in items:
            out[name].append(this[name])
        if on_round is not None:
            on_round(start + k, this)
    return out


def thread_cpu_timer(fn: Callable[[Any], object], arg: Any) -> float:
    """CPU time of the calling thread during fn(arg), in ms (time.thread_time_ns). Time the thread
    spent preempted by other processes is not counted: on an oversubscribed machine this is what
    repeats. Only valid where the backend computes on the calling thread (ONNX Runtime with one
    intra-op thread)."""
    t0 = time.thread_time_ns()
    fn(arg)
    return (time.thread_time_ns() - t0) / 1e6


CLOCKS = ("auto", "wall", "thread_cpu")


def resolve_clock(clock: str, target: Any) -> str:
    """auto: thread_cpu where the target computes on the calling thread (a CPU target with one
    thread), the target's own wall-clock timer otherwise."""
    if clock not in CLOCKS:
        raise RcaiError(f"unknown clock {clock!r}; known: {', '.join(CLOCKS)}")
    single = target.computes_on_calling_thread()
    if clock == "thread_cpu" and not single:
        raise RcaiError("clock thread_cpu needs a CPU target with one thread (--device cpu --threads 1)")
    if clock == "auto":
        return "thread_cpu" if single else "wall"
    return clock


def call_timer(prepared: Prepared, pool: int = 4, seed: int = 0, clock: str = "wall") -> Callable[[], float]:
    """One timed call of a Prepared per invocation, cycling through a pool of staged random inputs;
    staging happens here, outside every timed call. clock wall: the Prepared's own timer;
    thread_cpu: see thread_cpu_timer."""
    from .inputs import make_input_pool

    staged = [prepared.stage(feeds) for feeds in make_input_pool(prepared.input_specs, pool, seed)]
    timer, fn = (thread_cpu_timer if clock == "thread_cpu" else prepared.timer()), prepared.execute
    k = [0]

    def call() -> float:
        k[0] += 1
        return timer(fn, staged[k[0] % len(staged)])

    return call


def drift(reference_rounds: Sequence[Sequence[float]], estimator: str = "p10") -> list[float]:
    """Speed factor of the machine per round: the reference kernel's estimate in that round over its
    estimate across all rounds (1.2 = that round ran 20% slow)."""
    overall = estimate([t for r in reference_rounds for t in r], estimator)
    return [estimate(r, estimator) / overall for r in reference_rounds]


class pinned:
    """Pin this thread (and threads it starts afterwards) to `n` CPUs of its current affinity set,
    where the OS allows it (os.sched_setaffinity: Linux); restores the old set on exit. `cpus` is
    the pinned set, or None when nothing was pinned."""

    def __init__(self, n: int | None, enabled: bool = True):
        self.n, self.enabled, self.cpus, self._old = n, enabled, None, None

    def __enter__(self) -> "pinned":
        import os

        if self.enabled and self.n and hasattr(os, "sched_setaffinity"):
            self._old = os.sched_getaffinity(0)
            if self.n < len(self._old):
                self.cpus = sorted(self._old)[-self.n :]
                try:
                    os.sched_setaffinity(0, self.cpus)
                except OSError:
                    self.cpus = None
        return self

    def __exit__(self, *exc) -> bool:
        import os

        if self.cpus is not None and self._old is not None:
            os.sched_setaffinity(0, self._old)
        return False
