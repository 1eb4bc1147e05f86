"""ONNX Runtime on the CPU (CPUExecutionProvider), with IO binding into reused output buffers."""
from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from ..errors import RcaiError
from ..threads import require_threads
from .base import Prepared, Target, TargetInfo, onnx_path
from .inputs import Specs, check_feeds, model_precision, normalize_specs, specs_from_onnx
from .registry import register_target
from .sysinfo import cpu_model, host_name

OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


@register_target("onnxruntime")
class OnnxRuntimeTarget(Target):
    """threads: intra-op threads (default os.cpu_count()); inter-op is 1 and execution sequential.
    graph_optimization_level: disable | basic | extended | all."""

    int8 = True

    def __init__(self, threads: int | None = None, graph_optimization_level: str = "all"):
        if graph_optimization_level not in OPT_LEVELS:
            raise RcaiError(f"onnxruntime: graph_optimization_level must be one of {list(OPT_LEVELS)}")
        threads = (os.cpu_count() or 1) if threads is None else int(threads)
        require_threads(threads, "onnxruntime: threads")
        self.threads = threads
        self.graph_optimization_level = graph_optimization_level
        self._settings = {"threads": threads, "graph_optimization_level": graph_optimization_level}
        self._precision = "fp32"

    def computes_on_calling_thread(self) -> bool:
        return self.threads == 1

    def info(self, precision: str | None = None) -> TargetInfo:
        import onnxruntime as ort

        return TargetInfo(
            device="cpu",
            device_model=cpu_model(),
            backend="onnxruntime",
            backend_version=ort.__version__,
            precision=precision or self._precision,
            threads=self.threads,
            host=host_name(),
        )

    def session_options(self) -> Any:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[self.graph_optimization_level])
        so.log_severity_level = 3  # errors only
        return so

    def prepare(self, model: Any, input_specs: Mapping[str, Any] | None = None) -> "OrtPrepared":
        import onnxruntime as ort

        path = onnx_path(model)
        specs = normalize_specs(input_specs, str(path)) if input_specs is not None else specs_from_onnx(path)
        try:
            sess = ort.InferenceSession(str(path), self.session_options(), providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types
            raise RcaiError(f"{path}: onnxruntime cannot load it ({str(e).splitlines()[0]})") from None
        names = [i.name for i in sess.get_inputs()]
        if sorted(names) != sorted(specs):
            raise RcaiError(f"{path}: model inputs {names} do not match input_specs {list(specs)}")
        from .quantize import onnx_precision

        prepared = OrtPrepared(self, specs, sess, onnx_precision(path))  # int8: a quantized graph with fp32 I/O
        self._precision = prepared.precision
        return prepared


class OrtPrepared(Prepared):
    """One InferenceSession. Outputs go into buffers allocated once (shapes from a first run);
    `stage` makes one IOBinding per input set (inputs bound zero-copy from the numpy arrays),
    so the timed `execute` is only `run_with_iobinding`."""

    def __init__(self, target: OnnxRuntimeTarget, specs: Specs, session: Any, precision: str | None = None):
        super().__init__(target, specs)
        self.session = session
        self.precision = precision or model_precision(specs)
        self.output_names = [o.name for o in session.get_outputs()]
        from .inputs import make_input_pool

        first = session.run(self.output_names, make_input_pool(specs, 1, seed=12345)[0])
        self._out_arrays: list[np.ndarray] | None = None
        self._out_values: list[Any] = []
        if all(isinstance(a, np.ndarray) for a in first):
            import onnxruntime as ort

            self._out_arrays = [np.empty_like(a) for a in first]
            self._out_values = [ort.OrtValue.ortvalue_from_numpy(a) for a in self._out_arrays]

    def info(self) -> TargetInfo:
        return self.target.info(precision=self.precision)

    def stage(self, feeds: Mapping[str, np.ndarray]) -> Any:
        feeds = check_feeds(self.input_specs, feeds, "onnxruntime")
        binding = self.session.io_binding()
        for name, arr in feeds.items():
            binding.bind_cpu_input(name, arr)  # keeps a reference to arr; no copy
        if self._out_arrays is not None:
            for name, value in zip(self.output_names, self._out_values):
                binding.bind_ortvalue_output(name, value)
        else:  # non-tensor or data-dependent outputs: let ORT allocate them
            for name in self.output_names:
                binding.bind_output(name, "cpu")
        return binding

    def execute(self, staged: Any) -> Any:
        self.session.run_with_iobinding(staged)
        return staged

    def outputs(self, result: Any) -> list[np.ndarray]:
        if self._out_arrays is not None:
            return [a.copy() for a in self._out_arrays]
        return [np.array(v) for v in result.copy_outputs_to_cpu()]

    def runner(self, copy_outputs: bool = True) -> Any:
        """Input and output buffers allocated and bound once: a call copies the feeds into the
        bound inputs and runs; the outputs are the bound buffers (copied if copy_outputs)."""
        if self._out_arrays is None:
            return self.run
        import onnxruntime as ort

        binding = self.session.io_binding()
        inputs = {n: np.zeros(shape, dtype) for n, (shape, dtype) in self.input_specs.items()}
        for name, buf in inputs.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(buf))  # shares buf
        outs = [np.empty_like(a) for a in self._out_arrays]  # this runner's own, not the measurement's
        for name, buf in zip(self.output_names, outs):
            binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(buf))

        def run(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
            for name, buf in inputs.items():
                np.copyto(buf, feeds[name], casting="same_kind")
            self.session.run_with_iobinding(binding)
            return [o.copy() for o in outs] if copy_outputs else outs

        return run
