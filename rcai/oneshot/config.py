"""What a one-shot supernet training is: a typed config, saved in its run folder."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import JsonConfig, counts_of, require_counts
from ..errors import RcaiError
from ..model.oneshot import SHARING
from ..train.device import check_precision, check_train_device

SAMPLINGS = ("sandwich", "uniform", "fair")


@dataclass(frozen=True)
class SupernetConfig(JsonConfig):
    preset: str = "tiny"
    # The table whose largest and smallest subnets the sandwich rule trains at every step (their
    # choice is the only thing the table decides: the supernet then serves every target's table).
    cost_table: str = "latency_tables/cpu-tiny.csv"
    sharing: str = "shared"  # shared (nested ops share weights, OFA) | independent (own weights per op, SPOS)
    steps: int = 2000  # x 4 uniform paths: about 4.5 trainings of the base (1600 steps), benchmarks/results/oneshot_cost.md
    batch_size: int = 32  # per step, the same batch and draws for every path of the step
    # Which subnets a step trains (rcai/oneshot/train.py step_paths): sandwich (the largest, the smallest, paths - 2 random:
    # BigNAS) | uniform (paths random ones: SPOS) | fair (every choice of every slot once per `paths`: FairNAS)
    sampling: str = "uniform"  # ranked best at 850 steps (train.py's docstring)
    paths: int = 4  # subnets trained per step
    distill: float = 0.0  # in-place distillation: weight of the largest's prediction in the other paths' target (0: the data only; 1 trained 5x slower here, module docstring)
    lr: float = 2e-3  # Adam, constant (as the `cpu` protocol)
    ema: float = 0.998  # the weights evaluated and saved are an EMA (rcai/train/ema.py)
    seed: int = 0
    data_dir: str | None = None
    eval_at: tuple[int, ...] = (400, 800, 1200, 1600, 2000)  # inherited quality of the largest, the base and the smallest is logged here
    ckpt_every: int = 25
    log_every: int = 10
    device: str = "auto"  # the training device (rcai/train/device.py), not a target
    precision: str = "auto"

    def __post_init__(self) -> None:
        require_counts(counts_of(self, "steps", "batch_size", "paths", "ckpt_every", "log_every"))
        if self.sharing not in SHARING:
            raise RcaiError(f"--sharing must be one of {', '.join(SHARING)}, got {self.sharing!r}")
        if self.sampling not in SAMPLINGS:
            raise RcaiError(f"--sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.sampling == "sandwich" and self.paths < 2:
            raise RcaiError(f"--paths must be >= 2 with the sandwich rule (the largest and the smallest subnet), got {self.paths}")
        if self.sampling != "sandwich" and self.distill:
            raise RcaiError("--distill needs --sampling sandwich (its teacher is the largest subnet, trained first at every step)")
        if not (isinstance(self.distill, (int, float)) and 0.0 <= self.distill <= 1.0):
            raise RcaiError(f"--distill must lie in [0, 1], got {self.distill!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise RcaiError(f"--lr must be a positive finite number, got {self.lr!r}")
        if not (isinstance(self.ema, (int, float)) and 0.0 < self.ema < 1.0):
            raise RcaiError(f"--ema must be a decay in (0, 1), got {self.ema!r}")
        if any(not isinstance(s, int) or s < 1 for s in self.eval_at):
            raise RcaiError(f"eval_at must list whole steps >= 1, got {self.eval_at!r}")
        check_train_device(self.device)
        check_precision(self.precision)
