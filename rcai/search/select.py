"""Choosing the subnet after search: the argmax of alpha, or, if that breaks the latency budget,
the most alpha-preferred subnet that meets it (greedy: give up the least alpha log-probability
per millisecond saved, one slot at a time)."""
from __future__ import annotations

from typing import Callable, Mapping

import torch

from ..errors import RcaiError
from ..model.mixed import MixedOp
from ..model.unet import UNet
from ..space.space import Arch, SearchSpace

LogProbs = dict[str, dict[str, float]]


def alpha_logprobs(supernet: UNet) -> LogProbs:
    out: LogProbs = {}
    for m in supernet.modules():
        if isinstance(m, MixedOp):
            lp = torch.log_softmax(m.alpha.detach().double(), 0)
            out[m.path] = {n: float(v) for n, v in zip(m.choices, lp)}
    return out


def arch_from(space: SearchSpace, logp: LogProbs, overrides: Mapping[str, str] | None = None) -> Arch:
    """Every active slot takes its override, else its most probable choice."""
    overrides = overrides or {}
    return space.pick(lambda s: overrides.get(s.path) or max(logp[s.path], key=logp[s.path].get))


def score(arch: Mapping[str, str], logp: LogProbs) -> float:
    return sum(logp[p][c] for p, c in arch.items())


def fit_budget(space: SearchSpace, logp: LogProbs, latency: Callable[[Arch], float], budget: float) -> tuple[Arch, list[dict]]:
    """Greedy descent from the argmax subnet until `latency(arch) <= budget`. Returns the subnet and
    the path taken (each step: slot, new choice, latency, score)."""
    overrides: dict[str, str] = {}
    arch = arch_from(space, logp)
    lat = latency(arch)
    path = [{"slot": None, "choice": None, "latency_ms": lat, "score": score(arch, logp)}]
    while lat > budget:
        best = None
        for slot_path in arch:
            for choice in logp[slot_path]:
                if choice == arch[slot_path]:
                    continue
                cand = arch_from(space, logp, {**overrides, slot_path: choice})
                saved = lat - latency(cand)
                if saved <= 0:
                    continue
                lost = score(arch, logp) - score(cand, logp)
                ratio = max(lost, 1e-9) / saved
                if best is None or ratio < best[0]:
                    best = (ratio, slot_path, choice, cand)
        if best is None:
            raise RcaiError(f"no subnet meets the latency budget {budget:.3g} ms (smallest found: {lat:.3g} ms)")
        _, slot_path, choice, arch = best
        overrides[slot_path] = choice
        lat = latency(arch)
        path.append({"slot": slot_path, "choice": choice, "latency_ms": lat, "score": score(arch, logp)})
    return arch, path


def sample_candidates(space: SearchSpace, logp: LogProbs, n: int, seed: int) -> list[Arch]:
    """n subnets drawn from the softmax of alpha (for ranking with a predictor)."""
    import random

    rng = random.Random(seed)

    def draw(s):
        names, lps = zip(*logp[s.path].items())
        import math

        return rng.choices(names, weights=[math.exp(v) for v in lps])[0]

    return [space.pick(draw) for _ in range(n)]
