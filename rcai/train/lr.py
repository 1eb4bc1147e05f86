"""Learning-rate schedules, registered by name; the lr is a pure function of the step, so a resumed
run continues on the same curve without any scheduler state in the checkpoint.

`cosine` (the default) decays to 0 at the last step. With a constant lr, the weights a short run
ends on are one draw from the optimizer's noise around the minimum: at lr 2e-3 and batch 8 that
noise moved the quality metric of one subnet by up to 0.2 dB between seeds, more than many
architecture differences. Decaying the lr averages it out (see benchmarks/results/search_pareto.md).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import RcaiError

LR_SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "constant": lambda step, steps: 1.0,
    "cosine": lambda step, steps: 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / steps)),
}


def check_lr_schedule(name: str) -> str:
    if name not in LR_SCHEDULES:
        raise RcaiError(f"lr schedule must be one of {tuple(LR_SCHEDULES)}, got {name!r}")
    return name


def set_lr(opt: torch.optim.Optimizer, base_lr: float, schedule: str, step: int, steps: int) -> float:
    """Set every group's lr for the update that follows `step` (0-based) of `steps`; returns it."""
    lr = base_lr * LR_SCHEDULES[check_lr_schedule(schedule)](step, steps)
    for group in opt.param_groups:
        group["lr"] = lr
    return lr
