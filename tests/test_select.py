"""Budget-targeted selection: the knapsack is exact (brute force on a small space with a nested
slot), respects the budget, and refuses an infeasible one with a one-line error."""
import copy
import random

import pytest

from rcai.errors import RcaiError
from rcai.search.select import best_under_budget, sample_at_latency, uniform_logprobs
from rcai.presets import get_preset
from rcai.space.space import SearchSpace


def small_space() -> SearchSpace:
    """micro's space cut to three top-level slots, one of them nesting a GN-conv slot (5*5*(1+5) = 150)."""
    full = SearchSpace.of(get_preset("micro"))
    nested = next(s for s in full.slots if any(c.slots for c in s.choices.values()))
    plain = [s for s in full.slots if s is not nested][:2]
    sub = copy.copy(full)
    sub.__dict__.pop("_slot_index", None)
    sub.slots = plain + [nested]
    return sub


def all_archs(space: SearchSpace):
    def expand(slots):
        if not slots:
            yield {}
            return
        first, rest = slots[0], slots[1:]
        for name, choice in first.choices.items():
            for tail in expand(list(choice.slots) + rest):
                yield {first.path: name, **tail}

    return list(expand(list(space.slots)))


def fake_latency(seed: int):
    cache: dict[str, float] = {}
    rng = random.Random(seed)
    return lambda spec: cache.setdefault(spec.key, rng.uniform(0.01, 1.0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_knapsack_is_exact_on_a_brute_forced_space(seed):
    space = small_space()
    archs = all_archs(space)
    assert len(archs) == space.size == 150
    rng = random.Random(100 + seed)
    logp = {s.path: {n: rng.uniform(-3, 0) for n in s.choices} for s in space.all_slots()}
    lat = fake_latency(seed)
    steps, overhead = 7, 0.05

    def loop(a):
        return steps * (overhead + sum(map(lat, space.arch_specs(a))))

    def score(a):
        return sum(logp[p][c] for p, c in a.items())

    loops = sorted(loop(a) for a in archs)
    for budget in (loops[0], loops[3], loops[len(loops) // 2], loops[-1] * 1.01):
        sel = best_under_budget(space, logp, lat, overhead, steps, budget)
        brute = max((a for a in archs if loop(a) <= budget * (1 + 1e-12)), key=score)
        assert sel.score == pytest.approx(score(brute), abs=1e-9)
        assert sel.loop_ms == pytest.approx(loop(sel.arch)) and sel.loop_ms <= budget * (1 + 1e-9)
        assert set(sel.arch) == set(space.validate(sel.arch))  # only active slots: nested ones when chosen


def test_nested_slot_counts_only_when_active():
    space = small_space()
    nested = space.slots[-1]
    parent_choice = next(n for n, c in nested.choices.items() if c.slots)
    child = nested.choices[parent_choice].slots[0]
    # a huge preference for the nested slot's ops is worth nothing unless its parent is chosen
    logp = uniform_logprobs(space)
    logp[nested.path][parent_choice] = -1.0
    logp[child.path] = {n: 5.0 for n in child.choices}
    sel = best_under_budget(space, logp, fake_latency(0), 0.0, 1, 1e9)
    assert sel.arch[nested.path] == parent_choice and child.path in sel.arch
    assert sel.score == pytest.approx(-1.0 + 5.0)


def test_infeasible_budget_is_a_clear_error():
    space = small_space()
    lat = fake_latency(3)
    cheapest = best_under_budget(space, uniform_logprobs(space), lat, 0.0, 10, 1e9)  # any feasible run
    lowest = min(10 * sum(map(lat, space.arch_specs(a))) for a in all_archs(space))
    with pytest.raises(RcaiError, match="no subnet meets the latency budget .* cheapest subnet's loop is"):
        best_under_budget(space, uniform_logprobs(space), lat, 0.0, 10, lowest * 0.99)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(RcaiError, match="positive number"):
            best_under_budget(space, uniform_logprobs(space), lat, 0.0, 10, bad)
    assert cheapest.loop_ms >= lowest


def test_sampling_at_a_latency_stays_in_the_window():
    space = SearchSpace.of(get_preset("micro"))
    lat = fake_latency(4)

    def loop(a):
        return sum(map(lat, space.arch_specs(a)))

    target = (loop(space.extreme_arch(lat, largest=False)[0]) + loop(space.extreme_arch(lat, largest=True)[0])) / 2
    archs = sample_at_latency(space, loop, target, 0.05, 6, seed=0)
    assert len({tuple(sorted(a.items())) for a in archs}) == 6
    assert all(abs(loop(a) / target - 1) <= 0.05 for a in archs)
    assert archs == sample_at_latency(space, loop, target, 0.05, 6, seed=0)  # deterministic under a seed
