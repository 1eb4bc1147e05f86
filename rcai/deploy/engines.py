"""What runs the denoiser inside the bench loop, by name: the deployed ONNX model on a target
("onnx") or the torch eager subnet it was exported from ("torch"). Both are driven by the same
numpy sampling loop, so only the denoiser differs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager

from ..errors import RcaiError
from ..registry import Registry
from ..targets import get_target, resolve_device
from .runtime import DeployedModel, PreparedDenoiser
from .sidecar import DeploySidecar
from .weights import reference_model


@dataclass
class Engine:
    name: str
    denoiser: Callable[..., Any]
    info: dict[str, Any]  # device, backend and version, precision, threads
    label: str  # human-readable, e.g. "onnxruntime 1.20 (fp32, 2 threads)"
    timer: Any = None  # the target's wall-clock timer (CUDA events on a GPU); None: perf_counter
    on_calling_thread: bool = False  # the target computes on this thread (CPU, one thread): a loop is quoted in CPU time


# builder(onnx_path, sidecar, batch, device, threads, weights) -> Engine
EngineBuilder = Callable[[Path, DeploySidecar, int, str, "int | None", "str | Path | None"], Engine]
ENGINES: Registry[EngineBuilder] = Registry("engine")
register_engine = ENGINES.register
list_engines = ENGINES.names


def build_engine(name: str, onnx_path: Path, side: DeploySidecar, batch: int, device: str = "cpu", threads: int | None = None, weights: str | Path | None = None) -> Engine:
    return ENGINES.get(name)(onnx_path, side, batch, device, threads, weights)


@register_engine("onnx")
def _onnx(onnx_path: Path, side: DeploySidecar, batch: int, device: str, threads: int | None, weights: Any) -> Engine:
    settings = {"threads": threads} if threads else {}
    target = resolve_device(device, **settings)
    dm = DeployedModel.load(onnx_path, target=target, batch=batch, deployment=(side, True))
    info = dm.prepared.info().to_dict()
    label = f"{info['backend']} {info['backend_version']} ({info['precision']}, {info['threads']} threads)"
    return Engine("onnx", dm.denoiser, info, label, dm.prepared.timer(), target.computes_on_calling_thread())


@register_engine("torch")
def _torch(onnx_path: Path, side: DeploySidecar, batch: int, device: str, threads: int | None, weights: str | Path | None) -> Engine:
    if device != "cpu":
        raise RcaiError(f"--engine torch: only --device cpu is supported here, got {device!r}")
    if not side.choices:
        raise RcaiError(f"{onnx_path}: --engine torch needs the sidecar (subnet choices and weights)")
    model, note = reference_model(side, onnx_path, weights)
    if model is None:
        raise RcaiError(f"{onnx_path}: --engine torch: {note}")
    specs = {t.name: (t.concrete(batch), t.dtype) for t in side.inputs}
    target = get_target("torch", threads=threads)
    prepared = target.prepare(model, specs)  # the torch target: its threads, its info
    info = prepared.info().to_dict()
    return Engine("torch", PreparedDenoiser(prepared), info, f"torch {info['backend_version']} eager ({note})", prepared.timer(),
                  target.computes_on_calling_thread())


@register_engine("torch-cuda")
def _torch_cuda(onnx_path: Path, side: DeploySidecar, batch: int, device: str, threads: int | None, weights: str | Path | None) -> Engine:
    """The torch subnet on the GPU as one CUDA graph, captured once and replayed at every step of the loop."""
    from ..targets.torch_cuda import CudaGraphDenoiser

    if not side.choices:
        raise RcaiError(f"{onnx_path}: --engine torch-cuda needs the sidecar (subnet choices and weights)")
    model, note = reference_model(side, onnx_path, weights)
    if model is None:
        raise RcaiError(f"{onnx_path}: --engine torch-cuda: {note}")
    den = CudaGraphDenoiser(model, batch, side.preset.hr_size, device="cuda" if device in ("cpu", "gpu") else device)
    return Engine("torch-cuda", den, den.prepared.info().to_dict(), f"torch-cuda CUDA graph ({note})", den.prepared.timer())


def torch_threads(threads: int | None) -> ContextManager[None]:
    """Run torch with `threads` intra-op threads inside the block (None: unchanged), as the torch
    target does around each call: set once around a whole loop, its per-call setting is a no-op."""
    return get_target("torch", threads=threads).threads_set()
