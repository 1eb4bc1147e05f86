"""PyTorch eager execution of an nn.Module (eval + inference_mode), on the CPU or a CUDA device.

The CUDA path (device="cuda[:i]", torch.cuda.synchronize around each timed call) is unverified:
no GPU on the development machine."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ContextManager, Mapping

import numpy as np

from ..errors import RcaiError
from ..threads import require_threads, torch_threads
from .base import MeasureConfig, Prepared, Target, TargetInfo, Timer, TimingStats
from .inputs import Specs, check_feeds, model_precision, normalize_specs, precision_of
from .registry import register_target
from .torch_dtypes import flatten_outputs, torch_dtype
from .sysinfo import cpu_model, host_name


@register_target("torch")
class TorchTarget(Target):
    """threads: torch.set_num_threads while running (restored afterwards; default: torch's own).
    device: 'cpu' or 'cuda[:i]'. precision: fp32 | fp16 | bf16 (a copy of the module and every float
    input cast to it; fp32: the module as given). prepare() takes an nn.Module and puts it in eval mode."""

    takes_onnx = False

    def __init__(self, threads: int | None = None, device: str = "cpu", precision: str = "fp32"):
        import torch

        self.dtype = torch_dtype(precision, "torch")
        self.precision = precision

        try:
            self.device = torch.device(device)
        except RuntimeError as e:
            raise RcaiError(f"torch: bad device {device!r} ({e})") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RcaiError(f"torch: device {device!r} requested but CUDA is not available")
        require_threads(threads, "torch: threads")
        self.threads = None if threads is None else int(threads)
        self._settings = {"threads": self.threads, "device": device, **({"precision": precision} if precision != "fp32" else {})}
        self._precision = precision

    def threads_set(self) -> ContextManager[None]:
        return torch_threads(self.threads)

    def computes_on_calling_thread(self) -> bool:
        return self.device.type == "cpu" and self.settings().get("threads") == 1

    def info(self, precision: str | None = None) -> TargetInfo:
        import torch

        cuda = self.device.type == "cuda"
        return TargetInfo(
            device=str(self.device) if not cuda else f"cuda:{self.device.index or 0}",
            device_model=torch.cuda.get_device_name(self.device) if cuda else cpu_model(),
            backend="torch",
            backend_version=torch.__version__,
            precision=precision or self._precision,
            threads=None if cuda else (self.threads or torch.get_num_threads()),
            host=host_name(),
        )

    def prepare(self, model: Any, input_specs: Mapping[str, Any] | None = None) -> "TorchPrepared":
        import torch

        if isinstance(model, (str, Path)):
            raise RcaiError(f"{model}: the torch target takes an nn.Module, not an ONNX file (use onnxruntime or tensorrt)")
        if not isinstance(model, torch.nn.Module):
            raise RcaiError(f"torch target: expected an nn.Module, got {type(model).__name__}")
        if input_specs is None:
            raise RcaiError("torch target: input_specs are required (positional forward() arguments, in order)")
        specs = normalize_specs(input_specs, type(model).__name__)
        if self.device.type != "cpu" or self.precision != "fp32":
            model = copy.deepcopy(model).to(self.device, self.dtype)  # leave the caller's module as it is
        model.eval()
        prepared = TorchPrepared(self, specs, model)
        self._precision = prepared.precision
        return prepared


class TorchPrepared(Prepared):
    """Inputs are passed to forward() positionally, in the order of input_specs."""

    target: TorchTarget

    def __init__(self, target: TorchTarget, specs: Specs, module: Any):
        super().__init__(target, specs)
        self.module = module
        params = [p for p in module.parameters() if p.is_floating_point()]
        self.precision = target.precision if target.precision != "fp32" else (
            precision_of(str(params[0].dtype).replace("torch.", "")) if params else model_precision(specs))

    def info(self) -> TargetInfo:
        return self.target.info(precision=self.precision)

    def stage(self, feeds: Mapping[str, np.ndarray]) -> list[Any]:
        import torch

        feeds = check_feeds(self.input_specs, feeds, "torch")
        dtype = self.target.dtype
        return [torch.from_numpy(feeds[name]).to(self.target.device, dtype if feeds[name].dtype.kind == "f" else None)
                for name in self.input_specs]

    def execute(self, staged: list[Any]) -> Any:
        import torch

        with torch.inference_mode():
            return self.module(*staged)

    @property
    def device(self) -> Any:
        return self.target.device

    def device_runner(self, capturable: bool = False) -> Any:
        import torch

        dtype, module, threads = self.target.dtype, self.module, self.target.threads_set

        def run(*inputs: Any) -> Any:
            with threads(), torch.inference_mode():
                return flatten_outputs(module(*(t.to(dtype) for t in inputs)))[0].float()

        return run

    def outputs(self, result: Any) -> list[np.ndarray]:
        return [(t.detach().float() if t.is_floating_point() else t.detach()).cpu().numpy().copy() for t in flatten_outputs(result)]

    def timer(self) -> Timer:
        if self.target.device.type != "cuda":
            return super().timer()
        import time

        import torch

        def cuda_timer(fn: Any, arg: Any) -> float:
            torch.cuda.synchronize(self.target.device)
            t0 = time.perf_counter_ns()
            fn(arg)
            torch.cuda.synchronize(self.target.device)
            return (time.perf_counter_ns() - t0) / 1e6

        return cuda_timer

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        with self.target.threads_set():
            return super().run(feeds)

    def measure(self, cfg: MeasureConfig = MeasureConfig(), seed: int = 0) -> TimingStats:
        with self.target.threads_set():
            return super().measure(cfg, seed)
