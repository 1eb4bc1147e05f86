"""The primary quality metric of a deployed ONNX denoiser against the fp32 torch model it was exported
from: posterior-mean gain over bicubic on the same held-out crops (rcai/train/quality.py), read off
both models with the same noise, and the loss (fp32 gain - deployed gain) with a paired bootstrap
interval over crops. Used by `rcai bench` for quantized models and by benchmarks/precision.py."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from ..train.quality import QualityConfig, eval_set, posterior_mean

if TYPE_CHECKING:
    from ..train.loop_quality import LoopQualityConfig


class OnnxModule(torch.nn.Module):
    """An ONNX denoiser file as a torch module (x6, noise_level) -> output, run by ONNX Runtime
    (CPU, `threads`, the target's session options) with any batch: what the quality metric reads."""

    def __init__(self, onnx_path: str | Path, preset, threads: int | None = 1):
        super().__init__()
        import onnxruntime as ort

        from ..targets.onnxruntime import OnnxRuntimeTarget

        self.preset = preset
        self.session = ort.InferenceSession(str(onnx_path), OnnxRuntimeTarget(threads=threads).session_options(), providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        feeds = {"x": np.ascontiguousarray(x.numpy(), np.float32), "noise_level": np.ascontiguousarray(noise_level.numpy(), np.float32)}
        return torch.from_numpy(self.session.run(None, feeds)[0])


def _crop_mse(mean: torch.Tensor, hr: torch.Tensor) -> np.ndarray:
    return ((mean - hr) ** 2).mean(dim=(1, 2, 3)).double().numpy()


def quality_loss(deployed: torch.nn.Module, reference: torch.nn.Module, cfg: QualityConfig = QualityConfig(),
                 resamples: int = 2000) -> dict[str, Any]:
    """Gain over bicubic (dB) of `reference` (fp32 torch) and `deployed` (e.g. OnnxModule of the int8
    file) on the held-out crops, and loss_db = reference - deployed with its 95% paired bootstrap
    interval (the same crops resampled for both)."""
    from ..diffusion import NoiseSchedule

    preset = reference.preset
    ev = eval_set(preset, crops=cfg.crops)
    schedule = NoiseSchedule(preset.schedule)
    reference.eval()
    mse_ref = _crop_mse(posterior_mean(reference, ev, schedule, cfg), ev.hr)
    mse_dep = _crop_mse(posterior_mean(deployed, ev, schedule, cfg), ev.hr)
    mse_bic = _crop_mse(ev.lr_up, ev.hr)

    def gain(m: np.ndarray, b: np.ndarray) -> np.ndarray:
        return 10 * np.log10(b.sum(-1) / m.sum(-1))

    idx = np.random.default_rng(cfg.seed).integers(0, len(ev), (resamples, len(ev)))
    boot = gain(mse_ref[idx], mse_bic[idx]) - gain(mse_dep[idx], mse_bic[idx])
    lo, hi = np.percentile(boot, [2.5, 97.5])
    ref_gain, dep_gain = float(gain(mse_ref, mse_bic)), float(gain(mse_dep, mse_bic))
    return {"fp32_gain_db": ref_gain, "gain_db": dep_gain, "loss_db": ref_gain - dep_gain, "loss_lo": float(lo), "loss_hi": float(hi),
            "crops": len(ev), "metric": "posterior-mean PSNR gain over bicubic (dB), held-out crops; loss = fp32 - deployed"}


def quality_vs_reference(onnx_path: str | Path, side, weights: str | Path | None = None, threads: int | None = 1) -> tuple[dict[str, Any] | None, str]:
    """(quality_loss of the deployed file vs the torch model its sidecar names, note): None and the
    reason where there is no reference (no sidecar weights)."""
    from .weights import reference_model

    ref, note = reference_model(side, onnx_path, weights)
    if ref is None:
        return None, f"no quality check: {note}"
    from ..threads import torch_threads

    with torch_threads(threads or None):
        return quality_loss(OnnxModule(onnx_path, side.preset, threads), ref), ""


def deployed_loop_quality(step_files: Sequence[str | Path], preset, cfg: "LoopQualityConfig", threads: int | None = 1) -> dict[str, Any]:
    """The loop quality (rcai/train/loop_quality.py) of deployed ONNX files, one per step (the same file
    at every step for one subnet; a schedule's per step), run by ONNX Runtime on this CPU with any batch;
    the ideal reference is read off step 0's file (the subnet at pure noise)."""
    from ..diffusion import TorchDenoiser
    from ..train.loop_quality import ideal_psnr, loop_quality

    modules = {str(p): OnnxModule(p, preset, threads) for p in dict.fromkeys(map(str, step_files))}
    denoisers = {name: TorchDenoiser(m) for name, m in modules.items()}
    ideal = ideal_psnr(modules[str(step_files[0])], preset, cfg)
    return loop_quality([denoisers[str(p)] for p in step_files], preset, cfg, ideal=ideal)
