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


LOOP_KINDS = ("auto", "host", "device", "graph")  # where the sampler runs (see loop_kind)


def loop_kind(kind: str, prepared: Any) -> str:
    """host: the numpy sampler on the host, the network called per step (every target); device: the
    sampler's update and noise draws in torch on the model's device, the network per step (its own
    CUDA graph replayed on torch-cuda); graph: the whole T-step loop captured as one CUDA graph
    (torch-cuda). auto: device for targets that run torch, host for ONNX targets."""
    from ..errors import RcaiError

    if kind not in LOOP_KINDS:
        raise RcaiError(f"unknown loop {kind!r}; known: {', '.join(LOOP_KINDS)}")
    on_device = prepared is not None and prepared.device_runner() is not None
    if kind == "auto":
        return "device" if on_device else "host"
    if kind != "host" and not on_device:
        raise RcaiError(f"--loop {kind}: the sampler runs on the model's device only for torch targets (--device torch, torch-cuda, gpu)")
    if kind == "graph" and getattr(prepared.device, "type", "") != "cuda":
        raise RcaiError("--loop graph captures the whole loop as one CUDA graph: --device torch-cuda (or gpu) only")
    return kind


def make_loop(kind: str, prepared: Any, denoiser: Callable[..., np.ndarray] | None, lr_up: np.ndarray, schedule: NoiseSchedule,
              sampler: str, steps: int, seed: int = 0, eta: float = 0.0, clip_x0: bool = True, residual: float = 0.0,
              prediction: str = "eps", on_step: Callable | None = None) -> Callable[[], Any]:
    """A no-argument callable running one whole loop of the `loop_kind` kind, returning the
    SampleResult. host: `denoiser` (numpy; or one per step: a schedule) driven by rcai.diffusion.sample; device / graph: the
    prepared target's device_runner driven by rcai.diffusion.device_loop (graph: captured once here)."""
    kind = loop_kind(kind, prepared)
    if kind == "host":
        return lambda: sample(denoiser, lr_up, schedule, sampler=sampler, steps=steps, seed=seed, eta=eta, clip_x0=clip_x0,
                              step_callback=on_step, residual=residual, prediction=prediction)
    from ..diffusion.device_loop import DeviceLoop
    from ..diffusion.sampling import SampleResult

    loop = DeviceLoop(prepared.device_runner(capturable=kind == "graph"), lr_up, schedule, sampler, steps, seed, eta, clip_x0,
                      residual=residual, prediction=prediction, device=prepared.device, generator=kind != "graph")
    if kind == "device":
        return loop
    from ..targets.torch_cuda import capture_graph

    graph, out = capture_graph(loop.loop, prepared.device)

    def replay() -> Any:
        graph.replay()
        return SampleResult(image=out.cpu().numpy(), timesteps=np.asarray(loop.ts, np.int64))

    return replay


def loop_of(denoiser: Callable[..., np.ndarray], preset: Preset, sampler: str = "ddim", steps: int = LOOP_STEPS, batch: int = 1,
            seed: int = 0, prepared: Any = None, kind: str = "host") -> Callable[[], Any]:
    """One whole loop as `rcai bench` runs it by default (clip_x0, eta 0, the preset's residual and
    prediction) on a fixed random LR input; `kind`/`prepared` as make_loop."""
    schedule = NoiseSchedule(preset.schedule)
    lr_up = np.random.default_rng(seed).uniform(-1, 1, (batch, 3, preset.hr_size, preset.hr_size)).astype(np.float32)
    return make_loop(kind, prepared, denoiser, lr_up, schedule, sampler, min(steps, schedule.T), seed, 0.0, True, preset.residual, preset.prediction)


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


def sampler_loops(preset: Preset, steps: int = LOOP_STEPS, batch: int = 1, device: Any = None) -> dict[str, Callable[[], Any]]:
    """{SAMPLER + name: a loop of that sampler over a denoiser doing only the copies} for every
    registered sampler: on the host (host_copy_denoiser), or with `device` (a torch device) the
    device loop over a no-network runner (the copy into the network's input buffer, a zero output)."""
    hr = preset.hr_size
    if device is None:
        den = host_copy_denoiser((batch, 6, hr, hr), (batch, 1), (batch, 3, hr, hr))
        return {SAMPLER + name: loop_of(den, preset, name, sampler_steps(name, preset, steps), batch) for name in list_samplers()}
    runner = _CopyRunner(device, (batch, 6, hr, hr), (batch, 3, hr, hr))
    return {SAMPLER + name: loop_of(None, preset, name, sampler_steps(name, preset, steps), batch, prepared=runner, kind="device")
            for name in list_samplers()}


class _CopyRunner:
    """A 'prepared model' for the device loop that only copies its input into a buffer and returns zeros."""

    def __init__(self, device: Any, x_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        import torch

        self.device = torch.device(device)
        self.buf = torch.zeros(x_shape, device=self.device)
        self.out = torch.zeros(out_shape, device=self.device)

    def device_runner(self, capturable: bool = False) -> Callable[..., Any]:
        def run(x6: Any, level: Any) -> Any:
            self.buf.copy_(x6)
            return self.out

        return run


def measure_model_loops(target: Target, models: Mapping[str, SubnetSpec | str | Path], preset: Preset, cfg: LoopConfig = LoopConfig(),
                        steps: int = LOOP_STEPS, batch: int = 1, sampler: str = "ddim", workdir: str | Path | None = None,
                        kind: str = "auto") -> dict[str, LoopMeasurement]:
    """The loops of denoisers ({name: a subnet, or an ONNX path with weights}) and the sampler-only
    loops, measured together (interleaved rounds). A subnet is prepared as the target takes it
    (subnets.prepare_subnet: its ONNX export in `workdir`, or the torch module); an ONNX path needs
    an ONNX target. kind: where the sampler runs (loop_kind; auto: on the device for torch targets,
    as `rcai bench` runs them). Returns {name: LoopMeasurement}, the sampler loops under SAMPLER + name."""
    import tempfile

    from ..errors import RcaiError
    from .subnets import prepare_subnet

    loops: dict[str, Callable[[], Any]] = {}
    timers = {}
    device = None
    with tempfile.TemporaryDirectory(prefix="rcai-loops-") as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        for name, model in models.items():
            if isinstance(model, SubnetSpec):
                prepared = prepare_subnet(target, model, root / f"{_file_name(name)}.onnx", batch)
            elif not target.takes_onnx:
                raise RcaiError(f"{model}: {target.name} runs torch modules; give the subnet, not its ONNX file")
            else:
                prepared = target.prepare(str(model))
            loops[name] = loop_of(prepared_denoiser(prepared), preset, sampler, steps, batch, prepared=prepared, kind=kind)
            timers[name] = prepared.timer()
            device = prepared.device if loop_kind(kind, prepared) != "host" else None
        loops.update(sampler_loops(preset, steps, batch, device if models else _device_of(target, kind)))
        return measure_loops(loops, cfg, target.computes_on_calling_thread(), timers)


def _device_of(target: Target, kind: str) -> Any:
    """The torch device a torch target's loops run the sampler on (kind auto/device/graph), else None."""
    if target.takes_onnx or kind == "host":
        return None
    import torch

    return getattr(target, "device", None) or torch.device("cpu")


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def sampler_terms(res: Mapping[str, LoopMeasurement], preset: Preset, steps: int = LOOP_STEPS) -> dict[str, float]:
    """Per-step cost of each sampler (ms) from the sampler-only loops of a measurement."""
    return {name[len(SAMPLER):]: m.loop_ms / sampler_steps(name[len(SAMPLER):], preset, steps)
            for name, m in res.items() if name.startswith(SAMPLER)}
