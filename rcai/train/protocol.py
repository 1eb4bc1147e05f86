"""The training protocol every quality figure is judged by: how a subnet is trained from scratch
before its quality is read, and how far (rungs) it is trained at once.

A constant lr with an EMA of the weights (rcai/train/ema.py) makes a run extendable: training a
subnet to 400 steps and later on to 1600 is the 1600-step run, so a multi-fidelity search pays for
each step once. `SIGNAL` is the protocol chosen by benchmarks/training_signal.py (results/signal.md), where
architectures differ by more than the seed-to-seed noise of one architecture.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import JsonConfig
from ..errors import RcaiError
from ..io import read_json
from ..space.subnet import SubnetSpec
from .evaluate import EvalConfig
from .rundir import RunDir


@dataclass(frozen=True)
class TrainProtocol(JsonConfig):
    steps: int = 1600
    batch_size: int = 8
    lr: float = 2e-3
    lr_schedule: str = "constant"
    ema: float = 0.998
    eval_at: tuple[int, ...] = (200, 400, 800, 1200, 1600)  # learning curve / rungs

    def __post_init__(self) -> None:
        if self.steps not in self.eval_at:
            raise RcaiError(f"the protocol's last step {self.steps} must be one of its eval_at {self.eval_at}")

    def upto(self, steps: int) -> "TrainProtocol":
        """The same protocol stopped at `steps` (a rung): extendable to the full one."""
        return replace(self, steps=steps, eval_at=tuple(s for s in self.eval_at if s <= steps))


SIGNAL = TrainProtocol()


def train_to(spec: SubnetSpec, seed: int, run: str | Path, protocol: TrainProtocol, steps: int | None = None, data_dir: str | None = None,
             samples: bool = True) -> dict[str, Any]:
    """Train `spec` from scratch with `protocol` up to `steps` (default: all of it) in `run`,
    continuing what the folder already holds (a killed run, or an earlier rung); returns the
    run's metrics (`samples=False`: the primary metric only, no sampled PSNR/SSIM). One torch
    thread: trainings run side by side."""
    import torch

    from .trainer import TrainConfig, train

    torch.set_num_threads(1)
    stop = protocol.steps if steps is None else steps
    if stop not in protocol.eval_at:
        raise RcaiError(f"rung {stop} is not one of the protocol's eval_at steps {protocol.eval_at}")
    p = protocol.upto(stop)
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "subnet.json").exists():
        spec.save(run / "subnet.json")
    cfg = TrainConfig(preset=spec.preset.name, subnet=str(run / "subnet.json"), steps=p.steps, batch_size=p.batch_size, lr=p.lr,
                      lr_schedule=p.lr_schedule, ema=p.ema, eval_at=p.eval_at, seed=seed, data_dir=data_dir, eval=EvalConfig(steps=20, max_images=4 if samples else 0, seed=0))
    done = RunDir(run / "train")
    if done.file("metrics.json").exists():
        # finished at this rung only if its metrics and its log's evaluation say so: config.json names the
        # next rung's steps as soon as an extension starts, before a step of it is trained
        metrics = read_json(done.file("metrics.json"), expect=dict)
        if metrics.get("train_steps") == p.steps and p.steps in curve(run):
            return metrics
    return train(cfg, run / "train", resume=done.file("config.json").exists(), progress=False)


def curve(run: str | Path) -> dict[int, float]:
    """step -> quality (dB) logged by a run folder's evaluations."""
    return {int(r["step"]): float(r["quality"]) for r in RunDir(Path(run) / "train").read_log() if "quality" in r}
