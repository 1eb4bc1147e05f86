"""The one-shot (weight-sharing) supernet's slots: every forward runs ONE subnet (a path), and the
weights of that subnet can be read out as a plain subnet's state_dict, so a subnet extracted from the
supernet computes exactly what the supernet computed on its path.

Two ways to share weights (`SHARING`):
- `independent`: each candidate op of a slot keeps its own weights (single-path one-shot, SPOS):
  the slot's `ops` are the very modules a subnet holds, under the same parameter paths.
- `shared`: ops that nest share one set of weights (OFA's elastic kernel and width): in a GN-conv
  slot, conv3x3 is the centre 3x3 of conv5x5's kernel (conv1x1 its centre tap), narrow3x3's first
  conv the first c/2 output channels of that centre, dwsep3x3 the centre of dwsep5x5's depthwise
  kernel with the same pointwise conv; the GroupNorm in front is one for all of them. An op outside
  these families (skip, attention, an op registered later) keeps its own weights.
A subnet's op is computed by the registered op module itself (`torch.func.functional_call` on a
template built by the registry, with the derived weights), never by a second copy of its code.
"""
from __future__ import annotations

import re
from typing import Callable, Iterator, Mapping

import torch
from torch import nn
from torch.func import functional_call

from ..errors import RcaiError
from .mixed import FixedOp, Slot

SHARING = ("independent", "shared")
_DENSE = re.compile(r"^conv(\d+)x\1$")
_DWSEP = re.compile(r"^dwsep(\d+)x\1$")


class PathSlot(Slot):
    """A slot that runs its active choice only; each choice its own module (independent weights)."""

    def __init__(self, path: str, ops: dict[str, nn.Module]):
        super().__init__(path, ops)
        self.active = next(iter(ops))

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.ops[self.active](*args)

    def subnet_state(self, choice: str) -> Iterator[tuple[str, torch.Tensor]]:
        """(key under the slot, tensor) of the subnet that takes `choice` here (nested slots included)."""
        yield from subnet_tensors(self.ops[choice], f"ops.{choice}.")


def _crop(w: torch.Tensor, k: int) -> torch.Tensor:
    """The centre k x k of a square kernel."""
    lo = (w.shape[-1] - k) // 2
    return w[..., lo:lo + k, lo:lo + k]


class SharedGNConv(Slot):
    """A GN-conv slot whose nesting ops share weights (module docstring). `templates` are the ops as
    the registry builds them (not parameters of this module: only their layout is used)."""

    def __init__(self, path: str, templates: dict[str, nn.Module]):
        nn.Module.__init__(self)
        self.path = path
        self.names = list(templates)
        self.active = self.names[0]
        self._templates = templates  # plain dict: not registered, never trained
        dense = {n: int(m.group(1)) for n in templates if (m := _DENSE.match(n))}
        dws = {n: int(m.group(1)) for n in templates if (m := _DWSEP.match(n))}
        own = [n for n in templates if n not in dense and n not in dws and n not in ("narrow3x3", "skip")]
        self.ops = nn.ModuleDict({n: templates[n] for n in own})  # ops outside the families: independent
        convs = {n: [m for m in t.modules() if isinstance(m, nn.Conv2d)] for n, t in templates.items()}
        norms = [next(m for m in templates[n].modules() if isinstance(m, nn.GroupNorm)) for n in templates if n in dense or n in dws or n == "narrow3x3"]
        self.norm = nn.GroupNorm(norms[0].num_groups, norms[0].num_channels) if norms else None
        self.dense_k = max(list(dense.values()) + ([3] if "narrow3x3" in templates else []), default=0)
        if self.dense_k:  # the largest dense op's own init, so it starts as a network trained from scratch does
            first = max(dense, key=dense.get) if dense and max(dense.values()) == self.dense_k else None
            src = convs[first][0] if first else nn.Conv2d(*_chw(convs["narrow3x3"][0], templates["narrow3x3"]), self.dense_k, padding=self.dense_k // 2)
            self.dense_w, self.dense_b = nn.Parameter(src.weight.detach().clone()), nn.Parameter(src.bias.detach().clone())
        if "narrow3x3" in templates:
            out = convs["narrow3x3"][1]
            self.narrow_w, self.narrow_b = nn.Parameter(out.weight.detach().clone()), nn.Parameter(out.bias.detach().clone())
        if dws:
            top = max(dws, key=dws.get)
            dw, pw = convs[top]
            self.dw_w, self.dw_b = nn.Parameter(dw.weight.detach().clone()), nn.Parameter(dw.bias.detach().clone())
            self.pw_w, self.pw_b = nn.Parameter(pw.weight.detach().clone()), nn.Parameter(pw.bias.detach().clone())
        self._derived = {"narrow3x3": ("narrow", 3), **{n: ("dense", k) for n, k in dense.items()}, **{n: ("dwsep", k) for n, k in dws.items()}}

    @property
    def choices(self) -> list[str]:
        return list(self.names)

    # -- the derived weights of each op -----------------------------------------------------
    def _dense(self, k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(_crop(self.dense_w, k), self.dense_b)]

    def _narrow(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        mid = self.narrow_w.shape[1]
        return [(_crop(self.dense_w, 3)[:mid], self.dense_b[:mid]), (self.narrow_w, self.narrow_b)]

    def _dwsep(self, k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(_crop(self.dw_w, k), self.dw_b), (self.pw_w, self.pw_b)]

    def op_state(self, choice: str) -> dict[str, torch.Tensor]:
        """The template's state_dict keys of `choice` -> the shared tensors (differentiable views)."""
        if choice in self.ops:
            return dict(self.ops[choice].state_dict(keep_vars=True))
        if choice not in self._derived:
            return {}  # skip: no weights
        family, k = self._derived[choice]  # (no bound methods stored: a deepcopy, the EMA's, must read its own tensors)
        convs = iter({"dense": self._dense, "narrow": lambda _: self._narrow(), "dwsep": self._dwsep}[family](k))
        out: dict[str, torch.Tensor] = {}
        for name, m in self._templates[choice].named_modules():
            if isinstance(m, nn.GroupNorm):
                out[f"{name}.weight"], out[f"{name}.bias"] = self.norm.weight, self.norm.bias
            elif isinstance(m, nn.Conv2d):
                out[f"{name}.weight"], out[f"{name}.bias"] = next(convs)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.active in self.ops:
            return self.ops[self.active](x)
        template = self._templates[self.active]
        template.train(self.training)  # dropout follows the supernet's mode
        return functional_call(template, self.op_state(self.active), (x,))

    def subnet_state(self, choice: str) -> Iterator[tuple[str, torch.Tensor]]:
        for k, v in self.op_state(choice).items():
            yield f"ops.{choice}.{k}", v


def _chw(conv: nn.Conv2d, template: nn.Module) -> tuple[int, int]:
    """(c_in, c_out) of a dense conv at full width, for narrow3x3 alone (no dense op in the slot)."""
    return conv.in_channels, template.spec.c_out


ONE_SHOT = (PathSlot, SharedGNConv)


def subnet_tensors(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """The state of the subnet a one-shot module runs now (each slot's active choice), keyed as the
    subnet's own state_dict: plain parameters and buffers as they are, slots through `subnet_state`."""
    if isinstance(module, ONE_SHOT):
        for k, v in module.subnet_state(module.active):
            yield prefix + k, v
        return
    for k, v in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
        yield prefix + k, v
    for name, child in module.named_children():
        yield from subnet_tensors(child, f"{prefix}{name}.")


def one_shot_slots(model: nn.Module) -> list[Slot]:
    return [m for m in model.modules() if isinstance(m, ONE_SHOT)]


def set_path(model: nn.Module, arch: Mapping[str, str]) -> None:
    """Make every slot run `arch`'s choice (slots inactive in `arch` keep theirs: they do not run)."""
    for slot in one_shot_slots(model):
        if slot.path in arch:
            if arch[slot.path] not in slot.choices:
                raise RcaiError(f"subnet: unknown op {arch[slot.path]!r} for slot {slot.path!r}; choices: {', '.join(slot.choices)}")
            slot.active = arch[slot.path]


class OneShotSlotMaker:
    """The UNet's slot factory for a one-shot supernet (rcai/model/unet.py SlotMaker's contract)."""

    def __init__(self, sharing: str = "shared", gnconv_ops: tuple[str, ...] = ()):
        if sharing not in SHARING:
            raise RcaiError(f"weight sharing must be one of {', '.join(SHARING)}, got {sharing!r}")
        self.sharing, self.gnconv_ops = sharing, tuple(gnconv_ops)

    def __call__(self, path: str, candidates: dict[str, Callable[[], nn.Module]], searchable: bool) -> Slot:
        if not searchable:
            name = next(iter(candidates))
            return FixedOp(path, name, candidates[name]())
        ops = {n: f() for n, f in candidates.items()}
        if self.sharing == "shared" and tuple(ops) == self.gnconv_ops:
            return SharedGNConv(path, ops)
        return PathSlot(path, ops)
