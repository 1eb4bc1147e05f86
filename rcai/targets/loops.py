"""Whole sampling loops measured one way everywhere (`rcai bench`, the pipeline's comparison, the
cost table's calibration, `rcai profile check` and the benchmarks).

    res = measure_loops({"base": loop_a, "subnet": loop_b}, LoopConfig())   # {name: LoopMeasurement}
    res["base"].loop_ms        # the figure to quote: median of all timed loops on the quoted clock

Each item is a no-argument callable running one whole loop. The loops go through the rounds engine
(`measure.interleave`): every round visits every item in a new random order and times `loops`
loops of it, so a slow phase of the machine or a neighbour taking a core hits all items alike.
Every loop is timed on two clocks at once: wall (the target's own timer: CUDA events or a
synchronised perf_counter on a GPU) and the CPU time of this process (time.process_time), with the
load average before and after.

Which figure to quote (LoopConfig.clock, "auto"): for a target that computes on the calling thread
(ONNX Runtime or torch on the CPU with one thread) the process's CPU time. On a shared machine a
one-thread loop's wall time is its CPU time divided by the share of a core it got, and that share
moves with the neighbours within tens of seconds (benchmarks/results/fidelity.md: at load 5 on 2
cores the same loop read 353 and 487 ms wall half a minute apart while its CPU time read 232 and
234 ms); on a machine that is not oversubscribed the two clocks agree. Anything that computes off
the calling thread (several threads, a GPU, another host) is quoted on the wall clock.
The statistic is the median over every timed loop of all rounds (a loop already sums 50 calls; the
median drops the loops a slow phase hit). The re-measurement is the same statistic over the first
half of the rounds against the second half (`remeasure_pct`): no estimate repeats better than that.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from ..config import JsonConfig
from ..errors import RcaiError
from .measure import estimate, half_split, interleave, perf_counter_timer
from .sysinfo import load_average
from .timing import RoundsConfig, Timer

LOOP_CLOCKS = ("auto", "wall", "cpu")
STATISTIC = "median"  # over all timed loops of all rounds


@dataclass(frozen=True)
class LoopConfig(RoundsConfig):
    """rounds x loops timed loops per item (the rounds, warm-ups and seed: RoundsConfig, shared with
    the op tables' InterleaveConfig); clock auto | wall | cpu (see the module doc)."""

    loops: int = 1
    clock: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loops < 1:
            raise RcaiError("loop measurement: loops must be >= 1")
        if self.clock not in LOOP_CLOCKS:
            raise RcaiError(f"unknown loop clock {self.clock!r}; known: {', '.join(LOOP_CLOCKS)}")


def loop_clock(clock: str, on_calling_thread: bool) -> str:
    """The clock a loop figure is quoted on: cpu where the work runs on the calling thread, else wall."""
    if clock not in LOOP_CLOCKS:
        raise RcaiError(f"unknown loop clock {clock!r}; known: {', '.join(LOOP_CLOCKS)}")
    if clock == "auto":
        return "cpu" if on_calling_thread else "wall"
    return clock


@dataclass
class ClockStats(JsonConfig):
    """One clock over all timed loops: the statistic (median), spread, and the two half-run figures."""

    value_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    half1_ms: float
    half2_ms: float
    remeasure_pct: float  # 100 * (half2 - half1) / value: the second half of the rounds vs the first

    @classmethod
    def of(cls, per_round: list[list[float]]) -> "ClockStats":
        a = np.asarray([t for r in per_round for t in r], dtype=np.float64)
        value = estimate(a, STATISTIC)
        h1, h2 = half_split(per_round, STATISTIC)
        return cls(value_ms=value, p10_ms=float(np.percentile(a, 10)), p90_ms=float(np.percentile(a, 90)), mean_ms=float(a.mean()),
                   half1_ms=h1, half2_ms=h2, remeasure_pct=100.0 * (h2 - h1) / value if value > 0 and np.isfinite(h1) else float("nan"))


@dataclass
class LoopMeasurement(JsonConfig):
    loop_ms: float  # the figure to quote: `statistic` over all timed loops on `clock`
    clock: str  # wall | cpu
    statistic: str
    wall: ClockStats
    cpu: ClockStats
    rounds: int
    loops_per_round: int
    wall_ms: list[list[float]] = field(default_factory=list)  # every timed loop, per round
    cpu_ms: list[list[float]] = field(default_factory=list)
    load_before: list[float] = field(default_factory=list)
    load_after: list[float] = field(default_factory=list)

    @property
    def quoted(self) -> ClockStats:
        return self.cpu if self.clock == "cpu" else self.wall

    @property
    def remeasure_pct(self) -> float:
        return self.quoted.remeasure_pct

    @property
    def cpu_share(self) -> float:
        """CPU time / wall time of the loops (1: never waited for a core; 0.5: half the time preempted)."""
        return self.cpu.value_ms / self.wall.value_ms if self.wall.value_ms > 0 else float("nan")

    def summary(self) -> str:
        other = self.wall if self.clock == "cpu" else self.cpu
        return (f"{self.loop_ms:.1f} ms ({self.statistic} of {self.rounds}x{self.loops_per_round} loops, {self.clock} clock; "
                f"re-measured {self.remeasure_pct:+.1f}%; {'wall' if self.clock == 'cpu' else 'cpu'} {other.value_ms:.1f} ms)")


def _timed(fn: Callable[[], object], timer: Timer) -> Callable[[], tuple[float, float]]:
    def one() -> tuple[float, float]:
        c0 = time.process_time_ns()
        wall = timer(lambda _: fn(), None)
        return wall, (time.process_time_ns() - c0) / 1e6

    return one


def measure_loops(
    loops: Mapping[str, Callable[[], object]], cfg: LoopConfig = LoopConfig(), on_calling_thread: bool = True,
    timers: Mapping[str, Timer] | None = None,
) -> dict[str, LoopMeasurement]:
    """Time each whole loop (a no-argument callable) as the module doc says. timers: per name, the
    target's own wall-clock timer (default perf_counter); on_calling_thread: whether every item
    computes on this thread (then clock auto quotes CPU time)."""
    if not loops:
        raise RcaiError("measure_loops: nothing to measure")
    clock = loop_clock(cfg.clock, on_calling_thread)
    timers = timers or {}
    items = {n: _timed(f, timers.get(n, perf_counter_timer)) for n, f in loops.items()}
    before = load_average()
    calls = interleave(items, cfg.rounds, cfg.loops, warmup=cfg.warmup, visit_warmup=cfg.visit_warmup, seed=cfg.seed)
    after = load_average()
    out = {}
    for name, rounds in calls.items():
        wall = [[w for w, _ in r] for r in rounds]
        cpu = [[c for _, c in r] for r in rounds]
        ws, cs = ClockStats.of(wall), ClockStats.of(cpu)
        out[name] = LoopMeasurement(loop_ms=(cs if clock == "cpu" else ws).value_ms, clock=clock, statistic=STATISTIC, wall=ws, cpu=cs,
                                    rounds=cfg.rounds, loops_per_round=cfg.loops, wall_ms=wall, cpu_ms=cpu, load_before=before, load_after=after)
    return out


def host_copy_denoiser(x_shape: tuple[int, ...], level_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Callable[..., np.ndarray]:
    """A denoiser that does only what the deployed one does on the host around the network: copy
    the inputs into bound buffers (PreparedDenoiser / the ONNX Runtime runner) and hand back an
    output buffer (zeros). A loop over it costs the sampler's own work per step: the update, noise
    draws, clipping, the concatenation and the host copies."""
    bx, bl, out = np.zeros(x_shape, np.float32), np.zeros(level_shape, np.float32), np.zeros(out_shape, np.float32)

    def den(x6: np.ndarray, level: np.ndarray) -> np.ndarray:
        np.copyto(bx, x6, casting="same_kind")
        np.copyto(bl, level, casting="same_kind")
        return out

    return den
