"""`rcai export`: the subnet's denoiser as ONNX (dynamic batch, opset 17) plus its sidecar,
checked with onnx.checker and verified against torch in ONNX Runtime."""
from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import onnx
import torch

from ..errors import RcaiError
from ..io import atomic_write_pair, json_text, refuse_special
from ..lock import exclusive
from ..onnx_export import DENOISER_INPUTS, DENOISER_OUTPUTS, OPSET, denoiser_inputs, export_onnx
from ..precisions import precisions
from ..space.subnet import SubnetSpec
from .fp16 import to_fp16
from .sidecar import DeploySidecar, denoiser_specs, sidecar_path
from .weights import build_model, weights_ref

if TYPE_CHECKING:
    from ..targets.quantize import QuantConfig
    from .quantize import CalibrationConfig

FP32_TOLERANCE = 1e-4  # max |ONNX Runtime - torch| on random inputs
# INT8: relative RMS error of the quantized model's output vs torch fp32, ||int8 - fp32|| / ||fp32||, on
# held-out loop inputs (validation photo, its fp32 sampling loop). Above INT8_TOLERANCE the export warns
# (check the quality loss with `rcai bench`: the output error is a coarse proxy; the all-skip tiny subnet
# is 17.8% off at a 0.002 dB loss of the primary metric); above INT8_REFUSE it is refused as broken.
INT8_TOLERANCE = 0.10
INT8_REFUSE = 0.50
VERIFY_BATCH = 2  # also proves the batch dimension is dynamic (exported with batch 1)


@dataclass
class ExportReport:
    onnx_path: str
    sidecar_path: str
    subnet_hash: str
    precision: str
    opset: int
    params: int
    onnx_bytes: int
    max_abs_diff: float | None  # fp32 ONNX Runtime vs torch (None: not verified)
    fp16_max_abs_diff: float | None = None  # fp16 model vs torch fp32
    fp16_converter: str | None = None
    int8_rel_error: float | None = None  # INT8 model vs torch fp32 on held-out loop inputs (see INT8_TOLERANCE)
    int8_max_abs_diff: float | None = None  # the same inputs
    quantization: dict[str, Any] = field(default_factory=dict)  # settings + calibration set (the sidecar's)
    verify_batch: int = VERIFY_BATCH
    weights: str = "random"
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ort_vs_torch(model_bytes: bytes, module: torch.nn.Module, preset, batch: int = VERIFY_BATCH, seed: int = 0) -> float:
    """Max |ONNX Runtime(model) - torch(module)| on random inputs (x ~ N(0,1), noise_level ~ U(0,1)),
    the model run through the ONNX Runtime target like every other measurement."""
    from ..targets import get_target

    x, level = denoiser_inputs(preset, batch=batch, seed=seed)
    feeds = {"x": x.numpy(), "noise_level": level.numpy()}
    with tempfile.TemporaryDirectory(prefix="rcai-verify-") as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(model_bytes)
        prepared = get_target("onnxruntime").prepare(path, {k: (v.shape, v.dtype) for k, v in feeds.items()})
        got = prepared.run(feeds)[0]
    with torch.inference_mode():
        want = module(x, level).numpy()
    if got.shape != want.shape:
        raise RcaiError(f"export: ONNX output shape {got.shape} != torch {want.shape}")
    return float(np.max(np.abs(got.astype(np.float64) - want)))


def int8_vs_torch(model_path: Path, module: torch.nn.Module, preset) -> tuple[float, float]:
    """(relative RMS error, max abs diff) of the quantized model at `model_path` vs the torch fp32
    `module` on held-out sampling-loop inputs (rcai/deploy/quantize.py held_out_feeds)."""
    from ..targets import get_target
    from .quantize import held_out_feeds

    feeds = held_out_feeds(module, preset)
    prepared = get_target("onnxruntime").prepare(model_path, {k: (v.shape, v.dtype) for k, v in feeds[0].items()})
    num = den = worst = 0.0
    for f in feeds:
        got = prepared.run(f)[0].astype(np.float64)
        with torch.inference_mode():
            want = module(torch.from_numpy(f["x"]), torch.from_numpy(f["noise_level"])).numpy().astype(np.float64)
        num, den, worst = num + float(((got - want) ** 2).sum()), den + float((want**2).sum()), max(worst, float(np.abs(got - want).max()))
    return (num / den) ** 0.5 if den > 0 else float("inf" if num else 0.0), worst


def _check(model: onnx.ModelProto, what: str) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise RcaiError(f"export: {what} fails onnx.checker ({str(e).splitlines()[0]})") from None


def export_subnet_onnx(
    spec: SubnetSpec,
    state_dict: Mapping[str, torch.Tensor] | None,
    out_path: str | Path,
    fp16: bool = False,
    verify: bool = True,
    weights_path: str | Path | None = None,
    seed: int = 0,
    precision: str | None = None,
    calibration: "CalibrationConfig | None" = None,
    quant: "QuantConfig | None" = None,
) -> ExportReport:
    """Export the denoiser of `spec` with `state_dict` (None: random init from `seed`, with a warning)
    to `out_path` and write `<out_path>.json` beside it.

    Inputs `x` [B,6,H,W] and `noise_level` [B,1], output `eps` [B,3,H,W], B dynamic, opset 17.
    verify: compare ONNX Runtime with torch on a random batch of 2; fp32 must agree within 1e-4
    (else RcaiError). With fp16 the written model is the fp16 one (fp32 I/O); its difference is
    reported separately. `weights_path` is recorded in the sidecar (relative to the ONNX file).
    precision: fp32 | fp16 | int8 (None: fp16 if `fp16`, else fp32). int8: ONNX Runtime static
    quantization (`quant`, default QuantConfig()) calibrated on the model's own sampling loop
    (`calibration`, default CalibrationConfig()); verify: its relative error vs torch fp32 on held-out
    loop inputs is reported, warned above INT8_TOLERANCE and refused (RcaiError) above INT8_REFUSE."""
    t0 = time.perf_counter()
    precision = precision or ("fp16" if fp16 else "fp32")
    if precision not in precisions("export") or (fp16 and precision != "fp16"):
        raise RcaiError(f"export: --precision must be one of {', '.join(precisions('export'))} (and --fp16 only with fp16), got {precision!r}")
    out_path = Path(out_path)
    if out_path.suffix != ".onnx":
        raise RcaiError(f"{out_path}: the output file must end in .onnx")
    for path in (out_path, sidecar_path(out_path)):  # both refused before any work, not the second after the first is written
        refuse_special(path)
    with exclusive(out_path):  # one export to a file at a time
        return _export(spec, state_dict, out_path, verify, weights_path, seed, precision, calibration, quant, t0)


def _export(spec: SubnetSpec, state_dict: Mapping[str, torch.Tensor] | None, out_path: Path, verify: bool, weights_path: str | Path | None,
            seed: int, precision: str, calibration: "CalibrationConfig | None", quant: "QuantConfig | None", t0: float) -> ExportReport:
    warns = []
    if state_dict is None:
        warns.append(f"no weights given: exporting a random init (seed {seed})")
        warnings.warn(warns[-1], stacklevel=2)
    module = build_model(spec, state_dict, seed=seed, source=str(weights_path or "state_dict"))
    preset = spec.preset
    with tempfile.TemporaryDirectory(prefix="rcai-export-") as tmp:
        fp32_path = export_onnx(
            module, denoiser_inputs(preset, batch=1), DENOISER_INPUTS, Path(tmp) / "fp32.onnx", DENOISER_OUTPUTS, dynamic_batch=True
        )
        model = onnx.load(str(fp32_path))
    _check(model, "the fp32 model")
    data = model.SerializeToString()
    diff = ort_vs_torch(data, module, preset) if verify else None
    if diff is not None and not diff <= FP32_TOLERANCE:
        raise RcaiError(f"export: ONNX Runtime differs from torch by {diff:.3g} (> {FP32_TOLERANCE:g}) on random inputs")
    diff16 = converter = rel8 = diff8 = None
    quantization: dict[str, Any] = {}
    if precision == "int8":
        from .quantize import CalibrationConfig, quantize_denoiser
        from ..targets.quantize import QuantConfig

        with tempfile.TemporaryDirectory(prefix="rcai-int8-") as tmp:
            src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            src.write_bytes(data)
            quantization = quantize_denoiser(src, dst, module, preset, calibration or CalibrationConfig(), quant or QuantConfig())
            model = onnx.load(str(dst))
            _check(model, "the int8 model")
            if verify:
                rel8, diff8 = int8_vs_torch(dst, module, preset)
            data = dst.read_bytes()
        if rel8 is not None and not rel8 <= INT8_REFUSE:
            raise RcaiError(f"export: the int8 model's output is {rel8:.1%} off torch fp32 on held-out loop inputs (> {INT8_REFUSE:.0%}); "
                            "keep more ops in fp32 (QuantConfig.exclude) or calibrate on more inputs")
        if rel8 is not None and rel8 > INT8_TOLERANCE:
            warns.append(f"the int8 model's output is {rel8:.1%} off torch fp32 on held-out loop inputs (> {INT8_TOLERANCE:.0%}): "
                         "check its quality loss with rcai bench (reported for int8 models)")
            warnings.warn(warns[-1], stacklevel=2)
    if precision == "fp16":
        model, converter = to_fp16(model)
        _check(model, "the fp16 model")
        data = model.SerializeToString()
        precision = "fp16"
        diff16 = ort_vs_torch(data, module, preset) if verify else None
        if diff16 is not None and not np.isfinite(diff16):
            raise RcaiError("export: the fp16 model produces non-finite outputs")
    check = {"max_abs_diff": diff, "fp16_max_abs_diff": diff16, "fp16_converter": converter, "verify_batch": VERIFY_BATCH}
    if precision == "int8":
        check.update(int8_rel_error=rel8, int8_max_abs_diff=diff8, int8_tolerance=INT8_TOLERANCE, int8_inputs="held-out loop inputs (validation photo)")
    inputs, outputs = denoiser_specs(preset)
    side = DeploySidecar(
        preset=preset,
        choices=dict(spec.choices),
        schedule=preset.schedule,
        inputs=inputs,
        outputs=outputs,
        precision=precision,
        opset=OPSET,
        weights=weights_ref(module, weights_path, out_path, seed),
        export_check=check,
        quantization=quantization,
    )
    side_path = sidecar_path(out_path)
    atomic_write_pair((side_path, json_text(side_path, side.to_dict()).encode()), (out_path, data))  # the ONNX never without its sidecar
    return ExportReport(
        onnx_path=str(out_path),
        sidecar_path=str(side_path),
        subnet_hash=spec.hash,
        precision=precision,
        opset=OPSET,
        params=sum(p.numel() for p in module.parameters()),
        onnx_bytes=len(data),
        max_abs_diff=diff,
        fp16_max_abs_diff=diff16,
        fp16_converter=converter,
        int8_rel_error=rel8,
        int8_max_abs_diff=diff8,
        quantization=quantization,
        weights=str(weights_path) if weights_path else f"random (seed {seed})",
        seconds=time.perf_counter() - t0,
        warnings=warns,
    )
