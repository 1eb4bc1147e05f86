"""DARTS as one strategy among the others: the bilevel supernet search (engine.py, run by runner.py), whose
quality estimate is the supernet itself (its alphas) and whose budget step is the exact knapsack.
Like every strategy it searches the Problem (space, cost table, budget, sampling steps); its own options
are `StrategyConfig.darts`, and the config gives its seed and data folder. The run folder
also holds the supernet, the fine-tuned subnet's weights (subnet.pt) and its evaluation (metrics.json),
whose figures are the result's info."""
from __future__ import annotations

from ....cost.model import Cost, OpCostModel
from ....errors import RcaiError
from ....space.subnet import SubnetSpec
from ....train.rundir import RunDir
from ...result import SearchResult
from ..base import STRATEGIES, Problem, SearchStrategy
from .choose import load_predictor
from .runner import search_in


@STRATEGIES.register("darts")
class Darts(SearchStrategy):
    name = "darts"
    trains = True  # the supernet is its estimator: no proxy is built
    distributed = True  # data-parallel supernet training (gradients averaged, engine.py)

    def train_device(self) -> str:
        return self.cfg.darts.train_device

    def check(self, problem: Problem) -> None:
        if not isinstance(problem.cost, OpCostModel):
            raise RcaiError(f"{self.cfg.cost_table}: the bilevel search needs a per-op cost model (a cost table), got a {problem.cost.name}")
        problem.check_reachable()
        load_predictor(self.cfg.darts, problem.space.preset)  # a bad --predictor file: refused before the run folder exists

    def search(self, problem: Problem, run: RunDir | None = None) -> SearchResult | None:
        if run is None:
            raise RcaiError("darts needs a run folder (checkpoints, supernet, subnet weights)")
        m = search_in(self.cfg, run, problem, progress=self.progress)  # the problem check() accepted
        if not m:
            return None  # not rank 0 of a multi-process search
        s = m["search"]
        est = {k: v for k, v in s["estimate"].items() if k != "loop_ms"}
        return SearchResult(SubnetSpec(problem.space.preset, m["choices"]), Cost(**est), s["selection"], history=run.read_log(), notes=list(s["notes"]),
                            budget_ms=s["budget_ms"], table_loop_ms=s["table_loop_ms"], info=m)

