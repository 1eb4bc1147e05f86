"""Whole sampling loops of several (model, device) candidates measured together with the one loop
measurement (rcai.targets.loops via bench.measure_engines: interleaved rounds, wall and process CPU
clocks, load beside): ONNX Runtime vs torch eager, base vs found subnet, ..."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..targets import TargetSpec
from ..targets.loops import LoopConfig
from .bench import BenchConfig, loop_fn, loop_row, measure_engines  # noqa: F401  (loop_fn: re-exported)
from ..threads import torch_threads
from .engines import Engine, build_engine
from .runtime import read_deployment

LOOPS = LoopConfig(rounds=6, loops=1)  # the comparison's default


def compare_loops(
    candidates: Mapping[str, tuple[str | Path, str | Engine]], cfg: BenchConfig, rounds: int = LOOPS.rounds, loops: LoopConfig | None = None,
) -> dict[str, dict[str, Any]]:
    """candidates: name -> (onnx path with sidecar, a --device value or a ready Engine). Returns per name
    (bench.loop_row): median_ms (the loop figure to quote), repeatability (|second half of the
    rounds - first half| / figure), per_round_medians, both clocks, the engine label and the whole
    LoopMeasurement ("loop"). torch runs with cfg.threads; each target gets cfg.threads where it has
    threads (a GPU target among CPU ones gets none: TargetSpec.with_threads). loops: the measurement (default LOOPS
    with `rounds` rounds, cfg.clock)."""
    loops = loops or LoopConfig(rounds=rounds, loops=LOOPS.loops, clock=cfg.clock)
    sides = {name: read_deployment(path, None)[0] for name, (path, _) in candidates.items()}  # each file read once
    with torch_threads(cfg.threads):
        engines = {
            name: eng if isinstance(eng, Engine) else build_engine(Path(path), sides[name], TargetSpec(device=eng, batch=cfg.batch).with_threads(cfg.threads),
                                                                   cfg.weights)
            for name, (path, eng) in candidates.items()
        }
        res = measure_engines({n: (engines[n], sides[n]) for n in candidates}, cfg, loops)
    return {name: loop_row(m, engines[name].label) for name, m in res.items()}
