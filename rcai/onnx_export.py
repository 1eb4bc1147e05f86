"""Exporting torch modules to ONNX the same way everywhere (ops for the profiler, whole subnets for
the latency dataset, the deployed denoiser)."""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Sequence

import torch

from .io import atomic_write_bytes

OPSET = 17


def export_onnx(
    module: torch.nn.Module,
    inputs: Sequence[torch.Tensor],
    input_names: Sequence[str],
    path: str | Path,
    output_names: Sequence[str] = ("y",),
    dynamic_batch: bool = False,
    export_params: bool = True,
) -> Path:
    """Export `module` (in eval mode) with the TorchScript exporter at opset 17, written atomically.
    `export_params=False` writes the graph alone (weights become inputs): enough for the predictor."""
    return atomic_write_bytes(path, onnx_bytes(module, inputs, input_names, output_names, dynamic_batch, export_params))


def onnx_bytes(
    module: torch.nn.Module,
    inputs: Sequence[torch.Tensor],
    input_names: Sequence[str],
    output_names: Sequence[str] = ("y",),
    dynamic_batch: bool = False,
    export_params: bool = True,
) -> bytes:
    """The serialized ONNX model of `module` (see export_onnx)."""
    module = module.eval()
    dynamic_axes = {n: {0: "batch"} for n in (*input_names, *output_names)} if dynamic_batch else None
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            module,
            tuple(inputs),
            buf,
            input_names=list(input_names),
            output_names=list(output_names),
            opset_version=OPSET,
            dynamic_axes=dynamic_axes,
            export_params=export_params,
            do_constant_folding=True,
            dynamo=False,
        )
    return buf.getvalue()


def denoiser_inputs(preset, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs of one denoising step: concat(LR-up, y_t) [B,6,H,W] and the noise level [B,1]."""
    g = torch.Generator().manual_seed(seed)
    hr = preset.hr_size
    return torch.randn(batch, 6, hr, hr, generator=g), torch.rand(batch, 1, generator=g)


DENOISER_INPUTS = ("x", "noise_level")
DENOISER_OUTPUTS = ("eps",)
