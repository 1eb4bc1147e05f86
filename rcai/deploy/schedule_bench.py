"""`rcai bench OUT` of a deployed step-aware schedule (rcai/deploy/scheduled.py): the whole loop with
each step's own subnet, measured as one subnet's loop is (rcai/deploy/bench.py: the same sampler code,
one denoiser per step; rounds, both clocks, memory), with the cost models' estimate of the schedule
(the sum of its steps: rcai.cost.schedule) beside the measurement, the PSNR against the same schedule
run the other way (the torch subnets for ONNX targets) and, with --quality, the loop quality."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from ..cost.loops import make_loop
from ..errors import RcaiError
from ..space.step_schedule import StepSchedule
from ..targets import TargetSpec
from ..targets.loops import LoopConfig, measure_loops
from ..targets.measure import summarize
from .bench import BenchConfig, BenchResult, check_config, loop_quality_config, on_calling_thread, record_psnr, result_of, warm
from ..threads import torch_threads
from .engines import Engine, build_engine, reference_device
from .estimates import load_estimators, schedule_estimate_vs_measured
from .images import lr_input
from ..memory import PeakRss
from .quality import deployed_loop_quality
from .scheduled import ScheduledDeployment


def bench_schedule(folder: str | Path, cfg: BenchConfig = BenchConfig(), schedule: StepSchedule | None = None,
                   progress: Callable[[str], None] | None = None) -> BenchResult:
    """Measure the scheduled loop of the deployment `folder` (its own schedule, or `schedule` over its
    files) as `cfg` says. Refused in one line: a schedule naming a subnet the folder does not export,
    a --sample-steps the schedule was not built for, a loop on the device (the schedule runs on the host)."""
    check_config(cfg)
    say = progress or (lambda msg: None)
    dep = ScheduledDeployment.load(folder, schedule)
    sched = dep.schedule
    steps = sched.steps if cfg.steps is None else cfg.steps
    sched.require_steps(steps)
    if cfg.loop not in ("auto", "host"):
        raise RcaiError(f"--loop {cfg.loop}: a schedule's loop runs its sampler on the host (--loop host)")
    side = dep.sides[dep.first]
    preset = side.preset
    lr_up, image_desc = lr_input(cfg.image, preset.lr_size, preset.hr_size, cfg.batch, cfg.seed)
    cost_models = load_estimators({"table": cfg.table, "predictor": cfg.predictor}, side, cfg.target,
                                  force=cfg.force, sampler=cfg.sampler)
    import onnxruntime  # noqa: F401  loaded before the memory window, as bench_loop does

    step_ms: list[float] = []
    notes: list[str] = []
    with torch_threads(cfg.threads), PeakRss() as mem:
        say(f"preparing {len(dep.files)} subnets on --device {cfg.device}")
        engines = _engines(dep, cfg.target)
        first = engines[dep.first]
        for e in engines.values():
            warm(e, lr_up, cfg)
        say(f"{cfg.rounds} rounds x {cfg.loops} loop(s) of {steps} steps")
        loop = _loop(engines, dep, lr_up, cfg, steps, on_step=lambda i, t, s: step_ms.append(s * 1e3))
        lcfg = LoopConfig(rounds=cfg.rounds, loops=cfg.loops, clock=cfg.clock)
        timers = {"model": first.timer} if first.timer is not None else {}  # one target: every subnet's timer is alike
        m = measure_loops({"model": loop}, lcfg, on_calling_thread(engines), timers)["model"]
        del step_ms[: steps * lcfg.warmup]  # the untimed warm-up loop's steps
        image = _loop(engines, dep, lr_up, cfg, steps)().image
    stats = summarize(step_ms)
    res = result_of(m, stats, mem, cfg, steps, notes, model=str(dep.folder), engine=first.kind,
                    engine_label=f"{first.label}, {len(engines)} subnets", target=first.info,
                    precision=side.precision if first.kind == "onnx" else first.info["precision"], image=image_desc, has_sidecar=True,
                    subnet_hash=None, output=image, schedule=dep.summary())
    if cfg.psnr:
        _compare(res, dep, cfg, lr_up, steps, reference_device(first), say)
    if cfg.quality:
        say("loop quality (held-out crops)")
        res.loop_quality = deployed_loop_quality(sched.per_step(dep.files), preset, loop_quality_config(cfg, steps), cfg.threads)
    paths = {"table": cfg.table, "predictor": cfg.predictor}
    for name, model in cost_models.items():
        res.estimates[name] = schedule_estimate_vs_measured(model, sched, m.loop_ms, stats.median_ms, str(paths.get(name) or ""))
    return res


def _engines(dep: ScheduledDeployment, spec: TargetSpec) -> dict[str, Engine]:
    return {name: build_engine(path, dep.sides[name], spec) for name, path in dep.files.items()}


def _loop(engines: dict[str, Engine], dep: ScheduledDeployment, lr_up: np.ndarray, cfg: BenchConfig, steps: int,
          on_step: Callable | None = None) -> Callable:
    """One whole loop, each step calling its subnet's engine (the host loop: rcai.cost.loops.make_loop)."""
    denoisers = dep.schedule.per_step({n: e.denoiser for n, e in engines.items()})
    preset = dep.sides[dep.first].preset
    return make_loop("host", None, denoisers, lr_up, dep.sides[dep.first].noise_schedule(), cfg.sampler, steps, cfg.seed, cfg.eta,
                     cfg.clip_x0, preset.residual, preset.prediction, on_step)


def _compare(res: BenchResult, dep: ScheduledDeployment, cfg: BenchConfig, lr_up: np.ndarray, steps: int, other: str, say) -> None:
    """PSNR of the scheduled loop's image vs the same schedule run the other way (engines.reference_device)."""
    try:
        refs = _engines(dep, dataclasses.replace(cfg.target, device=other))
    except RcaiError as e:
        res.notes.append(f"no PSNR check: {e}")
        return
    say(f"reference loop ({refs[dep.first].label})")
    with torch_threads(cfg.threads):
        ref_image = _loop(refs, dep, lr_up, cfg, steps)().image
    record_psnr(res, ref_image, f"{refs[dep.first].label}, {len(refs)} subnets", dep.sides[dep.first].precision)
