"""Exact selection under the budget with an additive quality estimator (`--proxy quality-model`):
the subnet of highest predicted quality whose loop latency is within the budget, by the
multiple-choice knapsack of rcai/search/select.py. One evaluation: the optimum itself."""
from __future__ import annotations

from ...cost.model import OpCostModel
from ...errors import RcaiError
from ..select import best_under_budget
from .base import STRATEGIES, SampledStrategy


@STRATEGIES.register("knapsack")
class Knapsack(SampledStrategy):
    name = "knapsack"

    def run(self, problem, session, rng) -> None:
        slot_scores = getattr(problem.estimate, "slot_scores", None)
        if slot_scores is None:
            raise RcaiError(f"--strategy knapsack needs an additive quality estimator (--proxy quality-model), not {self.cfg.proxy}")
        cost = problem.cost
        if not isinstance(cost, OpCostModel):
            raise RcaiError(f"--strategy knapsack needs a per-op cost model (a cost table), got {cost.name}")
        op_ms = lambda sp: cost.op_metric(sp, "latency_ms")  # noqa: E731
        budget = problem.budget_ms
        if budget is None:  # no budget: the best subnet at any latency, i.e. within the dearest one's
            dearest, _ = problem.space.extreme_arch(op_ms, largest=True)
            budget = problem.loop_ms(dearest)
        session.evaluate(best_under_budget(problem.space, slot_scores(problem.space), op_ms, cost.overhead_ms, problem.steps, budget).arch)
