"""Random subnets of a search space (uniform or skewed towards the extremes) and their export
with weights for timing: shared by the subnet datasets (archs.py) and table calibration (profile.py)."""
from __future__ import annotations

import random
from pathlib import Path

import torch

from ..errors import RcaiError
from ..onnx_export import DENOISER_INPUTS, DENOISER_OUTPUTS, denoiser_inputs, export_onnx
from ..space.space import SearchSpace
from ..space.subnet import SubnetSpec


def _skewed_arch(space: SearchSpace, rng: random.Random) -> dict[str, str]:
    """One subnet from a random preference over op names (Gamma(0.3) weights): most picks fall on one
    or two ops, so nets near the extremes (all skip, all 5x5...) appear, which uniform sampling of
    9 billion subnets practically never draws."""
    names = sorted({n for s in space.all_slots() for n in s.choices})
    pref = {n: rng.gammavariate(0.3, 1.0) + 1e-9 for n in names}
    return space.pick(lambda s: rng.choices(list(s.choices), weights=[pref[n] for n in s.choices])[0])


SAMPLINGS = {"uniform": lambda space, rng: space.random_arch(rng), "skewed": _skewed_arch}


def sample_archs(space: SearchSpace, n: int, seed: int, sampling: str = "uniform") -> list[dict[str, str]]:
    """n distinct random subnets (the base model first: it is the reference of every comparison)."""
    if sampling not in SAMPLINGS:
        raise RcaiError(f"unknown sampling {sampling!r}; known: {', '.join(SAMPLINGS)}")
    draw = SAMPLINGS[sampling]
    rng = random.Random(seed)
    archs, seen = [space.base_arch()], set()
    seen.add(tuple(sorted(archs[0].items())))
    while len(archs) < min(n, space.size):
        a = draw(space, rng)
        key = tuple(sorted(a.items()))
        if key not in seen:
            seen.add(key)
            archs.append(a)
    return archs[:n]


def prepare_subnet(target, spec: SubnetSpec, path: Path, batch: int):
    """The subnet ready on `target` with seed-0 weights: the target's capability decides (ONNX
    targets: its export at `path`, reused where it is there; torch targets: the module itself)."""
    torch.manual_seed(0)
    return target.prepare_module(spec.build().eval(), denoiser_inputs(spec.preset, batch), DENOISER_INPUTS, path, DENOISER_OUTPUTS, reuse=True)


def export_with_weights(spec: SubnetSpec, path: Path, batch: int) -> None:
    torch.manual_seed(0)
    export_onnx(spec.build().eval(), denoiser_inputs(spec.preset, batch), DENOISER_INPUTS, path, DENOISER_OUTPUTS)
