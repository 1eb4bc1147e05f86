"""TinyNAS space selection: the constraint is respected and the rule picks the most FLOPs under it."""
import random

import pytest

from rcai.cost.model import CounterCostModel
from rcai.errors import RcaiError
from rcai.search.space_select import candidate, select_space
from rcai.space.space import SearchSpace


def test_candidate_spaces_scale_width_and_resolution(micro):
    p = candidate(micro, 2.0, 48)
    assert (p.base_channels, p.hr_size, p.lr_size) == (16, 48, 24) and p.hash != micro.hash
    with pytest.raises(RcaiError, match="multiple of"):
        candidate(micro, 1.0, 30)


def test_selection_counts_only_subnets_within_the_memory_limit(micro):
    best, _ = select_space(micro, [1.0, 2.0], [32], float("inf"), samples=40)
    assert best.width == 2.0 and best.satisfied == 1.0  # unconstrained: the wider space has more FLOPs
    limit = CounterCostModel(candidate(micro, 2.0, 32)).estimate(SearchSpace.of(candidate(micro, 2.0, 32)).base_arch()).memory_bytes * 0.99
    best, stats = select_space(micro, [1.0, 2.0], [32], limit, samples=40)
    for s in stats:  # re-draw the same subnets: the CDF holds exactly those within the limit
        space, counters = SearchSpace.of(s.preset), CounterCostModel(s.preset)
        rng = random.Random(0)
        costs = [counters.estimate(space.random_arch(rng)) for _ in range(40)]
        fit = sorted(c.flops for c in costs if c.memory_bytes <= limit)
        assert list(s.flops) == fit and s.satisfied == len(fit) / 40
    assert best.mean_flops == max(s.mean_flops for s in stats) and best.satisfied > 0
    with pytest.raises(RcaiError, match="no sampled subnet"):
        select_space(micro, [1.0], [32], 1.0, samples=10)
