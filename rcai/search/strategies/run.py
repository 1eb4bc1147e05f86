"""`rcai search --strategy grid|random|evolution|area|rl`: a sample-based search in a run folder.

Run folder: config.json, evaluations.jsonl (one line per proposal: kind, arch, score, table loop ms,
seconds), subnet.json (the best subnet evaluated within the budget), result.json (the SearchResult
plus evaluations used and wall time). `resume=True` replays evaluations.jsonl and carries on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...cost.load import load_cost_model
from ...io import atomic_write_json
from ...lock import exclusive
from ...proxies import make_estimator
from ...presets import get_preset
from ...space.space import SearchSpace
from ...train.rundir import RunDir
from ..result import SearchResult
from ...errors import RcaiError
from .base import JOURNAL, STRATEGIES, Problem, SearchStrategy, Session, StrategyConfig


def build_problem(cfg: StrategyConfig) -> Problem:
    preset = get_preset(cfg.preset)
    cost = load_cost_model(cfg.cost_table, preset)
    extra = {cfg.area_proxy: make_estimator(cfg.area_proxy, preset, cfg.proxy_config)} if cfg.strategy == "area" else {}
    trains = getattr(STRATEGIES.get(cfg.strategy), "trains", False)  # its own estimator: training the subnets
    estimate = None if trains else make_estimator(cfg.proxy, preset, cfg.proxy_config)
    problem = Problem(SearchSpace.of(preset), estimate, cost, cfg.latency_budget_ms, cfg.steps_per_sample, extra)
    if cfg.latency_budget_ms is not None:  # before the run folder exists: an impossible budget is a one-line error
        import random

        problem.repair(problem.space.base_arch(), random.Random(0))
    return problem


def run_strategy(cfg: StrategyConfig, out: str | Path, resume: bool = False) -> tuple[SearchResult, dict[str, Any]]:
    strategy = STRATEGIES.get(cfg.strategy)
    if not (isinstance(strategy, type) and issubclass(strategy, SearchStrategy)):
        raise RcaiError(f"{cfg.strategy} is not a sample-based strategy (darts runs with its own config: rcai search --strategy darts)")
    with exclusive(out):
        problem = build_problem(cfg)
        run = RunDir(Path(out))
        run.start(cfg.to_dict(), resume)
        result, session = strategy(cfg).search(problem, run.file(JOURNAL))
        result.subnet.save(run.file("subnet.json"))
        summary = summarize(cfg, result, session)
        atomic_write_json(run.file("result.json"), summary)
        return result, summary


def run_knapsack(preset: str, cost_table: str, quality_model: str, budget_ms: float, steps_per_sample: int,
                 out: str | Path) -> tuple[SearchResult, dict[str, Any]]:
    """`rcai search --strategy knapsack`: the subnet of highest predicted quality within the budget
    (a run folder that exists is resumed, i.e. replayed)."""
    from ...proxies import ProxyConfig

    cfg = StrategyConfig(strategy="knapsack", preset=preset, cost_table=cost_table, proxy="quality-model", latency_budget_ms=budget_ms,
                         steps_per_sample=steps_per_sample, proxy_config=ProxyConfig(quality_model=quality_model))
    return run_strategy(cfg, out, resume=(Path(out) / "config.json").exists())


def summarize(cfg: StrategyConfig, result: SearchResult, session: Session) -> dict[str, Any]:
    best = session.best()
    return {**result.to_dict(), "strategy": cfg.strategy, "proxy": cfg.proxy, "best_score": best["score"], "best_at": best["i"],
            "choices": result.subnet.choices, "evaluations": session.evaluations, "proxy_evaluations": session.proxy_evaluations,
            "proposals": len(session.history), "rejected": sum(r["kind"] == "rejected" for r in session.history),
            "wall_s": session.wall_s, "table": result.estimate.to_dict()}
