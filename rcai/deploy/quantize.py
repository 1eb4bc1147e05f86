"""INT8 deployment of the denoiser: calibration inputs drawn the way the sampling loop draws them,
then ONNX Runtime static quantization (rcai/targets/quantize.py).

The calibration set: crops of the built-in photos' *training* split (never the held-out photos the
quality metric is read on), each super-resolved by the fp32 model's own DDIM loop (the sampler and
step count the bench runs); the denoiser's inputs (concat(lr_up, y_t), √ᾱ_t) are recorded at
`levels` steps spread evenly over the loop, from pure noise (the first step, where the quality
metric reads the posterior mean) to the last. So the activation ranges are those the deployed loop
meets, at every noise level, not those of N(0, 1) inputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import JsonConfig
from ..data.images import ImageFolderSR
from ..data.loaders import resolve_hr_dir
from ..diffusion import NoiseSchedule, TorchDenoiser, sample
from ..errors import RcaiError
from ..presets import Preset
from ..targets.quantize import QuantConfig, feeds_reader, quantize_file

DEFAULT_CALIBRATION = 64  # `rcai export --precision int8 --calibration N`


@dataclass(frozen=True)
class CalibrationConfig(JsonConfig):
    """`inputs` denoiser inputs (batch 1 each) = ceil(inputs / levels) training crops x `levels`
    recorded steps of their fp32 sampling loop (`sampler`, `steps`)."""

    inputs: int = DEFAULT_CALIBRATION
    levels: int = 8
    sampler: str = "ddim"
    steps: int = 50
    seed: int = 0
    split: str = "train"  # the photos' split the crops come from (the quality metric uses "eval")
    data_dir: str | None = None  # None: the built-in photos

    def __post_init__(self) -> None:
        if self.inputs < 1 or self.levels < 1 or self.steps < 1:
            raise RcaiError(f"--calibration must be >= 1 input (got {self.inputs}; levels {self.levels}, steps {self.steps})")
        if self.split == "eval":
            raise RcaiError("calibration: the eval split is the quality metric's held-out set; calibrate on train or val")


def calibration_crops(preset: Preset, n: int, cfg: CalibrationConfig) -> np.ndarray:
    """`n` lr_up crops [n,3,H,W] in [-1,1] of the calibration split (random aligned crops, seeded)."""
    ds = ImageFolderSR(resolve_hr_dir(cfg.data_dir), scale=preset.hr_size // preset.lr_size, hr_crop=preset.hr_size, split=cfg.split,
                       seed=cfg.seed, augment=False, patches_per_image=1 if cfg.split == "train" else n)  # train: random crops; else a grid
    return np.stack([ds[i % len(ds)]["lr_up"].numpy() for i in range(n)]).astype(np.float32)


def loop_calibration_feeds(module: torch.nn.Module, preset: Preset, cfg: CalibrationConfig = CalibrationConfig()) -> tuple[list[dict[str, np.ndarray]], dict[str, Any]]:
    """(feeds, description): `cfg.inputs` batch-1 input sets {x, noise_level} recorded from the fp32
    `module`'s sampling loops over calibration crops, and what they are (for the sidecar)."""
    schedule = NoiseSchedule(preset.schedule)
    steps = min(cfg.steps, schedule.T)
    levels = min(cfg.levels, steps)
    picks = set(np.linspace(0, steps - 1, levels).round().astype(int).tolist())
    crops = math.ceil(cfg.inputs / len(picks))
    lr_up = calibration_crops(preset, crops, cfg)
    recorded: list[tuple[np.ndarray, np.ndarray]] = []
    den = TorchDenoiser(module)
    calls = {"i": 0}

    def recording(x6: np.ndarray, level: np.ndarray) -> np.ndarray:
        if calls["i"] in picks:
            recorded.append((x6.copy(), level.copy()))
        calls["i"] += 1
        return den(x6, level)

    sample(recording, lr_up, schedule, sampler=cfg.sampler, steps=steps, seed=cfg.seed, eta=0.0, clip_x0=True,
           residual=preset.residual, prediction=preset.prediction)
    feeds = [{"x": x6[b : b + 1], "noise_level": lv[b : b + 1]} for x6, lv in recorded for b in range(len(x6))]
    # interleave the levels so that a cut at `inputs` keeps every level
    order = sorted(range(len(feeds)), key=lambda k: (k % crops, k // crops))
    feeds = [feeds[k] for k in order][: cfg.inputs]
    used = sorted({round(float(f["noise_level"][0, 0]), 4) for f in feeds})
    desc = {**cfg.to_dict(), "crops": crops, "recorded_steps": sorted(picks), "noise_levels": used,
            "source": f"built-in photos, {cfg.split} split" if cfg.data_dir is None else f"{cfg.data_dir}, {cfg.split} split",
            "how": f"inputs of the fp32 model's own {cfg.sampler} loop ({steps} steps, eta 0, seed {cfg.seed}) at the recorded steps"}
    return feeds, desc


def calibration_bytes(module: torch.nn.Module, preset: Preset, cfg: CalibrationConfig) -> float:
    """An estimate of the memory calibration takes: the recorded inputs, the fp32 loop run on all its
    crops at once, and ONNX Runtime's calibrator, which keeps every intermediate output of every input."""
    from ..onnx_export import denoiser_inputs

    acts = [0]
    hooks = [m.register_forward_hook(lambda m, i, o: acts.__setitem__(0, acts[0] + (o.numel() * o.element_size() if torch.is_tensor(o) else 0)))
             for m in module.modules() if not list(m.children())]
    try:
        with torch.inference_mode():
            module(*denoiser_inputs(preset, batch=1))
    finally:
        for h in hooks:
            h.remove()
    per_input = 4 * 7 * preset.hr_size**2 + acts[0]  # its x and noise level + the calibrator's copy of every activation
    return cfg.inputs * per_input + math.ceil(cfg.inputs / cfg.levels) * acts[0]


def quantize_denoiser(fp32_path: str | Path, out_path: str | Path, module: torch.nn.Module, preset: Preset,
                      calib: CalibrationConfig = CalibrationConfig(), qcfg: QuantConfig = QuantConfig()) -> dict[str, Any]:
    """Quantize the exported fp32 denoiser `fp32_path` (exported from `module`) into `out_path`,
    calibrated on its own sampling loop. Returns {"settings": ..., "calibration": ...} for the sidecar."""
    from ..memory import require_memory

    require_memory(calibration_bytes(module, preset, calib), f"int8 calibration on {calib.inputs} inputs",
                   f"use fewer (--calibration, default {DEFAULT_CALIBRATION})")
    feeds, desc = loop_calibration_feeds(module, preset, calib)
    settings = quantize_file(fp32_path, out_path, feeds_reader(feeds), qcfg)
    return {"settings": settings, "calibration": desc}


def held_out_feeds(module: torch.nn.Module, preset: Preset, n: int = 8, seed: int = 1) -> list[dict[str, np.ndarray]]:
    """Loop inputs of the validation split (another seed): what an INT8 export is verified on."""
    feeds, _ = loop_calibration_feeds(module, preset, CalibrationConfig(inputs=n, levels=min(n, 8), seed=seed, split="val"))
    return feeds
