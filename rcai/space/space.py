"""The search space of a preset, read off its supernet (built on the meta device, so even the
report's 475M-parameter supernet costs nothing): slots, their choices, and the ops inside each."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Callable, Iterable, Mapping

import torch
from torch import nn

from ..errors import RcaiError
from ..presets import Preset

Arch = dict[str, str]  # slot path -> chosen op name (active searchable slots only)


@dataclass
class Choice:
    specs: list = field(default_factory=list)  # OpSpecs directly inside this choice
    slots: list["SlotInfo"] = field(default_factory=list)  # nested slots


@dataclass
class SlotInfo:
    path: str
    choices: dict[str, Choice]

    def count(self) -> int:
        return sum(_prod(s.count() for s in c.slots) for c in self.choices.values())


def _prod(xs: Iterable[int]) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


def _walk(module: nn.Module) -> Choice:
    """Collect op specs and searchable slots below `module` (not descending into ops)."""
    from ..model.mixed import FixedOp, MixedOp

    if hasattr(module, "spec"):
        return Choice(specs=[module.spec])
    if isinstance(module, MixedOp):
        return Choice(slots=[SlotInfo(module.path, {n: _walk(op) for n, op in module.ops.items()})])
    out = Choice()
    children = module.ops.values() if isinstance(module, FixedOp) else module.children()
    for child in children:
        sub = _walk(child)
        out.specs += sub.specs
        out.slots += sub.slots
    return out


class SearchSpace:
    def __init__(self, preset: Preset):
        from ..model.unet import UNet

        self.preset = preset
        with torch.device("meta"):
            root = _walk(UNet(preset))
        self.fixed_specs = root.specs  # ops outside searchable slots (stem, down, ..., fixed decoder)
        self.slots = root.slots

    @classmethod
    def of(cls, preset: Preset) -> "SearchSpace":
        """The space of `preset`, built once per preset (reading it off a supernet is not free)."""
        return _space_of(preset)

    # -- counting ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return _prod(s.count() for s in self.slots)

    def factors(self) -> list[tuple[str, int]]:
        """Subnet count per ResNet block (its top-level slots), the report's 9 / 36 factors."""
        blocks: dict[str, int] = {}
        for s in self.slots:
            block = s.path.rsplit(".", 1)[0]
            blocks[block] = blocks.get(block, 1) * s.count()
        return list(blocks.items())

    def all_slots(self) -> list[SlotInfo]:
        out, stack = [], list(self.slots)
        while stack:
            s = stack.pop(0)
            out.append(s)
            for c in s.choices.values():
                stack.extend(c.slots)
        return out

    @cached_property
    def _slot_index(self) -> dict[str, SlotInfo]:
        return {s.path: s for s in self.all_slots()}

    # -- architectures ----------------------------------------------------------------------
    def pick(self, pick: Callable[[SlotInfo], str]) -> Arch:
        """An architecture choosing `pick(slot)` in every active slot, parents before children."""
        arch: Arch = {}
        stack = list(self.slots)
        while stack:
            s = stack.pop(0)
            arch[s.path] = pick(s)
            stack.extend(s.choices[arch[s.path]].slots)
        return arch

    def base_arch(self) -> Arch:
        """The base model: the first candidate of every slot (conv3x3 / attention)."""
        return self.pick(lambda s: next(iter(s.choices)))

    def random_arch(self, rng: random.Random) -> Arch:
        return self.pick(lambda s: rng.choice(list(s.choices)))

    def extreme_arch(self, op_cost: Callable[[object], float], largest: bool) -> tuple[Arch, float]:
        """Largest/smallest subnet under an additive per-op cost (slots are independent)."""
        best_cost: dict[str, float] = {}
        best_pick: dict[str, str] = {}

        def solve(s: SlotInfo) -> float:
            options = {n: sum(map(op_cost, c.specs)) + sum(solve(t) for t in c.slots) for n, c in s.choices.items()}
            name = (max if largest else min)(options, key=options.get)
            best_cost[s.path], best_pick[s.path] = options[name], name
            return options[name]

        total = sum(map(op_cost, self.fixed_specs)) + sum(solve(s) for s in self.slots)
        return self.pick(lambda s: best_pick[s.path]), total

    def validate(self, arch: Mapping[str, str], source: str = "subnet") -> Arch:
        """Check an architecture is complete and names only active slots and known choices."""
        expected = self.pick(lambda s: _lookup(arch, s, source))
        extra = set(arch) - set(expected)
        if extra:
            raise RcaiError(f"{source}: unknown or inactive slots: {', '.join(sorted(extra)[:5])}")
        return expected

    def arch_specs(self, arch: Mapping[str, str]) -> list:
        """Every op of the subnet `arch` (with repetitions), fixed parts included."""
        specs = list(self.fixed_specs)
        for path, name in self.validate(arch).items():
            specs += self._slot_index[path].choices[name].specs
        return specs

    def all_specs(self) -> list:
        """Every distinct op of the supernet, by key, in a stable order."""
        seen: dict[str, object] = {sp.key: sp for sp in self.fixed_specs}
        for s in self.all_slots():
            for c in s.choices.values():
                for sp in c.specs:
                    seen.setdefault(sp.key, sp)
        return list(seen.values())


@lru_cache(maxsize=16)
def _space_of(preset: Preset) -> SearchSpace:
    return SearchSpace(preset)


def _lookup(arch: Mapping[str, str], s: SlotInfo, source: str) -> str:
    if s.path not in arch:
        raise RcaiError(f"{source}: no choice for slot {s.path!r}")
    name = arch[s.path]
    if name not in s.choices:
        raise RcaiError(f"{source}: unknown op {name!r} for slot {s.path!r}; choices: {', '.join(s.choices)}")
    return name
