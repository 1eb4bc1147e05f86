"""torch on a CUDA GPU: eager, or CUDA-graph replay (static input buffers, the forward captured once
and replayed for every call), in fp32, fp16 or bf16, timed with CUDA events.

    target = get_target("torch-cuda", graphs=True, precision="fp16")
    prepared = target.prepare(module, {"x6": ((1, 6, 32, 32), "float32"), "noise_level": ((1, 1), "float32")})
    prepared.measure(MeasureConfig())          # per-call GPU time (events), replayed graph

In `rcai bench --device torch-cuda` (rcai/deploy/engines.py) the graph is captured once and every
step of the whole loop replays it. Written against torch's CUDA API; it runs only where a GPU is.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

import numpy as np

from ..errors import RcaiError
from .base import Prepared, Target, TargetInfo, Timer
from .inputs import Specs, check_feeds, normalize_specs
from .registry import register_target
from .torch_dtypes import torch_dtype
from .sysinfo import host_name

WARMUP_BEFORE_CAPTURE = 3  # eager calls on a side stream before capture (cuDNN/cuBLAS pick kernels)


def cuda_device(device: str) -> Any:
    """A CUDA torch.device, or a one-line RcaiError saying why not."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise RcaiError(f"torch-cuda: bad device {device!r} ({e})") from None
    if dev.type != "cuda":
        raise RcaiError(f"torch-cuda: device must be cuda[:i], got {device!r}")
    if not torch.cuda.is_available():
        raise RcaiError(f"torch-cuda: no CUDA GPU here (torch {torch.__version__}, built for CUDA {torch.version.cuda})")
    index = dev.index or 0
    if index >= torch.cuda.device_count():
        raise RcaiError(f"torch-cuda: {device!r} requested, {torch.cuda.device_count()} GPU(s) present")
    return torch.device("cuda", index)


@register_target("torch-cuda")
class TorchCudaTarget(Target):
    """device: 'cuda[:i]'; precision: fp32 | fp16 | bf16 (weights and float inputs cast to it);
    graphs: capture one CUDA graph per prepared model and replay it (False: eager calls)."""

    takes_onnx = False

    def __init__(self, device: str = "cuda", precision: str = "fp32", graphs: bool = True):
        torch_dtype(precision)  # validate before touching the GPU
        self.precision, self.graphs = precision, bool(graphs)
        self.device = cuda_device(device)
        self._settings = {"device": str(self.device), "precision": precision, "graphs": self.graphs}

    def info(self, precision: str | None = None) -> TargetInfo:
        import torch

        return TargetInfo(
            device=str(self.device), device_model=torch.cuda.get_device_name(self.device),
            backend="torch-cuda-graphs" if self.graphs else "torch-cuda-eager",
            backend_version=f"torch {torch.__version__} cuda {torch.version.cuda}",
            precision=precision or self.precision, threads=None, host=host_name(),
        )

    def prepare(self, model: Any, input_specs: Mapping[str, Any] | None = None) -> "TorchCudaPrepared":
        import torch

        if not isinstance(model, torch.nn.Module):
            raise RcaiError(f"torch-cuda: takes an nn.Module, got {type(model).__name__}")
        if input_specs is None:
            raise RcaiError("torch-cuda: input_specs are required (positional forward() arguments, in order)")
        specs = normalize_specs(input_specs, type(model).__name__)
        module = copy.deepcopy(model).to(self.device, torch_dtype(self.precision)).eval()  # the caller's module stays put
        return TorchCudaPrepared(self, specs, module)


class TorchCudaPrepared(Prepared):
    """Static input buffers on the GPU (one per input, in the model's dtype); with graphs, the forward
    is captured once on them and every execute() copies its inputs in and replays."""

    target: TorchCudaTarget

    def __init__(self, target: TorchCudaTarget, specs: Specs, module: Any):
        import torch

        super().__init__(target, specs)
        self.module = module
        self.dtype = torch_dtype(target.precision)
        self.static = [torch.zeros(shape, dtype=self._dtype_of(dtype), device=target.device)
                       for shape, dtype in specs.values()]
        self.graph: Any = None
        self.static_out: Any = None
        if target.graphs:
            self.capture()
        self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))

    def _dtype_of(self, np_dtype: Any) -> Any:
        import torch

        return self.dtype if np.dtype(np_dtype).kind == "f" else getattr(torch, np.dtype(np_dtype).name)

    def capture(self) -> None:
        """Warm up on a side stream, then capture one forward on the static buffers."""
        import torch

        stream = torch.cuda.Stream(self.target.device)
        stream.wait_stream(torch.cuda.current_stream(self.target.device))
        with torch.no_grad(), torch.cuda.stream(stream):
            for _ in range(WARMUP_BEFORE_CAPTURE):
                self.module(*self.static)
        torch.cuda.current_stream(self.target.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(self.graph):
            self.static_out = self.module(*self.static)

    def info(self) -> TargetInfo:
        return self.target.info()

    def stage(self, feeds: Mapping[str, np.ndarray]) -> list[Any]:
        """Inputs on the GPU in the model's dtype (outside the timed call)."""
        import torch

        feeds = check_feeds(self.input_specs, feeds, "torch-cuda")
        return [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(buf.device, buf.dtype)
                for n, buf in zip(self.input_specs, self.static)]

    def execute(self, staged: list[Any]) -> Any:
        import torch

        if self.graph is None:
            with torch.inference_mode():
                return self.module(*staged)
        for buf, x in zip(self.static, staged):
            buf.copy_(x, non_blocking=True)  # device to device; the sampler writes x_t here each step
        self.graph.replay()
        return self.static_out

    @property
    def device(self) -> Any:
        return self.target.device

    def device_runner(self, capturable: bool = False) -> Any:
        """Per call: the inputs copied into the static buffers and the captured graph replayed (eager
        calls without graphs, or when `capturable`: the module itself, for a whole-loop graph)."""
        import torch

        from .torch_dtypes import flatten_outputs

        if self.graph is None or capturable:
            dtype, module = self.dtype, self.module

            def eager(*inputs: Any) -> Any:
                with torch.no_grad():
                    return flatten_outputs(module(*(t.to(dtype) for t in inputs)))[0].float()

            return eager
        static, graph, out = self.static, self.graph, flatten_outputs(self.static_out)[0]

        def replay(*inputs: Any) -> Any:
            for buf, x in zip(static, inputs):
                buf.copy_(x)
            graph.replay()
            return out.float() if out.dtype != torch.float32 else out  # used by the step before the next replay rewrites it

        return replay

    def outputs(self, result: Any) -> list[np.ndarray]:
        from .torch_dtypes import flatten_outputs

        return [t.detach().float().cpu().numpy().copy() for t in flatten_outputs(result)]

    def timer(self) -> Timer:
        """GPU time of one call between two CUDA events on the current stream."""
        start, end = self._events

        def event_timer(fn: Any, arg: Any) -> float:
            start.record()
            fn(arg)
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end))

        return event_timer


def capture_graph(fn: Any, device: Any, warmup: int = WARMUP_BEFORE_CAPTURE) -> tuple[Any, Any]:
    """(graph, static output) of the no-argument callable `fn` (e.g. a whole sampling loop on static
    buffers: rcai.diffusion.device_loop.DeviceLoop.loop) captured as one CUDA graph after `warmup`
    eager calls on a side stream; replay with graph.replay(), which rewrites the static output."""
    import torch

    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.no_grad(), torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        out = fn()
    return graph, out
