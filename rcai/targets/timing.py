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
