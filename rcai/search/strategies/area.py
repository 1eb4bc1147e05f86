"""AREA (Mellor et al. 2021, the seed's Algorithm 2): `area.pool` random subnets within the budget are
scored by a cheap proxy (`area.proxy`, NASWOT by default); the `evolution.population` best are evaluated
by the quality estimator and seed regularized evolution (evolution.py), which then runs to the budget."""
from __future__ import annotations

import collections

from .base import STRATEGIES, SampledStrategy
from .evolution import evolve


@STRATEGIES.register("area")
class AssistedEvolution(SampledStrategy):
    name = "area"

    def extra_estimators(self) -> tuple[str, ...]:
        return (self.cfg.area.proxy,)

    def run(self, problem, session, rng) -> None:
        pool = [problem.feasible_random(rng) for _ in range(self.cfg.area.pool)]
        scored = [(session.evaluate(a, kind=self.cfg.area.proxy), i) for i, a in enumerate(pool)]
        top = [pool[i] for _, i in sorted(scored, key=lambda s: (-s[0], s[1]))[: self.cfg.evolution.population]]
        population = collections.deque((a, session.evaluate(a)) for a in top)
        evolve(problem, session, rng, population, self.cfg.evolution)
