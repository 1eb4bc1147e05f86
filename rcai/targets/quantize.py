"""ONNX Runtime static INT8 quantization of an ONNX file: the onnxruntime target's `int8` precision.

    cfg = QuantConfig()                                   # QDQ, uint8 activations, int8 per-channel weights
    settings = quantize_file("fp32.onnx", "int8.onnx", reader, cfg)

Only `onnxruntime.quantization.quantize_static` does the work (no hand-written quantizer). What is
quantized is an explicit list of ONNX op types (`QuantConfig.op_types`); every other op (GroupNorm as
InstanceNormalization + Mul/Add, SiLU, the attention's Einsum/Softmax, Resize, the residual Adds,
FiLM) stays fp32. That list is the documented exclusion list: on the tiny UNet, quantizing every op
ORT can quantize made the network slower than fp32 (extra Quantize/Dequantize pairs around small
elementwise ops) and doubled its error; Conv alone is what pays (benchmarks/results/precision.md).
`exclude` keeps nodes fp32 by name (substring match): by default the stem and the head (FP32_MODULES).

The calibration data (a `CalibrationDataReader`) is the caller's: the deployed denoiser is calibrated
on inputs drawn as its sampling loop draws them (rcai/deploy/quantize.py); an op profiled alone for
a cost table on random inputs (`random_reader`), since what is timed, the quantized graph, does not
depend on the calibrated ranges.
"""
from __future__ import annotations

import logging
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from ..config import JsonConfig
from ..errors import RcaiError
from ..precisions import precisions
from .inputs import Specs, make_input_pool

# Modules of the UNet whose convs stay fp32: the stem (its input mixes the LR image with pure noise, one
# uint8 range for both) and the head (the predicted output itself). On the tiny base (300 steps) keeping
# them cut the INT8 quality loss from 0.015 to 0.003 dB and the output error from 8.6% to 6.0%, for 2%
# of the INT8 speed (benchmarks/results/precision.md).
FP32_MODULES = ("/stem/", "/head/")
QUANT_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger")
_TYPES = {"uint8": "QUInt8", "int8": "QInt8"}
_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
_FORMATS = {"qdq": "QDQ", "qoperator": "QOperator"}


def check_precision(precision: str, where: str = "--precision") -> str:
    """A precision `rcai profile --precision` and the tables know (rcai/precisions.py: "table")."""
    if precision not in precisions("table"):
        raise RcaiError(f"{where}: unknown precision {precision!r}; known: {', '.join(precisions('table'))}")
    return precision


@dataclass(frozen=True)
class QuantConfig(JsonConfig):
    """Settings of `quantize_static`. Defaults: QDQ format (ORT's preferred CPU form), uint8
    activations with int8 weights and no range reduction (ORT's advice for x86 CPUs with VNNI),
    per-channel weights, MinMax calibration, Conv only (see the module doc)."""

    format: str = "qdq"  # qdq | qoperator
    activations: str = "uint8"  # uint8 | int8
    weights: str = "int8"
    per_channel: bool = True
    reduce_range: bool = False
    method: str = "minmax"  # minmax | entropy | percentile
    op_types: tuple[str, ...] = ("Conv",)  # ONNX op types quantized, everything else stays fp32; (): all ORT can quantize
    exclude: tuple[str, ...] = FP32_MODULES  # node-name substrings kept fp32 (the UNet's "/<module>/" scopes)

    def keeps_fp32(self, op: str) -> bool:
        """Whether the UNet module of op kind `op` (stem, head, ...) stays fp32 under `exclude`: what
        an op profiled alone must do to be timed as in the whole network."""
        return f"/{op}/" in self.exclude

    def __post_init__(self) -> None:
        for name, value, known in (("format", self.format, _FORMATS), ("activations", self.activations, _TYPES),
                                   ("weights", self.weights, _TYPES), ("method", self.method, _METHODS)):
            if value not in known:
                raise RcaiError(f"quantization {name}: unknown {value!r}; known: {', '.join(known)}")


class _Reader:
    """A CalibrationDataReader over a list of feed dicts (ORT's interface: get_next, None at the end)."""

    def __init__(self, feeds: Iterable[Mapping[str, np.ndarray]]):
        self._feeds = [dict(f) for f in feeds]
        self._it: Iterator[dict[str, np.ndarray]] = iter(self._feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)


def feeds_reader(feeds: Iterable[Mapping[str, np.ndarray]]) -> Any:
    """A calibration reader for `quantize_static` from a list of {input name: array}."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(_Reader, CalibrationDataReader):
        pass

    return Reader(feeds)


def random_reader(specs: Specs, n: int = 4, seed: int = 0) -> Any:
    """Calibration on `n` random input sets (floats ~ N(0, 1)): for timing only."""
    return feeds_reader(make_input_pool(specs, n, seed))


@contextmanager
def _quiet() -> Iterator[None]:
    """quantize_static logs advice (pre-processing, bias not an initializer) at WARNING on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def node_names(model_path: str | Path, op_types: Iterable[str]) -> list[str]:
    """Names of the nodes of `op_types` (empty: every node)."""
    import onnx

    wanted = set(op_types)
    return [n.name for n in onnx.load(str(model_path), load_external_data=False).graph.node if not wanted or n.op_type in wanted]


def quantize_file(src: str | Path, dst: str | Path, reader: Any, cfg: QuantConfig = QuantConfig()) -> dict[str, Any]:
    """Quantize the fp32 ONNX file `src` into `dst` with `reader`'s calibration data. Returns the
    settings as recorded in a sidecar or table meta: the config, ORT's version, the nodes quantized
    and kept fp32, the calibration inputs' count."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    candidates = node_names(src, cfg.op_types)
    excluded = [n for n in candidates if any(s in n for s in cfg.exclude)]
    quantized = [n for n in candidates if n not in excluded]
    if not quantized:
        raise RcaiError(f"{src}: nothing to quantize (no {', '.join(cfg.op_types) or 'quantizable'} node outside the exclusions)")
    with _quiet(), tempfile.TemporaryDirectory(prefix="rcai-quant-") as tmp:
        try:
            quantize_static(
                str(src), str(Path(tmp) / "q.onnx"), reader,
                quant_format=getattr(QuantFormat, _FORMATS[cfg.format]),
                op_types_to_quantize=list(cfg.op_types) or None, per_channel=cfg.per_channel, reduce_range=cfg.reduce_range,
                activation_type=getattr(QuantType, _TYPES[cfg.activations]), weight_type=getattr(QuantType, _TYPES[cfg.weights]),
                nodes_to_exclude=excluded, calibrate_method=getattr(CalibrationMethod, _METHODS[cfg.method]),
                calibration_providers=["CPUExecutionProvider"],
            )
        except Exception as e:  # ORT raises its own types (InvalidGraph, ValueError...)
            raise RcaiError(f"{src}: onnxruntime quantization failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        data = (Path(tmp) / "q.onnx").read_bytes()
    from ..io import atomic_write_bytes

    atomic_write_bytes(dst, data)
    return {"tool": "onnxruntime.quantization.quantize_static", "onnxruntime": ort.__version__, **cfg.to_dict(),
            "quantized_nodes": len(quantized) if cfg.op_types else None, "fp32_nodes_of_quantized_types": excluded,
            "calibration_inputs": len(reader) if hasattr(reader, "__len__") else None}


def onnx_precision(path: str | Path) -> str | None:
    """"int8" if the ONNX file holds quantization nodes (QDQ or QLinear*), else None."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # not ours to diagnose here: the session load reports it
        return None
    return "int8" if any(n.op_type in QUANT_OPS for n in graph.node) else None


def quantize_for_timing(src: str | Path, dst: str | Path | None = None, cfg: QuantConfig = QuantConfig()) -> Path:
    """`src` quantized as it would be inside a whole INT8 network (the same `cfg`), calibrated on random
    inputs of its own (fixed) input shapes, written to `dst` (default: beside it, `.int8.onnx`). A
    model with nothing to quantize (no node of cfg.op_types: FiLM, the noise embedding) runs in fp32
    in an INT8 network too: `src` itself is returned."""
    from .inputs import specs_from_onnx

    src = Path(src)
    if not node_names(src, cfg.op_types):
        return src
    dst = Path(dst) if dst is not None else src.with_name(src.name.removesuffix(".onnx") + ".int8.onnx")
    quantize_file(src, dst, random_reader(specs_from_onnx(src)), cfg)
    return dst
