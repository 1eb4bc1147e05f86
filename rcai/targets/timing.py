"""What a measurement is asked for (MeasureConfig) and what it returns (TimingStats): plain data,
below both the measurement loop (measure.py) and the target interface (base.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..config import JsonConfig
from ..errors import RcaiError

# A timer runs fn(arg) once and returns the elapsed milliseconds.
Timer = Callable[[Callable[[Any], object], Any], float]


@dataclass
class TimingStats(JsonConfig):
    """Latency statistics in milliseconds over `count` timed calls; cv = std / mean (ddof=0)."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    cv: float
    count: int


@dataclass(frozen=True)
class RoundsConfig(JsonConfig):
    """What every interleaved measurement shares (op tables and subnet datasets: cost.rounds.InterleaveConfig;
    whole loops: targets.loops.LoopConfig): `rounds` rounds, each visiting every item in a new random
    order drawn from `seed`; `warmup` untimed calls per item before the first round, `visit_warmup`
    before each visit. The subclasses add what is timed per visit and may set other defaults."""

    rounds: int = 6
    warmup: int = 1
    visit_warmup: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.warmup < 0 or self.visit_warmup < 0:
            raise RcaiError(f"{type(self).__name__}: rounds must be >= 1, warm-ups >= 0 "
                            f"(got rounds={self.rounds}, warmup={self.warmup}, visit_warmup={self.visit_warmup})")


@dataclass(frozen=True)
class MeasureConfig(JsonConfig):
    """How long to measure. `warmup` untimed calls, then timed calls in chunks of `chunk` until
    the median of all samples moves by < `rel_tol` (relative) from one chunk to the next and at
    least `min_repeats` samples exist; `max_repeats` samples or `max_seconds` of timed calls stop
    it early (the time cap wins over `min_repeats`, so a very slow model may get fewer samples:
    `count` says how many). Inputs cycle through `input_pool` random input sets."""

    warmup: int = 5
    min_repeats: int = 10
    max_repeats: int = 200
    rel_tol: float = 0.02
    chunk: int = 10
    input_pool: int = 4
    max_seconds: float = 10.0

    def __post_init__(self) -> None:
        bad = []
        if self.warmup < 0:
            bad.append("warmup < 0")
        if not 1 <= self.min_repeats <= self.max_repeats:
            bad.append("need 1 <= min_repeats <= max_repeats")
        if self.chunk < 1 or self.input_pool < 1:
            bad.append("chunk and input_pool must be >= 1")
        if self.rel_tol < 0 or self.max_seconds <= 0:
            bad.append("rel_tol must be >= 0 and max_seconds > 0")
        if bad:
            raise RcaiError(f"measure config: {'; '.join(bad)}")
