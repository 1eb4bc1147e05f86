"""The training protocol every quality figure is judged by: how a subnet is trained from scratch
before its quality is read, and how far (rungs) it is trained at once.

A constant lr with an EMA of the weights (rcai/train/ema.py) makes a run extendable: training a
subnet to 400 steps and later on to 1600 is the 1600-step run, so a multi-fidelity search pays for
each step once. Protocols are registered by name, one per compute class:
- `signal`: batch 8, 1600 steps (`SIGNAL`; results/signal.md at commit 4fbf0a3, fp32 on one CPU thread);
- `cpu`: batch 32, 1600 steps: 4x the samples, trained in bf16 where the CPU has it (1.7x the
  samples per second of fp32 at batch 8 on one thread; results/train_speed.md, results/signal.md);
- `gpu`: batch 32, 4800 steps (minutes on one GPU; results/gpu_train.md).
`for_device` picks the protocol of a training device.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import JsonConfig
from ..errors import RcaiError
from ..io import read_json
from ..registry import Registry
from ..space.subnet import SubnetSpec
from .evaluate import EvalConfig
from .job import TrainJob
from .rundir import RunDir
from .trainer import TrainConfig


@dataclass(frozen=True)
class TrainProtocol(JsonConfig):
    steps: int = 1600
    batch_size: int = 8
    lr: float = 2e-3
    lr_schedule: str = "constant"
    ema: float = 0.998
    eval_at: tuple[int, ...] = (200, 400, 800, 1200, 1600)  # learning curve / rungs (empty: no curve)

    def __post_init__(self) -> None:
        if self.eval_at and self.steps not in self.eval_at:
            raise RcaiError(f"the protocol's last step {self.steps} must be one of its eval_at {self.eval_at}")

    def upto(self, steps: int) -> "TrainProtocol":
        """The same protocol stopped at `steps` (a rung): extendable to the full one."""
        return replace(self, steps=steps, eval_at=tuple(s for s in self.eval_at if s <= steps))


PROTOCOLS: Registry[TrainProtocol] = Registry("training protocol")
SIGNAL = PROTOCOLS.add("signal", TrainProtocol())
CPU = PROTOCOLS.add("cpu", TrainProtocol(steps=1600, batch_size=32, eval_at=(400, 800, 1200, 1600)))
GPU = PROTOCOLS.add("gpu", TrainProtocol(steps=4800, batch_size=32, eval_at=(1200, 2400, 3600, 4800)))


def train_job(protocol: TrainProtocol, out: str | Path, *, preset: str, seed: int = 0, device: str = "auto", precision: str = "auto",
              eval: EvalConfig | None = None, subnet: str | Path | None = None, init: str | Path | None = None,
              data_dir: str | None = None, resume: bool | None = None, progress: bool = False, final_eval: bool = True,
              **every: int) -> TrainJob:
    """The one way a TrainJob is built: `protocol`'s steps, batch, lr, schedule, EMA and curve
    (eval_at) for the subnet.json `subnet` (None: the base model) of `preset`, from scratch or from
    the weights `init`, on `device` in `precision`, into the run folder `out`. `every`: ckpt_every,
    log_every (how often it checkpoints and logs; TrainConfig's defaults)."""
    cfg = TrainConfig(preset=preset, subnet=None if subnet is None else str(subnet), init=None if init is None else str(init),
                      steps=protocol.steps, batch_size=protocol.batch_size, lr=protocol.lr, lr_schedule=protocol.lr_schedule,
                      ema=protocol.ema, eval_at=protocol.eval_at, seed=seed, data_dir=data_dir,
                      eval=eval if eval is not None else EvalConfig(), device=device, precision=precision, **every)
    return TrainJob(cfg, str(out), resume=resume, progress=progress, final_eval=final_eval)


def for_device(train_device: str) -> TrainProtocol:
    """The protocol of a training device (`auto`: of the device it resolves to here)."""
    from .device import resolve_train_device

    return GPU if resolve_train_device(train_device).type == "cuda" else CPU


def train_to(spec: SubnetSpec, seed: int, run: str | Path, protocol: TrainProtocol, steps: int | None = None, data_dir: str | None = None,
             samples: bool = True, device: str = "auto", precision: str = "auto") -> dict[str, Any]:
    """Train `spec` from scratch with `protocol` up to `steps` (default: all of it) in `run`,
    continuing what the folder already holds (a killed run, or an earlier rung); returns the
    run's metrics (`samples=False`: the primary metric only, no sampled PSNR/SSIM)."""
    return protocol_job(spec, seed, run, protocol, steps, data_dir, samples, device, precision).run()


def protocol_job(spec: SubnetSpec, seed: int, run: str | Path, protocol: TrainProtocol, steps: int | None = None, data_dir: str | None = None,
                 samples: bool = True, device: str = "auto", precision: str = "auto") -> TrainJob:
    """The TrainJob of `train_to` (its folder is run/train, run/subnet.json the subnet; the training
    reads its copy in run/train, a path stored relative to its folder: a moved run resumes)."""
    stop = protocol.steps if steps is None else steps
    if stop not in protocol.eval_at:
        raise RcaiError(f"rung {stop} is not one of the protocol's eval_at steps {protocol.eval_at}")
    p = protocol.upto(stop)
    run = Path(run)
    subnet = _subnet_file(run)
    (run / "train").mkdir(parents=True, exist_ok=True)
    for path in {run / "subnet.json", subnet}:
        if not path.exists():
            spec.save(path)
    return train_job(p, run / "train", preset=spec.preset.name, subnet=subnet, seed=seed, data_dir=data_dir, device=device, precision=precision,
                     eval=EvalConfig(steps=20, max_images=4 if samples else 0, seed=0))


def rung_qualities(executor: Any, runs: list[tuple[SubnetSpec, str | Path]], protocol: TrainProtocol, rung: int, seed: int,
                   device: str = "auto", precision: str = "auto") -> list[float]:
    """Quality (dB) of each (subnet, run folder) trained with `protocol` up to `rung` steps (primary
    metric only): the runs whose curve lacks the rung are trained on (or from scratch) at once on
    `executor` (rcai/search/executors.py), each resuming its folder; the rest are read back."""
    todo = [(spec, run) for spec, run in runs if rung not in curve(run)]
    jobs = [protocol_job(spec, seed, run, protocol, rung, samples=False, device=device, precision=precision) for spec, run in todo]
    list(executor.train(jobs))
    return [curve(run)[rung] for _, run in runs]


def _subnet_file(run: Path) -> Path:
    """The subnet.json a training reads: its copy in run/train; for a training started before there
    was one (its config names run/subnet.json by the old path), that one, so it resumes where it is."""
    started = run / "train" / "config.json"
    old = started.exists() and read_json(started, expect=dict).get("subnet") != "subnet.json"
    return run / "subnet.json" if old else run / "train" / "subnet.json"


def curve(run: str | Path) -> dict[int, float]:
    """step -> quality (dB) logged by a run folder's evaluations."""
    return {int(r["step"]): float(r["quality"]) for r in RunDir(Path(run) / "train").read_log() if "quality" in r}
