"""OpSpec (what an op instance is, with a readable OFA-style key) and the op registry."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ...registry import Registry


@dataclass(frozen=True)
class OpSpec:
    """One op instance in the network: name + input shape + parameters (batch excluded)."""

    op: str
    c_in: int
    c_out: int
    h: int
    w: int
    groups: int = 1  # GroupNorm groups where the op normalises
    emb: int = 0  # noise-embedding width for ops that take it

    @property
    def key(self) -> str:
        """Readable table key, e.g. `conv3x3-c64x64-h64w64-g32`."""
        k = f"{self.op}-c{self.c_in}x{self.c_out}-h{self.h}w{self.w}"
        if self.groups > 1:
            k += f"-g{self.groups}"
        if self.emb:
            k += f"-e{self.emb}"
        return k

    def input_shapes(self, batch: int = 1) -> dict[str, tuple[int, ...]]:
        return get_op(self.op).inputs(self, batch)


def _image_input(spec: OpSpec, batch: int) -> dict[str, tuple[int, ...]]:
    return {"x": (batch, spec.c_in, spec.h, spec.w)}


@dataclass(frozen=True)
class OpDef:
    name: str
    build: Callable[[OpSpec, float], nn.Module]  # (spec, dropout) -> module
    inputs: Callable[[OpSpec, int], dict[str, tuple[int, ...]]] = _image_input
    candidate: bool = False  # may appear as a choice in a GN-conv / ResNet slot
    doc: str = ""


OPS: Registry[OpDef] = Registry("op")
get_op = OPS.get


def register_op(name: str, *, candidate: bool = False, inputs=_image_input):
    """Decorator: `@register_op("conv3x3", candidate=True) def build(spec, dropout) -> nn.Module`."""

    def deco(fn: Callable[[OpSpec, float], nn.Module]):
        OPS.add(name, OpDef(name, fn, inputs, candidate, (fn.__doc__ or "").strip()))
        return fn

    return deco


def list_ops(candidates_only: bool = False) -> list[str]:
    return [n for n, d in OPS.items() if d.candidate or not candidates_only]


def build_op(spec: OpSpec, dropout: float = 0.0) -> nn.Module:
    module = get_op(spec.op).build(spec, dropout)
    module.spec = spec  # every op instance knows what it is: the cost model keys on it
    return module


def norm_groups(channels: int, groups: int) -> int:
    """GroupNorm groups clamped to a divisor of `channels`."""
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return g


def gn_silu(channels: int, groups: int) -> list[nn.Module]:
    return [nn.GroupNorm(norm_groups(channels, groups), channels), nn.SiLU()]


def example_inputs(spec: OpSpec, batch: int = 1, device: str | torch.device = "cpu", seed: int = 0):
    """Random (never zero) inputs for a standalone op, in the op's input order."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(s, generator=g).to(device) for s in spec.input_shapes(batch).values())
