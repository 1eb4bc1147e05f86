"""The interleaved rounds a cost table and a latency dataset are measured in (`rcai profile`,
`rcai profile --archs`): many short rounds, each visiting every item (ops, the reference kernel,
the overhead model, whole subnets) in a new random order with a short burst of calls
(rcai.targets.measure.interleave). Every finished round is appended to a `.rounds.csv`, so a killed
run continues after its last complete round; the reference kernel's speed per round is the run's
drift; an item's statistics come from all its calls.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import RcaiError
from ..io import append_line, atomic_write_text
from ..onnx_export import export_onnx
from ..targets import Target
from ..targets.timing import RoundsConfig
from ..targets.measure import CLOCKS, ESTIMATORS, call_timer, drift, estimate, half_split, interleave, resolve_clock

REFERENCE = "__reference__"  # the kernel timed in every round: the machine's speed per round
OVERHEAD = "__overhead__"  # the overhead model (rcai/targets/overhead.py): the per-call overhead
NET = "net:"  # prefix of whole subnets timed in the same rounds (calibration, checks)


@dataclass(frozen=True)
class InterleaveConfig(RoundsConfig):
    """Many short interleaved rounds (see the module doc). rounds x burst timed calls per op,
    rounds x net_burst per whole subnet; `warmup` untimed calls per item before the first round and
    `visit_warmup` before every burst. estimator: p10 | median (tables), also min | trimmed_low for
    datasets. correct_drift divides each round's calls by the reference kernel's speed that round.
    pin: pin the process to `threads` CPUs where the OS allows (os.sched_setaffinity).
    clock: auto | wall | thread_cpu (targets/measure.py resolve_clock: auto = the calling thread's
    CPU time for ONNX Runtime with one thread, which a neighbour's preemption does not inflate).
    The rounds, warm-ups and seed are RoundsConfig's (shared with the whole loops' LoopConfig)."""

    rounds: int = 16
    burst: int = 16
    net_burst: int = 6
    warmup: int = 3
    visit_warmup: int = 1
    estimator: str = "p10"
    correct_drift: bool = False
    pin: bool = True
    input_pool: int = 4
    seed: int = 0  # RoundsConfig's, restated: the CLI reads the defaults off this class body (cli/defaults.py)
    clock: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.burst < 1 or self.net_burst < 1:
            raise RcaiError("interleave config: burst and net_burst must be >= 1")
        if self.estimator not in ESTIMATORS:
            raise RcaiError(f"unknown estimator {self.estimator!r}; known: {', '.join(ESTIMATORS)}")
        if self.clock not in CLOCKS:
            raise RcaiError(f"unknown clock {self.clock!r}; known: {', '.join(CLOCKS)}")


class _Reference(torch.nn.Module):
    """The reference kernel: a fixed 3x3 convolution (32 channels, 32x32), about 0.1-0.3 ms on a CPU
    core; its speed in each round tells a slow phase of the machine from a slow op."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(32, 32, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def export_reference(workdir: Path) -> Path:
    return export_onnx(_Reference().eval(), [torch.randn(1, 32, 32, 32)], ["x"], workdir / "reference.onnx")


def read_rounds(path: Path, items: list[str]) -> list[dict[str, list[float]]]:
    """The complete rounds of a `.rounds.csv` (round,item,calls), in order; a round cut by a kill
    (an item missing, a partial last line) and everything after it are dropped."""
    if not path.exists():
        return []
    text = path.read_text()
    text = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    by_round: dict[int, dict[str, list[float]]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("item") not in items:
            raise RcaiError(f"{path}: has item {row.get('item')!r} this run does not measure; use another --out")
        by_round.setdefault(int(row["round"]), {})[row["item"]] = [float(x) for x in row["calls"].split("|")]
    out = []
    for r in range(len(by_round)):
        if r not in by_round or set(by_round[r]) != set(items):
            break
        out.append(by_round[r])
    return out


def _round_lines(r: int, calls: dict[str, list[float]], names: list[str]) -> str:
    return "".join(f"{r},{n},{'|'.join(f'{t:.5g}' for t in calls[n])}\n" for n in names)


def measure_interleaved(
    target: Target,
    models: dict[str, Path],
    icfg: InterleaveConfig,
    raw_path: Path | None = None,
    advance: Callable[..., None] = lambda status="": None,
) -> dict[str, list[list[float]]]:
    """Time the ONNX `models` ({name: path}; names starting with NET get net_burst calls a visit)
    plus the reference kernel (REFERENCE) in icfg.rounds interleaved rounds. Finished rounds are
    appended to raw_path and a rerun continues after the last complete one.
    Returns {name: [calls of round 0, ...]} including REFERENCE."""
    models = dict(models)
    if REFERENCE not in models:
        models[REFERENCE] = export_reference(Path(next(iter(models.values()))).parent)
    names = list(models)
    done = read_rounds(raw_path, names) if raw_path else []
    if raw_path is not None:  # keep only the complete rounds: a round cut by a kill is measured again
        atomic_write_text(raw_path, "round,item,calls\n" + "".join(_round_lines(r, c, names) for r, c in enumerate(done)))
    for _ in done:
        advance("resumed")
    calls = {n: [r[n] for r in done] for n in names}
    if len(done) >= icfg.rounds:
        return calls
    clock = resolve_clock(icfg.clock, target)
    items = {n: call_timer(target.prepare(p), icfg.input_pool, seed=i, clock=clock) for i, (n, p) in enumerate(models.items())}
    bursts = {n: icfg.net_burst if n.startswith(NET) else icfg.burst for n in names}

    def save(r: int, this: dict[str, list[float]]) -> None:
        if raw_path is not None:
            append_line(raw_path, _round_lines(r, this, names))
        advance(f"round {r + 1}/{icfg.rounds}")

    new = interleave(items, icfg.rounds, bursts, icfg.warmup, icfg.visit_warmup, seed=icfg.seed, start=len(done), on_round=save)
    return {n: calls[n] + new[n] for n in names}


def corrected(calls: dict[str, list[list[float]]], icfg: InterleaveConfig) -> tuple[dict[str, list[list[float]]], list[float]]:
    """(calls, per-round speed factors of the reference); calls divided by the factors when
    icfg.correct_drift."""
    factors = drift(calls[REFERENCE], icfg.estimator)
    if not icfg.correct_drift:
        return calls, factors
    return {n: [[t / f for t in r] for r, f in zip(rounds, factors)] for n, rounds in calls.items()}, factors


def call_stats(rounds: list[list[float]], estimator: str) -> dict[str, Any]:
    """Table statistics over all calls of an item, its estimate, and its two half-run estimates."""
    a = np.asarray([t for r in rounds for t in r], dtype=np.float64)
    h1, h2 = half_split(rounds, estimator)
    value = estimate(a, estimator)
    return {
        "median_ms": float(np.median(a)), "p10_ms": float(np.percentile(a, 10)), "p90_ms": float(np.percentile(a, 90)),
        "cv": float(a.std() / a.mean()) if a.mean() > 0 else 0.0, "count": int(a.size),
        "value_ms": value, "half1_ms": h1, "half2_ms": h2, "half_split": abs(h1 - h2) / value if value > 0 else 0.0,
    }


def drift_summary(factors: list[float]) -> dict[str, Any]:
    f = np.asarray(factors)
    return {"per_round": [round(float(x), 4) for x in f], "min": float(f.min()), "max": float(f.max()),
            "spread": float(np.percentile(f, 90) / np.percentile(f, 10) - 1)}
