"""The deployed model: an ONNX denoiser prepared on a target, driven by the numpy sampling loop whose
schedule comes from the sidecar alone (no Python model code)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..diffusion import NoiseSchedule, SampleResult, sample
from ..diffusion.sampling import StepCallback
from ..errors import RcaiError
from ..presets import Preset
from ..targets import Prepared, Target, TargetSpec, resolve_device
from .onnxfile import check_io, load_onnx
from .sidecar import DeploySidecar, sidecar_from_preset, sidecar_path

DEFAULT_STEPS = {"ddim": 50}  # samplers not listed default to all T steps


def default_steps(sampler: str, T: int) -> int:
    return min(DEFAULT_STEPS.get(sampler, T), T)


class PreparedDenoiser:
    """Any target's prepared model as a denoiser (x6, noise_level) -> eps, through the target's
    runner (buffers bound once where the target can). The returned array may be reused by the
    next call (copy_output=True returns a copy)."""

    def __init__(self, prepared: Prepared, copy_output: bool = False):
        self.prepared = prepared
        self.run = prepared.runner(copy_outputs=copy_output)

    def __call__(self, x6: np.ndarray, noise_level: np.ndarray) -> np.ndarray:
        return self.run({"x": x6, "noise_level": noise_level})[0]


def make_denoiser(prepared: Prepared) -> PreparedDenoiser:
    return PreparedDenoiser(prepared)


def read_deployment(onnx_path: str | Path, preset: Preset | None = None) -> tuple[DeploySidecar, bool]:
    """(sidecar, has_sidecar) for `onnx_path`, after checking the file is ONNX and its inputs match.
    Without a sidecar file, `preset` must be given and stands in for it (its schedule and I/O)."""
    model = load_onnx(onnx_path)
    side_file = sidecar_path(onnx_path)
    if side_file.is_file():
        side = DeploySidecar.load(side_file)
        check_io(model, side.inputs, onnx_path, f"the sidecar {side_file.name}")
        return side, True
    if preset is None:
        raise RcaiError(f"{onnx_path}: sidecar {side_file.name} not found; pass --preset and --sample-steps")
    side = sidecar_from_preset(preset)
    check_io(model, side.inputs, onnx_path, f"preset {preset.name!r}")
    return side, False


@dataclass
class DeployedModel:
    path: Path
    sidecar: DeploySidecar
    has_sidecar: bool
    target: Target
    prepared: Prepared
    denoiser: Any
    batch: int

    @classmethod
    def load(
        cls, onnx_path: str | Path, target: Target | None = None, batch: int = 1, preset: Preset | None = None, threads: int | None = None,
        deployment: tuple[DeploySidecar, bool] | None = None,
    ) -> "DeployedModel":
        """Prepare `onnx_path` for batch `batch` on `target` (default: ONNX Runtime CPU with
        `threads`). The sidecar `<onnx_path>.json` gives the schedule; if it is missing, `preset` must.
        deployment: what read_deployment already returned for this file (not read again)."""
        if batch < 1:
            raise RcaiError(f"batch must be >= 1, got {batch}")
        side, has = deployment or read_deployment(onnx_path, preset)
        if target is None:
            target = resolve_device(TargetSpec(device="cpu", threads=threads or None))
        specs = {t.name: (t.concrete(batch), t.dtype) for t in side.inputs}
        prepared = target.prepare(str(onnx_path), specs)
        return cls(Path(onnx_path), side, has, target, prepared, make_denoiser(prepared), batch)

    @property
    def preset(self) -> Preset:
        return self.sidecar.preset

    @property
    def schedule(self) -> NoiseSchedule:
        return self.sidecar.noise_schedule()

    @property
    def precision(self) -> str:
        return self.sidecar.precision

    def lr_shape(self) -> tuple[int, int, int, int]:
        shape = self.sidecar.input("x").concrete(self.batch)
        return (self.batch, 3, shape[2], shape[3])

    def sample(
        self,
        lr_up: np.ndarray,
        sampler: str = "ddim",
        steps: int | None = None,
        seed: int = 0,
        eta: float = 0.0,
        clip_x0: bool = True,
        step_callback: StepCallback | None = None,
        progress: bool = False,
    ) -> SampleResult:
        """Super-resolve `lr_up` ([B,3,H,W] in [-1,1], bicubic-upsampled LR) with the numpy sampler
        loop; steps default: T for ddpm, 50 for ddim."""
        if tuple(lr_up.shape) != self.lr_shape():
            raise RcaiError(f"lr_up has shape {tuple(lr_up.shape)}, this model was prepared for {self.lr_shape()}")
        schedule = self.schedule
        steps = default_steps(sampler, schedule.T) if steps is None else steps
        return sample(self.denoiser, lr_up, schedule, sampler=sampler, steps=steps, seed=seed, eta=eta, clip_x0=clip_x0, step_callback=step_callback, progress=progress,
                      residual=self.sidecar.preset.residual, prediction=self.sidecar.preset.prediction)
