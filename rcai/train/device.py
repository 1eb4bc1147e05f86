"""Where and in what precision a training runs: `--train-device auto|cpu|cuda[:i]` and
`--train-precision auto|fp32|bf16`, parsed and checked once, before anything is written.

The training device is not the deployment target (`--device`): a search trains on a GPU for a Jetson.
The model, optimizer, batches, EMA, the loss's random draws and the quality evaluation live on it.
bf16 is `torch.autocast` around the network's forward pass; the master weights, the optimizer, the
loss and the evaluation stay in fp32. `auto` precision is the faster one per device that keeps
quality within seed noise (benchmarks/results/train_speed.md): bf16 on a CPU with native bf16
instructions (avx512_bf16 / amx_bf16), fp32 elsewhere and on CUDA (bf16 was slower on an H200 at
these sizes: the tiny UNet is launch-bound there).

What repeats (docs/training.md):
- same device kind, same settings: bit for bit on the CPU (every draw is seeded: batches from the
  CPU stream, the loss's draws from a generator seeded by (seed, step)); on CUDA to within its
  kernels' non-determinism (cuDNN picks algorithms; rcai does not force deterministic ones).
- across devices, or fp32 <-> bf16: the data are the same batches, but the loss's draws come from
  another generator (CPU vs CUDA) and the arithmetic differs, so a run resumed elsewhere continues
  as another sample of the same training: equal within seed noise, not bit for bit. Stated
  tolerance: |quality difference| <= 0.1 dB (one subnet's seed-to-seed sd of the quality metric is
  0.05-0.17 dB in results/signal.md); benchmarks/gpu/train.py checks it for a GPU run resumed on
  the CPU, beside the difference a second seed makes.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import torch

from ..errors import RcaiError
from ..precisions import precisions

DEVICES = ("auto", "cpu", "cuda", "cuda:<i>")
_DEVICE = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def check_train_device(text: str) -> str:
    """The syntax of a --train-device value (no hardware asked): auto | cpu | cuda | cuda:<i>."""
    m = _DEVICE.match(str(text).strip().lower()) if isinstance(text, str) else None
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise RcaiError(f"--train-device must be one of {', '.join(DEVICES)}, got {text!r}")
    return m.group(0)


def check_precision(text: str) -> str:
    allowed = ("auto", *precisions("train"))  # rcai/precisions.py: the one table
    if text not in allowed:
        raise RcaiError(f"--train-precision must be one of {', '.join(allowed)}, got {text!r}")
    return text


def cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_train_device(text: str) -> torch.device:
    """auto: the first CUDA GPU if there is one, else the CPU. cuda[:i] without that GPU: RcaiError."""
    name = check_train_device(text)
    n = cuda_count()
    if name == "auto":
        return torch.device("cuda:0" if n else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if n == 0:
        why = "torch built without CUDA" if torch.version.cuda is None else "no CUDA device visible"
        raise RcaiError(f"--train-device {name}: no CUDA GPU here ({why}); use --train-device cpu or auto")
    index = int(name.split(":")[1]) if ":" in name else 0
    if index >= n:
        raise RcaiError(f"--train-device {name}: this machine has {n} CUDA GPU(s) (cuda:0..cuda:{n - 1})")
    return torch.device(f"cuda:{index}")


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Native bf16 arithmetic on this CPU (x86 flags avx512_bf16 or amx_bf16; Linux /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(text: str, device: torch.device) -> str:
    """auto -> bf16 on a CPU with native bf16, fp32 on CUDA and other CPUs; bf16 where the device
    has no bf16 at all is an RcaiError."""
    check_precision(text)
    if text == "auto":
        return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"
    if text == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RcaiError(f"--train-precision bf16: {torch.cuda.get_device_name(device)} has no bf16")
    return text


@dataclass(frozen=True)
class TrainDevice:
    """A resolved training device and precision."""

    device: torch.device
    precision: str  # fp32 | bf16

    @classmethod
    def of(cls, device: str = "auto", precision: str = "auto") -> "TrainDevice":
        d = resolve_train_device(device)
        return cls(d, resolve_precision(precision, d))

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward(self, model: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """model(x, level) in this precision, its output in fp32 (the loss is taken in fp32)."""
        def run(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
            with self.autocast():
                return model(x, level).float()
        return run

    def generator(self) -> torch.Generator:
        return torch.Generator(device=self.device)

    def describe(self) -> dict[str, Any]:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return {"train_device": str(self.device), "device_name": name, "precision": self.precision, "torch": torch.__version__}


def module_device(model: torch.nn.Module) -> torch.device:
    """Where a network's weights are (its evaluation runs there). A module without parameters (an
    ONNX Runtime session behind a module) runs on the CPU."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def step_seed(seed: int, step: int) -> int:
    """The seed of the loss's draws at `step` of a run seeded `seed`: no generator state to carry
    across a resume, whichever device the run continues on."""
    return ((int(seed) & 0xFFFFFFFF) << 32 | (int(step) & 0xFFFFFFFF)) & 0x7FFFFFFFFFFFFFFF


def to_cpu(obj: Any) -> Any:
    """A copy of a (nested) state with every tensor on the CPU: a checkpoint loads on any device."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu")
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj
