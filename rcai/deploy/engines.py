"""What runs the denoiser inside the bench loop. The target behind `--device` decides: a target that
takes ONNX (onnxruntime, tensorrt, a host over ssh) runs the deployed file; a torch target (`torch`
on this CPU, `torch-cuda` on a GPU, its CUDA graph replayed at every step) runs the subnet the file
was exported from (the sidecar's choices and weights). The same sampler drives both: numpy on the
host, or (torch targets, `rcai bench --loop`) torch on the model's device (rcai.cost.loops.make_loop)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import RcaiError
from ..targets import TargetSpec, resolve_device
from .runtime import DeployedModel, PreparedDenoiser
from .sidecar import DeploySidecar
from .weights import reference_model


@dataclass
class Engine:
    kind: str  # "onnx": the deployed file | "torch": the module it was exported from
    denoiser: Callable[..., Any]
    info: dict[str, Any]  # device, backend and version, precision, threads
    label: str  # human-readable, e.g. "onnxruntime 1.20 (fp32, 2 threads)"
    timer: Any = None  # the target's wall-clock timer (CUDA events on a GPU); None: perf_counter
    on_calling_thread: bool = False  # the target computes on this thread (CPU, one thread): a loop is quoted in CPU time
    prepared: Any = None  # the target's prepared model (its device_runner drives a loop on the device)


def build_engine(onnx_path: Path, side: DeploySidecar, spec: TargetSpec, weights: str | Path | None = None) -> Engine:
    """The denoiser of the deployed model `onnx_path` on the target of `spec` (its batch: the loop's)."""
    target, batch, device = resolve_device(spec), spec.batch, spec.device
    if target.takes_onnx:
        dm = DeployedModel.load(onnx_path, target=target, batch=batch, deployment=(side, True))
        info = dm.prepared.info().to_dict()
        label = f"{info['backend']} {info['backend_version']} ({info['precision']}, {info['threads']} threads)"
        return Engine("onnx", dm.denoiser, info, label, dm.prepared.timer(), target.computes_on_calling_thread(), dm.prepared)
    if not side.choices:
        raise RcaiError(f"{onnx_path}: --device {device} runs the torch subnet and needs the sidecar (subnet choices and weights)")
    model, note = reference_model(side, onnx_path, weights)
    if model is None:
        raise RcaiError(f"{onnx_path}: --device {device}: {note}")
    prepared = target.prepare(model, {t.name: (t.concrete(batch), t.dtype) for t in side.inputs})
    info = prepared.info().to_dict()
    label = f"{info['backend']} {info['backend_version']} ({info['precision']}, {note})"
    return Engine("torch", PreparedDenoiser(prepared), info, label, prepared.timer(), target.computes_on_calling_thread(), prepared)


def reference_device(engine: Engine) -> str:
    """The device whose loop an engine's image is checked against: the torch subnet on this CPU for
    the deployed file, the deployed file on ONNX Runtime for the torch subnet."""
    return "torch" if engine.kind == "onnx" else "cpu"
