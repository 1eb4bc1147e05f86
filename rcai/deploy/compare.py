"""Whole sampling loops of several (model, engine) candidates measured in interleaved rounds, so
machine drift hits all alike: ONNX Runtime vs torch eager, base vs found subnet, ..."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from ..diffusion import sample
from ..targets import MeasureConfig, interleaved_rounds
from .bench import BenchConfig
from .engines import Engine, build_engine, torch_threads
from .images import lr_input
from .runtime import default_steps, read_deployment
from .sidecar import DeploySidecar

# One round = one untimed loop, then the median of `min_repeats` timed loops.
PER_ROUND = MeasureConfig(warmup=1, min_repeats=3, max_repeats=3, chunk=3, rel_tol=0.0, input_pool=1, max_seconds=600.0)


def loop_fn(engine: Engine, side: DeploySidecar, cfg: BenchConfig) -> Callable[[], None]:
    """A no-argument callable running one whole sampling loop of `engine` (deployed with `side`) as `cfg` says."""
    schedule = side.noise_schedule()
    steps = default_steps(cfg.sampler, schedule.T) if cfg.steps is None else cfg.steps
    lr_up, _ = lr_input(cfg.image, side.preset.lr_size, side.preset.hr_size, cfg.batch, cfg.seed)

    def run() -> None:
        sample(engine.denoiser, lr_up, schedule, sampler=cfg.sampler, steps=steps, seed=cfg.seed, eta=cfg.eta, clip_x0=cfg.clip_x0, residual=side.preset.residual, prediction=side.preset.prediction)

    return run


def compare_loops(
    candidates: Mapping[str, tuple[str | Path, str | Engine]], cfg: BenchConfig, rounds: int = 5, per_round: MeasureConfig = PER_ROUND
) -> dict[str, dict[str, Any]]:
    """candidates: name -> (onnx path with sidecar, engine name or a ready Engine). Returns per name
    what `interleaved_rounds` returns (median_ms of the whole loop = median of per-round medians,
    per_round_medians, repeatability) plus the engine label. torch runs with cfg.threads."""
    sides = {name: read_deployment(path, None)[0] for name, (path, _) in candidates.items()}  # each file read once
    with torch_threads(cfg.threads):
        engines = {
            name: eng if isinstance(eng, Engine) else build_engine(eng, Path(path), sides[name], cfg.batch, cfg.device, cfg.threads, cfg.weights)
            for name, (path, eng) in candidates.items()
        }
        fns = {name: loop_fn(engines[name], sides[name], cfg) for name in candidates}
        res = interleaved_rounds(fns, rounds=rounds, per_round=per_round)
    for name, r in res.items():
        r["engine"] = engines[name].label
    return res
