"""Whole sampling loops of subnets on a target, for the cost table (calibration, the sampler term)
and its check: the loop a user runs (`rcai bench`: every call, a new input each step, the
sampler's own work between calls), measured with the one loop measurement (rcai.targets.loops).

The sampler's own cost per step (the update, noise draws, clipping, the concatenation, the host
copies into the bound input buffers) is measured as a loop whose denoiser only does those copies
(targets.loops.host_copy_denoiser), once per registered sampler; it is the term `sampler_ms` of
every table estimate (TableCostModel), a constant per step, so the estimate stays additive.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..diffusion import list_samplers, sample
from ..diffusion.schedule import NoiseSchedule
from ..presets import Preset
from ..space.subnet import SubnetSpec
from ..targets import Target
from ..targets.loops import LoopConfig, LoopMeasurement, host_copy_denoiser, measure_loops

SAMPLER = "sampler:"  # prefix of the sampler-only loops
LOOP_STEPS = 50  # DDIM steps of the deployed loop (the pipeline's and bench's default)


def loop_of(denoiser: Callable[..., np.ndarray], preset: Preset, sampler: str = "ddim", steps: int = LOOP_STEPS, batch: int = 1,
            seed: int = 0) -> Callable[[], Any]:
    """One whole loop as `rcai bench` runs it by default (clip_x0, eta 0, the preset's residual and
    prediction) on a fixed random LR input."""
    schedule = NoiseSchedule(preset.schedule)
    lr_up = np.random.default_rng(seed).uniform(-1, 1, (batch, 3, preset.hr_size, preset.hr_size)).astype(np.float32)
    return lambda: sample(denoiser, lr_up, schedule, sampler=sampler, steps=min(steps, schedule.T), seed=seed, eta=0.0, clip_x0=True,
                          residual=preset.residual, prediction=preset.prediction)


def prepared_denoiser(prepared: Any) -> Callable[..., np.ndarray]:
    """A target's prepared denoiser as the loop drives it (buffers bound once: rcai.deploy.runtime.PreparedDenoiser)."""
    run = prepared.runner(copy_outputs=False)
    return lambda x6, level: run({"x": x6, "noise_level": level})[0]


def sampler_steps(name: str, preset: Preset, steps: int = LOOP_STEPS) -> int:
    """The steps a sampler's own loop is measured over: `steps` where the sampler takes them, else its
    default (DDPM: all T)."""
    from ..diffusion.samplers import get_sampler
    from ..errors import RcaiError

    schedule = NoiseSchedule(preset.schedule)
    steps = min(steps, schedule.T)
    try:
        get_sampler(name, schedule, steps=steps)
        return steps
    except RcaiError:
        return len(get_sampler(name, schedule).timesteps)


def sampler_loops(preset: Preset, steps: int = LOOP_STEPS, batch: int = 1) -> dict[str, Callable[[], Any]]:
    """{SAMPLER + name: a loop of that sampler over the host-copy denoiser} for every registered sampler."""
    hr = preset.hr_size
    den = host_copy_denoiser((batch, 6, hr, hr), (batch, 1), (batch, 3, hr, hr))
    return {SAMPLER + name: loop_of(den, preset, name, sampler_steps(name, preset, steps), batch) for name in list_samplers()}


def measure_model_loops(target: Target, models: Mapping[str, SubnetSpec | str | Path], preset: Preset, cfg: LoopConfig = LoopConfig(),
                        steps: int = LOOP_STEPS, batch: int = 1, sampler: str = "ddim", workdir: str | Path | None = None
                        ) -> dict[str, LoopMeasurement]:
    """The loops of denoisers ({name: a subnet, or an ONNX path with weights}) and the sampler-only
    loops, measured together (interleaved rounds). A subnet is prepared as the target takes it
    (subnets.prepare_subnet: its ONNX export in `workdir`, or the torch module); an ONNX path needs
    an ONNX target. Returns {name: LoopMeasurement}, the sampler loops under SAMPLER + name."""
    import tempfile

    from ..errors import RcaiError
    from .subnets import prepare_subnet

    loops: dict[str, Callable[[], Any]] = {}
    timers = {}
    with tempfile.TemporaryDirectory(prefix="rcai-loops-") as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        for name, model in models.items():
            if isinstance(model, SubnetSpec):
                prepared = prepare_subnet(target, model, root / f"{_file_name(name)}.onnx", batch)
            elif not target.takes_onnx:
                raise RcaiError(f"{model}: {target.name} runs torch modules; give the subnet, not its ONNX file")
            else:
                prepared = target.prepare(str(model))
            loops[name] = loop_of(prepared_denoiser(prepared), preset, sampler, steps, batch)
            timers[name] = prepared.timer()
        loops.update(sampler_loops(preset, steps, batch))
        return measure_loops(loops, cfg, target.computes_on_calling_thread(), timers)


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def sampler_terms(res: Mapping[str, LoopMeasurement], preset: Preset, steps: int = LOOP_STEPS) -> dict[str, float]:
    """Per-step cost of each sampler (ms) from the sampler-only loops of a measurement."""
    return {name[len(SAMPLER):]: m.loop_ms / sampler_steps(name[len(SAMPLER):], preset, steps)
            for name, m in res.items() if name.startswith(SAMPLER)}
