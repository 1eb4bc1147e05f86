"""Multi-Operation (mixed) blocks: a weighted sum of candidate ops, weights = f(alpha).

`MixedOp` is a slot of the supernet; `FixedOp` is the same slot in a subnet, holding only the chosen
op under the same parameter path (`<slot>.ops.<name>.*`), so a subnet's state_dict is a subset of
the supernet's and extraction is a plain copy of tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Registry

WeightFn = Callable[[torch.Tensor, float], torch.Tensor]
SOFTMAX: Registry[WeightFn] = Registry("softmax")
register_softmax = SOFTMAX.register
get_softmax = SOFTMAX.get
list_softmax = SOFTMAX.names


@register_softmax("simple")
def simple_softmax(alpha: torch.Tensor, tau: float) -> torch.Tensor:
    return torch.softmax(alpha, dim=-1)


@register_softmax("temperature")
def temperature_softmax(alpha: torch.Tensor, tau: float) -> torch.Tensor:
    return torch.softmax(alpha / tau, dim=-1)


@register_softmax("gumbel")
def gumbel_softmax(alpha: torch.Tensor, tau: float) -> torch.Tensor:
    return F.gumbel_softmax(alpha, tau=tau, hard=False, dim=-1)


@register_softmax("gdas")
def gdas_softmax(alpha: torch.Tensor, tau: float) -> torch.Tensor:
    """Single path (GDAS, Dong & Yang 2019): a one-hot Gumbel-max sample in the forward pass, the
    Gumbel-softmax gradient in the backward pass (straight-through). Only the sampled op runs, so the
    supernet trains the ops a subnet will use and the discretisation gap closes."""
    return F.gumbel_softmax(alpha, tau=tau, hard=True, dim=-1)


gdas_softmax.single_path = True  # type: ignore[attr-defined]


@register_softmax("paired")
def paired_sample(alpha: torch.Tensor, tau: float) -> torch.Tensor:
    """Single path sampled from softmax(alpha), without a gradient: the search scores paths by
    their loss instead (leave-one-out REINFORCE over two paths on the same batch and noise, see
    rcai/search/strategies/darts/engine.py). Unlike GDAS's straight-through gradient, which tells whether scaling the
    sampled op's output up would help, the paired difference compares ops with each other."""
    n = alpha.shape[-1]
    k = torch.multinomial(torch.softmax(alpha.detach(), dim=-1).reshape(-1, n), 1).reshape(alpha.shape[:-1])
    return F.one_hot(k, n).to(alpha.dtype)


paired_sample.single_path = True  # type: ignore[attr-defined]
paired_sample.score_function = True  # type: ignore[attr-defined]


@dataclass(frozen=True)
class TanhTemperature:
    """The report's eq. 8 temperature decay, over `width` steps from `max` down to `min`.

    Eq. 8 as printed, (1 - tanh(3(x - w/2)/(w/2))) * (max - min)/2 - min, ends near -0.03 for
    max=20, min=0.08: negative temperatures are meaningless and Fig. 4.5 plots a curve from max down
    to min. We implement the plotted curve, i.e. `+ min` instead of `- min`:
    tau(0) = 19.95, tau(w/2) = 10.04, tau(w) = 0.129 for the report's values.
    """

    max: float = 20.0
    min: float = 0.08
    width: int = 100

    def __call__(self, step: int) -> float:
        half = self.width / 2
        return (1 - math.tanh(3 * (step - half) / half)) * (self.max - self.min) / 2 + self.min


class Slot(nn.Module):
    """Common part of MixedOp and FixedOp: a named choice among candidate ops."""

    def __init__(self, path: str, ops: dict[str, nn.Module]):
        super().__init__()
        self.path = path
        self.ops = nn.ModuleDict(ops)

    @property
    def choices(self) -> list[str]:
        return list(self.ops.keys())


class MixedOp(Slot):
    """Supernet slot: sum_i f(alpha)_i * op_i(x). The weights of the last forward are kept in
    `last_weights` so the expected cost uses the very weights the data saw (Gumbel noise included)."""

    def __init__(self, path: str, ops: dict[str, nn.Module], softmax: str = "simple"):
        super().__init__(path, ops)
        self.alpha = nn.Parameter(torch.zeros(len(ops)))
        self.softmax = softmax
        self.tau = 1.0
        self.last_weights: torch.Tensor | None = None
        self.last_choice: int | None = None  # the op a single-path forward ran

    def weights(self) -> torch.Tensor:
        return get_softmax(self.softmax)(self.alpha, self.tau)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        w = self.weights()
        self.last_weights = w
        if getattr(get_softmax(self.softmax), "single_path", False):
            k = self.last_choice = int(torch.argmax(w.detach()))
            return w[k] * list(self.ops.values())[k](*args)  # w[k] is 1 with the soft gradient
        out = None
        for wi, op in zip(w, self.ops.values()):
            y = wi * op(*args)
            out = y if out is None else out + y
        return out

    def argmax(self) -> str:
        return self.choices[int(torch.argmax(self.alpha.detach()))]


class FixedOp(Slot):
    """Subnet slot: exactly one op, no architecture parameter."""

    def __init__(self, path: str, name: str, op: nn.Module):
        super().__init__(path, {name: op})
        self.choice = name

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.ops[self.choice](*args)
