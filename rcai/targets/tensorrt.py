"""TensorRT 10.x: build an engine from an ONNX file, run it on a CUDA stream, time it with CUDA events.

Unverified: no GPU on the development machine. Written against the TensorRT 10 Python API
(Builder / OnnxParser / BuilderConfig / build_serialized_network / Runtime, named-tensor execution
with set_input_shape, set_tensor_address and execute_async_v3). Device buffers are torch.cuda
tensors (no pycuda). Engines are cached on disk, keyed by the ONNX bytes and every setting that
changes the engine (input shapes, fp16, workspace, max batch, TensorRT version, GPU name).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import RcaiError
from ..io import atomic_write_bytes
from .base import Prepared, Target, TargetInfo, Timer, onnx_path
from .inputs import Specs, check_feeds, normalize_specs, specs_from_onnx, specs_to_json
from .registry import register_target
from .sysinfo import host_name

MISSING = "TensorRT is not installed: pip install 'rcai[tensorrt]' on a machine with an NVIDIA GPU"


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError:
        raise RcaiError(MISSING) from None
    return tensorrt


@register_target("tensorrt")
class TensorRTTarget(Target):
    """fp16: allow FP16 kernels (I/O stays as the ONNX declares). workspace_mb: builder workspace
    pool limit. max_batch: top of the optimization profile for a dynamic batch dimension
    (profile min 1, opt = the prepared batch). cache_dir: engine cache (default
    ~/.cache/rcai/tensorrt, or $RCAI_TRT_CACHE). device: CUDA device index."""

    def __init__(
        self, fp16: bool = False, workspace_mb: int = 1024, max_batch: int | None = None,
        cache_dir: str | None = None, device: int = 0,
    ):
        self.trt = import_tensorrt()
        import torch

        if not torch.cuda.is_available():
            raise RcaiError("tensorrt: no CUDA device visible to torch (torch with CUDA is needed for buffers)")
        self.fp16, self.workspace_mb, self.max_batch = bool(fp16), int(workspace_mb), max_batch
        self.device = torch.device("cuda", int(device))
        default_cache = os.environ.get("RCAI_TRT_CACHE", str(Path.home() / ".cache" / "rcai" / "tensorrt"))
        self.cache_dir = Path(cache_dir or default_cache)
        self.logger = self.trt.Logger(self.trt.Logger.WARNING)
        self.runtime = self.trt.Runtime(self.logger)  # kept alive as long as engines made from it
        self._settings = {"fp16": self.fp16, "workspace_mb": self.workspace_mb, "max_batch": max_batch,
                          "cache_dir": cache_dir, "device": int(device)}

    def info(self, precision: str | None = None) -> TargetInfo:
        import torch

        return TargetInfo(
            device=f"cuda:{self.device.index}",
            device_model=torch.cuda.get_device_name(self.device),
            backend="tensorrt",
            backend_version=self.trt.__version__,
            precision=precision or ("fp16" if self.fp16 else "fp32"),
            threads=None,
            host=host_name(),
        )

    def engine_key(self, path: Path, specs: Specs) -> str:
        h = hashlib.sha256(path.read_bytes())
        meta = {"specs": specs_to_json(specs), "fp16": self.fp16, "workspace_mb": self.workspace_mb,
                "max_batch": self.max_batch, "trt": self.trt.__version__, "gpu": self.info().device_model}
        h.update(json.dumps(meta, sort_keys=True).encode())
        return h.hexdigest()[:32]

    def build(self, path: Path, specs: Specs) -> bytes:
        """Serialized engine for the ONNX file at `path` with the input shapes in `specs`."""
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse_from_file(str(path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RcaiError(f"{path}: TensorRT cannot parse it ({errors})")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_mb << 20)
        if self.fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        profile, dynamic = builder.create_optimization_profile(), False
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            if tensor.name not in specs:
                raise RcaiError(f"{path}: input {tensor.name!r} missing from input_specs")
            shape, declared = specs[tensor.name][0], tuple(tensor.shape)
            if -1 in declared:
                dynamic = True
                top = max(self.max_batch or shape[0], shape[0])
                lo = tuple(1 if (j == 0 and d == -1) else s for j, (d, s) in enumerate(zip(declared, shape)))
                hi = tuple(top if (j == 0 and d == -1) else s for j, (d, s) in enumerate(zip(declared, shape)))
                profile.set_shape(tensor.name, lo, shape, hi)
        if dynamic:
            config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RcaiError(f"{path}: TensorRT failed to build an engine (see its log above)")
        return bytes(serialized)

    def prepare(self, model: Any, input_specs: Mapping[str, Any] | None = None) -> "TrtPrepared":
        path = onnx_path(model)
        specs = normalize_specs(input_specs, str(path)) if input_specs is not None else specs_from_onnx(path)
        cached = self.cache_dir / f"{self.engine_key(path, specs)}.engine"
        if cached.is_file():
            blob = cached.read_bytes()
        else:
            blob = self.build(path, specs)
            atomic_write_bytes(cached, blob)
        engine = self.runtime.deserialize_cuda_engine(blob)
        if engine is None:
            raise RcaiError(f"{cached}: TensorRT cannot deserialize the engine (delete it to rebuild)")
        return TrtPrepared(self, specs, engine)


def _torch_dtype(np_dtype: Any) -> Any:
    import torch

    return torch.from_numpy(np.empty(0, dtype=np_dtype)).dtype


class TrtPrepared(Prepared):
    """One execution context on its own CUDA stream. Output buffers are allocated once; `stage`
    copies each input set to the device; the timed `execute` binds input addresses and enqueues."""

    target: TensorRTTarget

    def __init__(self, target: TensorRTTarget, specs: Specs, engine: Any):
        import torch

        super().__init__(target, specs)
        trt = target.trt
        self.engine = engine
        self.context = engine.create_execution_context()
        self.stream = torch.cuda.Stream(device=target.device)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in self.inputs]
        self.in_dtypes = {n: _torch_dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in self.inputs}
        for n in self.inputs:
            self.context.set_input_shape(n, specs[n][0])
        self.out = {}
        for n in self.output_names:
            shape = tuple(self.context.get_tensor_shape(n))
            dtype = _torch_dtype(trt.nptype(engine.get_tensor_dtype(n)))
            self.out[n] = torch.empty(shape, dtype=dtype, device=target.device)
            self.context.set_tensor_address(n, self.out[n].data_ptr())

    def info(self) -> TargetInfo:
        return self.target.info()

    def stage(self, feeds: Mapping[str, np.ndarray]) -> dict[str, Any]:
        import torch

        feeds = check_feeds(self.input_specs, feeds, "tensorrt")
        with torch.cuda.stream(self.stream):
            staged = {n: torch.from_numpy(feeds[n]).to(self.target.device, self.in_dtypes[n]) for n in self.inputs}
        self.stream.synchronize()
        return staged

    def execute(self, staged: Mapping[str, Any]) -> None:
        for n, t in staged.items():
            self.context.set_tensor_address(n, t.data_ptr())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RcaiError("tensorrt: execute_async_v3 failed (see the TensorRT log)")

    def outputs(self, result: Any) -> list[np.ndarray]:
        self.stream.synchronize()
        return [self.out[n].cpu().numpy().copy() for n in self.output_names]

    def timer(self) -> Timer:
        import torch

        def cuda_event_timer(fn: Any, arg: Any) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(self.stream)
            fn(arg)
            end.record(self.stream)
            end.synchronize()
            return float(start.elapsed_time(end))

        return cuda_event_timer
