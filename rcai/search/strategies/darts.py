"""DARTS as one strategy among the others: the bilevel supernet search of rcai/search/run.py, whose
quality estimate is the supernet itself (its alphas) and whose budget step is the exact knapsack.
Its own options are `StrategyConfig.darts`; the run folder also holds the supernet, the fine-tuned
subnet's weights (subnet.pt) and its evaluation (metrics.json), whose figures are the result's info."""
from __future__ import annotations

from dataclasses import fields

from ...cost.model import Cost, OpCostModel
from ...errors import RcaiError
from ...space.subnet import SubnetSpec
from ...train.rundir import RunDir
from ..config import DartsOptions, SearchConfig
from ..result import SearchResult
from ..run import check_budget_feasible, search_in
from .base import STRATEGIES, Problem, SearchStrategy, StrategyConfig


def strategy_config(engine: SearchConfig) -> StrategyConfig:
    """The strategy config of a DARTS run described by its engine config (the inverse of engine_config)."""
    from ...proxies import ProxyConfig

    options = {f.name: getattr(engine, f.name) for f in fields(DartsOptions)}
    return StrategyConfig(strategy="darts", preset=engine.preset, cost_table=engine.cost_table, latency_budget_ms=engine.latency_budget_ms,
                          steps_per_sample=engine.steps_per_sample, seed=engine.seed, force=engine.force,
                          proxy_config=ProxyConfig(data_dir=engine.data_dir), darts=DartsOptions(**options))


def engine_config(cfg: StrategyConfig) -> SearchConfig:
    """The bilevel engine's config: the darts options plus what every strategy shares."""
    options = {f.name: getattr(cfg.darts, f.name) for f in fields(DartsOptions)}
    return SearchConfig(preset=cfg.preset, cost_table=cfg.cost_table, latency_budget_ms=cfg.latency_budget_ms,
                        steps_per_sample=cfg.steps_per_sample, seed=cfg.seed, data_dir=cfg.proxy_config.data_dir, force=cfg.force, **options)


@STRATEGIES.register("darts")
class Darts(SearchStrategy):
    name = "darts"
    trains = True  # the supernet is its estimator: no proxy is built
    distributed = True  # data-parallel supernet training (gradients averaged, rcai/search/darts.py)

    def check(self, problem: Problem) -> None:
        if not isinstance(problem.cost, OpCostModel):
            raise RcaiError(f"{self.cfg.cost_table}: the bilevel search needs a per-op cost model (a cost table), got a {problem.cost.name}")
        check_budget_feasible(problem.cost, engine_config(self.cfg))

    def search(self, problem: Problem, run: RunDir | None = None) -> SearchResult | None:
        if run is None:
            raise RcaiError("darts needs a run folder (checkpoints, supernet, subnet weights)")
        m = search_in(engine_config(self.cfg), run, problem.cost, progress=self.progress)  # the table check() accepted
        if not m:
            return None  # not rank 0 of a multi-process search
        s = m["search"]
        est = {k: v for k, v in s["estimate"].items() if k != "loop_ms"}
        return SearchResult(SubnetSpec(problem.space.preset, m["choices"]), Cost(**est), s["selection"], history=run.read_log(), notes=list(s["notes"]),
                            budget_ms=s["budget_ms"], table_loop_ms=s["table_loop_ms"], info=m)

