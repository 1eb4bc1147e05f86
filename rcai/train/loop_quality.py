"""Loop quality: what the deployed sampling loop outputs on the held-out crops, K noise seeds each.

The primary metric (rcai/train/quality.py) reads the network's posterior mean E[hr | lr]; a user runs
the sampler. This runs the same loop the bench runs (rcai.diffusion.sample: one denoiser, or one per
step for a step-aware schedule) and reports, over the seeds:

- single samples: PSNR and SSIM (mean over crops), their mean and sd over the K seeds;
- the mean of the K samples: its PSNR (towards the posterior mean as K grows);
- consistency: the sample downscaled vs the LR input (PSNR), the downscaling antialiased bicubic,
  the operator that makes the built-in LR inputs from the HR crops (so the LR input is D(hr));

each beside bicubic (lr_up) and beside the ideal sampler: one exact posterior sample has twice the
posterior mean's squared error, so an ideal sampler sits 10·log10(2) = 3.01 dB below the posterior
mean's PSNR (`ideal_psnr`: the model's own posterior mean, the primary metric's reading, minus that).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..config import JsonConfig, require_counts
from ..diffusion import Denoiser, NoiseSchedule, sample
from ..metrics import psnr, ssim
from ..presets import Preset
from .quality import EvalSet, QualityConfig, eval_set, gain

IDEAL_GAP_DB = 10 * math.log10(2)  # one exact posterior sample vs the posterior mean


@dataclass(frozen=True)
class LoopQualityConfig(JsonConfig):
    seeds: int = 4  # K: samples per crop, noise seeds seed .. seed+K-1
    crops: int = 16  # held-out crops
    split: str = "eval"  # "eval": the held-out crops; "val": the validation crops (for a choice made on the metric)
    sampler: str = "ddim"
    steps: int = 10  # denoiser calls per loop
    eta: float = 0.0
    clip_x0: bool = True
    batch: int = 16  # crops per loop
    seed: int = 0


def downscale(x: torch.Tensor | np.ndarray, scale: int) -> torch.Tensor:
    """Antialiased bicubic downscaling by `scale` (what made the LR inputs from the HR crops)."""
    x = torch.as_tensor(np.asarray(x, np.float32)) if not isinstance(x, torch.Tensor) else x.float()
    return F.interpolate(x, scale_factor=1.0 / scale, mode="bicubic", antialias=True, align_corners=False)


def loop_samples(denoiser: Denoiser | Sequence[Denoiser], ev: EvalSet, preset: Preset, cfg: LoopQualityConfig) -> np.ndarray:
    """The loop's output for every crop and seed: float32 [K, N, 3, H, W] in [-1, 1]. Seed k's loop
    over the b-th batch of crops draws its noise from seed cfg.seed + k + 1000·b."""
    schedule = NoiseSchedule(preset.schedule)
    lr_up = ev.lr_up.numpy()
    out = np.empty((cfg.seeds, *lr_up.shape), np.float32)
    for k in range(cfg.seeds):
        for i in range(0, len(lr_up), cfg.batch):
            out[k, i:i + cfg.batch] = sample(denoiser, lr_up[i:i + cfg.batch], schedule, sampler=cfg.sampler, steps=cfg.steps,
                                             seed=cfg.seed + k + 1000 * (i // cfg.batch), eta=cfg.eta, clip_x0=cfg.clip_x0, residual=preset.residual,
                                             prediction=preset.prediction).image
    return out


def ideal_psnr(model: torch.nn.Module, preset: Preset, cfg: LoopQualityConfig, data_dir: str | None = None) -> float:
    """The ideal sampler's PSNR on the same crops: the posterior mean's (the primary metric's reading) - 3.01 dB."""
    ev = eval_set(preset, data_dir, crops=cfg.crops, split=cfg.split)
    return gain(model, ev, NoiseSchedule(preset.schedule), QualityConfig(crops=cfg.crops))["psnr"] - IDEAL_GAP_DB


def loop_quality(denoiser: Denoiser | Sequence[Denoiser], preset: Preset, cfg: LoopQualityConfig = LoopQualityConfig(),
                 ideal: float | None = None, data_dir: str | None = None) -> dict[str, Any]:
    """The figures of the module doc for `denoiser` (one, or one per step); `ideal`: ideal_psnr of
    the model (None: not reported)."""
    require_counts({"seeds": cfg.seeds, "crops": cfg.crops, "steps": cfg.steps, "batch": cfg.batch}, "loop quality ")
    ev = eval_set(preset, data_dir, crops=cfg.crops, split=cfg.split)
    scale = preset.hr_size // preset.lr_size
    samples = loop_samples(denoiser, ev, preset, cfg)
    lr = downscale(ev.hr, scale)  # the LR input
    per_seed = {"psnr": [psnr(s, ev.hr) for s in samples], "ssim": [ssim(s, ev.hr) for s in samples],
                "consistency": [psnr(downscale(s, scale), lr) for s in samples]}
    sd = (lambda v: float(np.std(v, ddof=1))) if cfg.seeds > 1 else (lambda v: 0.0)
    out: dict[str, Any] = {
        "sample_psnr": float(np.mean(per_seed["psnr"])), "sample_psnr_sd": sd(per_seed["psnr"]),
        "sample_ssim": float(np.mean(per_seed["ssim"])), "sample_ssim_sd": sd(per_seed["ssim"]),
        "mean_psnr": psnr(samples.mean(0), ev.hr),
        "consistency_psnr": float(np.mean(per_seed["consistency"])), "consistency_psnr_sd": sd(per_seed["consistency"]),
        "bicubic_psnr": psnr(ev.lr_up, ev.hr), "bicubic_ssim": ssim(ev.lr_up, ev.hr), "bicubic_consistency_psnr": psnr(downscale(ev.lr_up, scale), lr),
        "ideal_psnr": ideal, "per_seed": per_seed,
        "seeds": cfg.seeds, "crops": len(ev), "split": cfg.split, "sampler": cfg.sampler, "steps": cfg.steps, "eval_files": ev.files,
    }
    out["sample_vs_bicubic_db"] = out["sample_psnr"] - out["bicubic_psnr"]
    out["sample_vs_ideal_db"] = None if ideal is None else out["sample_psnr"] - ideal
    return out
