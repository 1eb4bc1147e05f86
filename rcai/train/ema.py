"""An exponential moving average of a network's weights: the weights a short, noisy run is judged by.

At a constant lr the last weights are one draw from the optimizer's noise around the minimum; their
average over the last few hundred steps is what the run learnt. The decay warms up as
min(decay, (1 + n) / (10 + n)) after n updates, so an early evaluation is not dominated by the init.
"""
from __future__ import annotations

import copy
from typing import Any

import torch


class WeightEMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay!r}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        mine, theirs = list(self.module.state_dict().values()), list(model.state_dict().values())
        floats = [(a, b) for a, b in zip(mine, theirs) if a.is_floating_point()]
        torch._foreach_lerp_([a for a, _ in floats], [b for _, b in floats], 1.0 - d)
        for a, b in zip(mine, theirs):
            if not a.is_floating_point():
                a.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
