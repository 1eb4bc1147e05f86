"""SR3-style UNet whose searchable parts are slots: a supernet (MixedOp everywhere) or a subnet
(FixedOp with the chosen op) from the same code, so both share parameter paths.

Layout (L = len(channel_mults)), every box an op from the registry:
  noise_embed(sqrt(gamma)) -> emb
  stem(concat(LR-up, y_t)) -> enc[0] .. enc[L-1] (ResBlocks, `down` between levels)
  dec[L-1] .. dec[0] (`up`, `merge` with the encoder feature of that level, ResBlocks) -> head -> eps
ResBlock(x, emb) = x + mix?(conv2(film(conv1(x), emb))), conv1/conv2 GN-conv slots, `mix` the
ResNet multi-op slot {attention, gnconv (a nested GN-conv slot)} from `attn_from_depth` on.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

from ..errors import RcaiError
from ..presets import NetworkConfig, Preset
from .mixed import FixedOp, MixedOp, Slot
from .ops import OpSpec, build_op

Factory = Callable[[], nn.Module]


class SlotMaker:
    """Builds each slot as the supernet's MixedOp (arch=None) or the subnet's FixedOp (arch given).
    Slots outside the searchable part are always FixedOp with the base (first) choice."""

    def __init__(self, arch: Mapping[str, str] | None, softmax: str = "simple"):
        self.arch = arch
        self.softmax = softmax
        self.used: set[str] = set()

    def __call__(self, path: str, candidates: dict[str, Factory], searchable: bool) -> Slot:
        if not searchable:
            name = next(iter(candidates))
            return FixedOp(path, name, candidates[name]())
        if self.arch is None:
            return MixedOp(path, {n: f() for n, f in candidates.items()}, self.softmax)
        if path not in self.arch:
            raise RcaiError(f"subnet: no choice for slot {path!r}")
        name = self.arch[path]
        if name not in candidates:
            raise RcaiError(f"subnet: unknown op {name!r} for slot {path!r}; choices: {', '.join(candidates)}")
        self.used.add(path)
        return FixedOp(path, name, candidates[name]())


class ResBlock(nn.Module):
    def __init__(self, p: NetworkConfig, dropout: float, depth: int, path: str, searchable: bool, make: SlotMaker):
        super().__init__()
        c = p.channels(depth)
        res = p.resolution(depth)

        def spec(op: str) -> OpSpec:
            return OpSpec(op, c, c, res, res, groups=p.groups)

        def gnconv_slot(slot_path: str) -> Factory:
            return lambda: make(slot_path, {op: (lambda op=op: build_op(spec(op), dropout)) for op in p.gnconv_ops}, searchable)

        self.conv1 = gnconv_slot(f"{path}.conv1")()
        self.film = build_op(OpSpec("film", c, c, res, res, emb=p.emb_dim))
        self.conv2 = gnconv_slot(f"{path}.conv2")()
        self.mix = None
        if depth >= p.attn_from_depth:
            mix_path = f"{path}.mix"
            candidates = {
                op: gnconv_slot(f"{mix_path}.ops.gnconv") if op == "gnconv" else (lambda op=op: build_op(spec(op), dropout))
                for op in p.resnet_ops
            }
            self.mix = make(mix_path, candidates, searchable)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv2(self.film(self.conv1(x), emb))
        if self.mix is not None:
            h = self.mix(h)
        return x + h


class Level(nn.Module):
    def __init__(self, blocks: list[ResBlock], down=None, up=None, merge=None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.down, self.up, self.merge = down, up, merge


class UNet(nn.Module):
    """The denoiser eps(concat(LR-up, y_t), sqrt(gamma)). `arch=None` builds the DARTS supernet;
    `make` another slot factory (the one-shot supernet's, rcai/model/oneshot.py)."""

    def __init__(self, preset: Preset, arch: Mapping[str, str] | None = None, softmax: str = "simple", make: Callable[..., Slot] | None = None):
        super().__init__()
        self.preset = preset
        p, dropout = preset.network, preset.recipe.dropout  # the model reads the network part alone (and the dropout rate)
        make = make or SlotMaker(arch, softmax)
        L = p.levels
        c0, hr = p.base_channels, p.hr_size
        self.noise = build_op(OpSpec("noise_embed", c0, p.emb_dim, 1, 1))
        self.stem = build_op(OpSpec("stem", 6, c0, hr, hr))
        enc = []
        for d in range(L):
            blocks = [ResBlock(p, dropout, d, f"enc.{d}.blocks.{b}", True, make) for b in range(p.res_blocks)]
            res = p.resolution(d)
            down = build_op(OpSpec("down", p.channels(d), p.channels(d + 1), res, res)) if d < L - 1 else None
            enc.append(Level(blocks, down=down))
        self.enc = nn.ModuleList(enc)
        dec = []
        for d in range(L):
            res = p.resolution(d)
            blocks = [ResBlock(p, dropout, d, f"dec.{d}.blocks.{b}", p.search_decoder, make) for b in range(p.res_blocks)]
            up = merge = None
            if d < L - 1:
                half = p.resolution(d + 1)
                up = build_op(OpSpec("up", p.channels(d + 1), p.channels(d), half, half))
                merge = build_op(OpSpec("merge", p.channels(d), p.channels(d), res, res))
            dec.append(Level(blocks, up=up, merge=merge))
        self.dec = nn.ModuleList(dec)
        self.head = build_op(OpSpec("head", c0, 3, hr, hr, groups=p.groups))
        if arch is not None:
            extra = set(arch) - make.used
            if extra:
                raise RcaiError(f"subnet: unknown or inactive slots {sorted(extra)[:5]}")

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        emb = self.noise(noise_level)
        h = self.stem(x)
        skips = []
        for level in self.enc:
            for block in level.blocks:
                h = block(h, emb)
            skips.append(h)
            if level.down is not None:
                h = level.down(h)
        for d in reversed(range(len(self.dec))):
            level = self.dec[d]
            if level.up is not None:
                h = level.merge(level.up(h), skips[d])
            for block in level.blocks:
                h = block(h, emb)
        return self.head(h)

    # -- architecture helpers -------------------------------------------------------------
    def mixed_ops(self) -> list[MixedOp]:
        return [m for m in self.modules() if isinstance(m, MixedOp)]

    def arch_parameters(self) -> list[nn.Parameter]:
        return [m.alpha for m in self.mixed_ops()]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(a) for a in self.arch_parameters()}
        return [q for q in self.parameters() if id(q) not in arch]

    def set_softmax(self, name: str) -> None:
        from .mixed import get_softmax

        get_softmax(name)  # validate
        for m in self.mixed_ops():
            m.softmax = name

    def set_temperature(self, tau: float) -> None:
        for m in self.mixed_ops():
            m.tau = tau
