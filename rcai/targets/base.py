"""The target (backend) interface: prepare a model, run it, time it, say what it ran on.

    target = get_target("onnxruntime", threads=2)
    prepared = target.prepare("op.onnx", {"x": ((1, 64, 32, 32), "float32")})
    outputs = prepared.run({"x": array})             # list of numpy arrays
    stats = prepared.measure(MeasureConfig())        # TimingStats (ms)
    prepared.info()                                  # TargetInfo: device, versions, precision...

A `Prepared` splits one call into `stage(feeds)` (outside the timed region: bind buffers, copy to
the device) and `execute(staged)` (the timed part); `measure` cycles through a pool of staged
random inputs with the generic loop in `measure.py`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from ..config import JsonConfig
from .inputs import Specs, check_feeds, make_input_pool, onnx_path  # noqa: F401  (onnx_path: re-exported)
from .measure import measure_loop, perf_counter_timer
from .timing import MeasureConfig, Timer, TimingStats  # noqa: F401  (re-exported)



@dataclass
class TargetInfo(JsonConfig):
    """What a measurement ran on. device: 'cpu' | 'cuda:0' | ...; device_model: CPU model string
    or GPU name; precision: 'fp32' | 'fp16' | ...; threads: None where it does not apply."""

    device: str
    device_model: str
    backend: str
    backend_version: str
    precision: str
    threads: int | None
    host: str



class Prepared(ABC):
    """A model ready to run on a target with fixed input shapes (`input_specs`)."""

    def __init__(self, target: "Target", input_specs: Specs):
        self.target = target
        self.input_specs = input_specs

    @abstractmethod
    def info(self) -> TargetInfo:
        """What this model runs on, with the model's precision."""

    def stage(self, feeds: Mapping[str, np.ndarray]) -> Any:
        """Everything that must happen before the timed call (bind buffers, copy to device)."""
        return check_feeds(self.input_specs, feeds, self.target.name)

    @abstractmethod
    def execute(self, staged: Any) -> object:
        """The timed part: one inference on staged inputs (results may stay on the device)."""

    @abstractmethod
    def outputs(self, result: object) -> list[np.ndarray]:
        """Numpy copies of the outputs of the `execute` call that returned `result`."""

    def timer(self) -> Timer:
        """How one call is timed; CUDA targets override with events or synchronisation."""
        return perf_counter_timer

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """One inference: dict of numpy inputs -> list of numpy outputs (in the model's order)."""
        return self.outputs(self.execute(self.stage(feeds)))

    def runner(self, copy_outputs: bool = True) -> Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]:
        """`run` for many calls in a row (a sampling loop). Targets may bind their buffers once
        (ONNX Runtime's IO binding); with copy_outputs=False the returned arrays may be the bound
        buffers themselves, overwritten by the next call."""
        return self.run

    def device_runner(self, capturable: bool = False) -> Callable[..., Any] | None:
        """For a loop on the model's device (rcai.diffusion.device_loop): a callable taking the
        inputs as float32 torch tensors on `device` and returning the first output the same way;
        None where the target runs no torch (ONNX targets). capturable: a form that can itself be
        captured inside a larger CUDA graph (no replay of the target's own graph)."""
        return None

    device: Any = None  # the torch device of device_runner()'s tensors (torch targets)

    def measure(self, cfg: MeasureConfig = MeasureConfig(), seed: int = 0) -> TimingStats:
        """Latency statistics over a pool of `cfg.input_pool` random input sets (see MeasureConfig)."""
        pool = make_input_pool(self.input_specs, cfg.input_pool, seed)
        staged = [self.stage(feeds) for feeds in pool]
        return measure_loop(self.execute, staged, cfg, timer=self.timer())


class Target(ABC):
    """A backend. Subclasses are registered with `@register_target(name)`; their keyword
    settings (threads, fp16, host...) are their __init__ arguments."""

    name: ClassVar[str] = "?"
    takes_onnx: ClassVar[bool] = True  # False: prepare() takes an nn.Module (the torch target)
    local: ClassVar[bool] = True  # False: it runs on another machine (the remote target)
    int8: ClassVar[bool] = False  # True: prepares ONNX Runtime's statically quantized graphs (--precision int8)

    def computes_on_calling_thread(self) -> bool:
        """True where a call's work is the calling thread's CPU time (a CPU target with one thread)."""
        return False

    @abstractmethod
    def info(self, precision: str | None = None) -> TargetInfo:
        """Device, backend and version, threads and host. Precision: `precision` if given (a
        prepared model's), else the target's own setting where it has one, else 'fp32'."""

    @abstractmethod
    def prepare(self, model: Any, input_specs: Mapping[str, Any] | None = None) -> Prepared:
        """Load/build `model` (an ONNX path; an nn.Module for the torch target) for fixed
        input shapes {name: (shape, dtype)}. ONNX targets read them from the file if omitted."""

    def prepare_module(
        self, module: Any, inputs: Sequence[Any], names: Sequence[str], path: str | Path,
        output_names: Sequence[str] = ("y",), reuse: bool = False,
    ) -> Prepared:
        """A torch module ready on this target for inputs like the tensors `inputs` (named `names`):
        its ONNX export at `path` prepared (ONNX targets, remote ones too; `reuse`: a file already at
        `path` is taken as this module's export), or the module itself where the target runs torch."""
        if not self.takes_onnx:
            return self.prepare(module, {n: (tuple(t.shape), str(t.dtype).removeprefix("torch.")) for n, t in zip(names, inputs)})
        if not (reuse and Path(path).is_file()):
            from ..onnx_export import export_onnx

            export_onnx(module, inputs, names, path, output_names)
        return self.prepare(Path(path))

    def measure_many(
        self, items: Sequence[tuple[Any, Mapping[str, Any] | None]], cfg: MeasureConfig = MeasureConfig(), seed: int = 0
    ) -> list[TimingStats]:
        """Measure several (model, input_specs) pairs; remote targets do it in one round trip."""
        return [self.prepare(model, specs).measure(cfg, seed) for model, specs in items]

    def settings(self) -> dict[str, Any]:
        """The settings this target was created with (JSON-able), to re-create it elsewhere."""
        return dict(getattr(self, "_settings", {}))

    def host_facts(self) -> dict[str, Any]:
        """What the measuring machine is beyond TargetInfo (a remote host's platform, a Jetson's
        power mode), for the metadata; {} where there is nothing more to say."""
        return {}
