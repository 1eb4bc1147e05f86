"""Grid search over network-level dimensions: one GN-conv op per resolution level (kernel size 3/5,
depthwise, narrow width, or skip = shallower) for every GN-conv slot at that level, encoder and
decoder alike, crossed with the ResNet mix choice (attention or a GN-conv) of every mixed block.
Grid points over the latency budget are pruned before any evaluation; the rest are evaluated in an
order shuffled by the seed (so a grid larger than the evaluation budget is sampled without bias)."""
from __future__ import annotations

import itertools

from .base import STRATEGIES, SampledStrategy


def _level(path: str) -> int:
    return int(path.split(".")[1])  # enc.<level>.blocks... / dec.<level>.blocks...


def grid(space) -> list[dict[str, str]]:
    p = space.preset
    levels = sorted({_level(s.path) for s in space.all_slots()})
    points = []
    for ops in itertools.product(p.gnconv_ops, repeat=len(levels)):
        per_level = dict(zip(levels, ops))
        for mix in p.resnet_ops:
            points.append(space.pick(lambda s: mix if s.path.endswith(".mix") else per_level[_level(s.path)]))
    return points


@STRATEGIES.register("grid")
class GridSearch(SampledStrategy):
    name = "grid"

    def run(self, problem, session, rng) -> None:
        points = [a for a in grid(problem.space) if problem.feasible(a)]
        rng.shuffle(points)
        for arch in points:
            session.evaluate(arch)
