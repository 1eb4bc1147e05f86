"""The primary quality metric: what a network learned, measured in seconds on a fixed evaluation set.

Sampled PSNR cannot rank networks trained for minutes: one sample from even a perfect posterior has
twice the squared error of the posterior mean, so every such model samples below bicubic, and a model
that emits less noise scores higher. Instead we read off the network's estimate of E[hr | lr]:

- v-prediction (tiny): the output at pure noise (γ = 0) is −x0, a direct regression of the residual
  from the LR image; averaged over `draws` fixed noise inputs. An untrained network (its head starts
  at zero) predicts a zero residual, i.e. bicubic, and scores exactly 0.
- ε-prediction (the report's SR3 form): the mean of `draws` deterministic DDIM samples (η = 0).

`gain_db` = 10·log10(MSE of bicubic / MSE of the posterior mean), MSE pooled over the held-out crops
(a zero residual, i.e. bicubic, scores exactly 0); `gain_lo`/`gain_hi` its 95% bootstrap interval over
crops (`gain_ci95` the half-width).
`denoise_mse` (lower is better) is the x0 error of the denoising objective on a fixed grid of noise
levels with fixed noise, a second view that does not depend on the posterior-mean reading.
Everything is seeded, so the same weights give the same figures.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from ..config import JsonConfig
from ..data.files import list_images, split_files
from ..data.images import ImageFolderSR
from ..data.loaders import resolve_hr_dir
from ..diffusion import NoiseSchedule, TorchDenoiser, q_sample, sample
from ..diffusion.parametrisation import chain_to_image, chain_x0, to_x0
from ..metrics import psnr_per_image
from ..presets import Preset
from .device import module_device


@dataclass(frozen=True)
class QualityConfig(JsonConfig):
    crops: int = 64  # held-out crops (16 per held-out photo of the built-in set)
    draws: int = 4  # fixed noise draws averaged into the posterior mean
    grid: int = 8  # noise levels of the denoising objective
    seed: int = 0  # noise seed (the crops do not depend on any seed)
    ddim_steps: int = 10  # ε-prediction presets: steps of each deterministic sample
    batch: int = 32


@dataclass
class EvalSet:
    """Fixed crops of the held-out photos: lr_up and hr, float32 [N,3,H,W] in [-1,1]."""

    lr_up: torch.Tensor
    hr: torch.Tensor
    files: list[str]

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"lr_up": self.lr_up[i], "hr": self.hr[i]}


def eval_set(preset: Preset, data_dir: str | None = None, crops: int = QualityConfig.crops, split: str = "eval") -> EvalSet:
    """The held-out evaluation crops of `data_dir` (None: the built-in photos), independent of seeds;
    decoded once per process. `split="val"`: the same number of crops of the validation photos, for
    a choice made on the metric (a search) that the held-out crops must not see."""
    return _eval_set(str(resolve_hr_dir(data_dir)), preset.hr_size // preset.lr_size, preset.hr_size, crops, split)


@lru_cache(maxsize=4)
def _eval_set(hr_dir: str, scale: int, hr_size: int, crops: int, split: str = "eval") -> EvalSet:
    per_image = math.ceil(crops / len(split_files(list_images(hr_dir), split, (0.8, 0.1, 0.1), 0)))
    ds = ImageFolderSR(hr_dir, scale=scale, hr_crop=hr_size, split=split, augment=False, patches_per_image=per_image)
    picks = np.linspace(0, len(ds) - 1, min(crops, len(ds))).round().astype(int)
    items = [ds[int(i)] for i in picks]
    return EvalSet(torch.stack([it["lr_up"] for it in items]), torch.stack([it["hr"] for it in items]), [str(f.name) for f in ds.files])


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


@torch.no_grad()
def posterior_mean(model: torch.nn.Module, ev: EvalSet, schedule: NoiseSchedule, cfg: QualityConfig) -> torch.Tensor:
    """The network's estimate of E[hr | lr] for every crop (image space, clipped to [-1, 1])."""
    preset: Preset = model.preset
    if preset.prediction != "v":
        acc = np.zeros(tuple(ev.hr.shape), np.float64)
        for d in range(cfg.draws):
            out = sample(TorchDenoiser(model, module_device(model)), ev.lr_up.numpy(), schedule, sampler="ddim", steps=cfg.ddim_steps, seed=cfg.seed + d, eta=0.0,
                         clip_x0=True, residual=preset.residual, prediction=preset.prediction)
            acc += out.image
        return torch.from_numpy(acc / cfg.draws).float()
    # Pure noise, γ = 0: x0 = −v exactly (the limit of the trained levels, √ᾱ_T = 0.007 for tiny).
    level = torch.zeros(1, 1)
    gen = torch.Generator().manual_seed(cfg.seed)  # noise drawn on the CPU: the same inputs on every device
    dev = module_device(model)
    x0 = torch.zeros_like(ev.hr)
    for _ in range(cfg.draws):
        y = torch.randn(ev.hr.shape, generator=gen)
        for s in _batches(len(ev), cfg.batch):
            lv, ys = level.expand(y[s].shape[0], 1).to(dev), y[s].to(dev)
            x0[s] += to_x0("v", model(torch.cat([ev.lr_up[s].to(dev), ys], 1), lv), ys, lv).cpu()
    return chain_to_image((x0 / cfg.draws).clamp(-1.0, 1.0), ev.lr_up, preset.residual).clamp(-1.0, 1.0)


@torch.no_grad()
def denoise_mse(model: torch.nn.Module, ev: EvalSet, schedule: NoiseSchedule, cfg: QualityConfig) -> float:
    """Mean squared x0 error (the chain's space) over a fixed grid of noise levels and fixed noise."""
    preset: Preset = model.preset
    x0 = chain_x0(ev.hr, ev.lr_up, preset.residual)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    dev = module_device(model)
    total = 0.0
    for k in range(cfg.grid):
        t = max(1, round(schedule.T * (k + 0.5) / cfg.grid))
        gamma = torch.full((len(ev),), schedule.alpha_bar(t), dtype=torch.float64)
        eps = torch.randn(ev.hr.shape, generator=gen)
        y = q_sample(x0, gamma, eps)
        for s in _batches(len(ev), cfg.batch):
            lv, ys = gamma[s].sqrt().float().view(-1, 1).to(dev), y[s].to(dev)
            est = to_x0(preset.prediction, model(torch.cat([ev.lr_up[s].to(dev), ys], 1), lv), ys, lv).clamp(-1.0, 1.0).cpu()
            total += float(((est - x0[s]) ** 2).mean(dim=(1, 2, 3)).sum())
    return total / (cfg.grid * len(ev))


def gain_stats(mse_model: np.ndarray, mse_bicubic: np.ndarray, seed: int = 0, resamples: int = 2000) -> dict[str, float]:
    """Gain over bicubic of the pooled MSE, 10·log10(Σ mse_bicubic / Σ mse_model), and its 95% bootstrap
    interval over crops. Pooling weighs crops by their error, as the eye does: a flat crop where bicubic
    is already at 45 dB cannot swing the mean by itself, as a mean of per-crop dB would let it."""
    gain = float(10 * np.log10(mse_bicubic.sum() / mse_model.sum()))
    idx = np.random.default_rng(seed).integers(0, len(mse_model), (resamples, len(mse_model)))
    boot = 10 * np.log10(mse_bicubic[idx].sum(1) / mse_model[idx].sum(1))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"gain_db": gain, "gain_lo": float(lo), "gain_hi": float(hi), "gain_ci95": float(hi - lo) / 2}


def quality(model: torch.nn.Module, ev: EvalSet, schedule: NoiseSchedule, cfg: QualityConfig = QualityConfig()) -> dict[str, Any]:
    """The primary metric (`gain_db`, higher is better) and its companions; see the module docstring."""
    out = gain(model, ev, schedule, cfg)
    was_training = model.training
    model.eval()
    try:
        mse = denoise_mse(model, ev, schedule, cfg)
    finally:
        model.train(was_training)
    first = ("gain_db", "gain_lo", "gain_hi", "gain_ci95", "psnr", "bicubic_psnr")  # the figures' order as they were always written
    return {**{k: out[k] for k in first}, "denoise_mse": mse, **{k: v for k, v in out.items() if k not in first}}


def gain(model: torch.nn.Module, ev: EvalSet, schedule: NoiseSchedule, cfg: QualityConfig = QualityConfig()) -> dict[str, Any]:
    """The primary metric alone (no `denoise_mse`): what a search reads for each of many subnets."""
    was_training = model.training
    model.eval()
    try:
        mean = posterior_mean(model, ev, schedule, cfg)
    finally:
        model.train(was_training)
    mse_model = ((mean - ev.hr) ** 2).mean(dim=(1, 2, 3)).double().numpy()
    mse_bicubic = ((ev.lr_up - ev.hr) ** 2).mean(dim=(1, 2, 3)).double().numpy()
    return {
        **gain_stats(mse_model, mse_bicubic, cfg.seed),
        "psnr": float(psnr_per_image(mean, ev.hr).mean()),
        "bicubic_psnr": float(psnr_per_image(ev.lr_up, ev.hr).mean()),
        "crops": len(ev),
        "eval_files": ev.files,
        "metric": "posterior-mean PSNR gain over bicubic (dB)",
    }
