"""What `rcai space` prints: slots, choices, subnet count, params and FLOPs of supernet and extremes."""
from __future__ import annotations

from typing import Any

from ..presets import Preset
from ..space.space import SearchSpace
from .counters import op_flops, op_params


def space_summary(preset: Preset) -> dict[str, Any]:
    space = SearchSpace.of(preset)
    every_op = list(space.fixed_specs) + [sp for s in space.all_slots() for c in s.choices.values() for sp in c.specs]
    out: dict[str, Any] = {
        "preset": preset.name,
        "preset_hash": preset.hash,
        "subnets": space.size,
        "blocks": [{"block": b, "subnets": n} for b, n in space.factors()],
        "slots": [{"slot": s.path, "choices": list(s.choices), "subnets": s.count()} for s in space.all_slots()],
        "supernet": {"params": sum(map(op_params, every_op)), "flops": sum(map(op_flops, every_op))},
    }
    base = space.base_arch()
    out["base"] = _cost(space, base)
    for name, largest in (("largest", True), ("smallest", False)):
        arch, _ = space.extreme_arch(op_flops, largest=largest)
        out[name] = _cost(space, arch)
    return out


def _cost(space: SearchSpace, arch) -> dict[str, float]:
    specs = space.arch_specs(arch)
    return {"params": sum(map(op_params, specs)), "flops": sum(map(op_flops, specs))}
