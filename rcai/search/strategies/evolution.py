"""Regularized evolution (REA, Real et al. 2019), options `StrategyConfig.evolution`: a population of `population` evaluated subnets;
each cycle samples `sample_size` of them without replacement (tournament), mutates the best (one
random slot re-drawn; with probability `crossover`, first a uniform crossover with the tournament's
second best), repairs the child to the budget, evaluates it, and retires the oldest member (aging)."""
from __future__ import annotations

import collections
import random

from ...space.space import Arch
from ..config import EvolutionOptions
from .base import STRATEGIES, Problem, SampledStrategy, Session


def mutate(problem: Problem, arch: Arch, rng: random.Random) -> Arch:
    slot = rng.choice(sorted(arch))
    options = [n for n in problem.space._slot_index[slot].choices if n != arch[slot]]
    return problem.with_choice(arch, slot, rng.choice(options), rng) if options else dict(arch)


def crossover(problem: Problem, a: Arch, b: Arch, rng: random.Random) -> Arch:
    def pick(s):
        options = [x for x in (a.get(s.path), b.get(s.path)) if x is not None]
        return rng.choice(options) if options else rng.choice(list(s.choices))

    return problem.space.pick(pick)


def child_of(problem: Problem, parents: list[Arch], p_cross: float, rng: random.Random) -> Arch:
    """A mutated (and maybe crossed) child within the budget: up to 20 tries, then repaired."""
    for _ in range(20):
        base = crossover(problem, parents[0], parents[1], rng) if len(parents) > 1 and rng.random() < p_cross else parents[0]
        child = mutate(problem, base, rng)
        if problem.feasible(child):
            return child
    return problem.repair(child, rng)


def evolve(problem: Problem, session: Session, rng: random.Random, population: collections.deque, cfg: EvolutionOptions) -> None:
    """The REA cycle on an evaluated population of (arch, score), oldest first, until Stop."""
    while True:
        sample = rng.sample(range(len(population)), min(cfg.sample_size, len(population)))
        ranked = sorted(sample, key=lambda i: (-population[i][1], i))
        child = child_of(problem, [population[i][0] for i in ranked[:2]], cfg.crossover, rng)
        population.append((child, session.evaluate(child)))
        population.popleft()


@STRATEGIES.register("evolution")
class RegularizedEvolution(SampledStrategy):
    name = "evolution"

    def run(self, problem, session, rng) -> None:
        population: collections.deque = collections.deque()
        while len(population) < self.cfg.evolution.population:
            arch = problem.feasible_random(rng)
            population.append((arch, session.evaluate(arch)))
        evolve(problem, session, rng, population, self.cfg.evolution)
