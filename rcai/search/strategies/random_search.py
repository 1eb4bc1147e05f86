"""Random search: uniformly random subnets within the budget (rejection, then repair). With a
training-free proxy as the estimator this is NASWOT's Algorithm 1 (`--proxy naswot`)."""
from __future__ import annotations

from .base import STRATEGIES, SampledStrategy


@STRATEGIES.register("random")
class RandomSearch(SampledStrategy):
    name = "random"

    def run(self, problem, session, rng) -> None:
        while True:
            session.evaluate(problem.feasible_random(rng))
