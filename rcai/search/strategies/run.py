"""`rcai search --strategy NAME`: any registered strategy in a run folder, one way for the CLI, the
pipeline and the benchmarks.

Run folder: config.json (the StrategyConfig), subnet.json, result.json (the SearchResult plus the
strategy's figures), and what the strategy keeps: sample-based ones evaluations.jsonl (one line per
proposal: kind, arch, score, table loop ms, seconds), halving its trainings/, darts its checkpoints,
weights and metrics.json. `resume=True` continues a killed run (same config) where it stopped.
"""
from __future__ import annotations

import contextlib
import os

from pathlib import Path
from typing import Any

from ...cost.load import load_cost_model
from ...errors import RcaiError
from ...io import atomic_write_json
from ...proxies import make_estimator
from ...presets import get_preset
from ...runfolder import open_run
from ...space.space import SearchSpace
from ...train.rundir import RunDir
from ..result import SearchResult
from .base import STRATEGIES, Problem, SearchStrategy, StrategyConfig


def build_problem(cfg: StrategyConfig, strategy: SearchStrategy | None = None) -> Problem:
    """What `strategy` (default: the one cfg names) searches: the space, its estimators, the cost model and budget."""
    strategy = strategy or STRATEGIES.get(cfg.strategy)(cfg)
    preset = get_preset(cfg.preset)
    cost = load_cost_model(cfg.cost_table, preset, force=cfg.force)
    extra = {name: make_estimator(name, preset, cfg.proxy_config) for name in strategy.extra_estimators()}
    estimate = None if strategy.trains else make_estimator(cfg.proxy, preset, cfg.proxy_config)  # a training strategy measures quality itself
    return Problem(SearchSpace.of(preset), estimate, cost, cfg.latency_budget_ms, cfg.steps_per_sample, extra)


def run_strategy(cfg: StrategyConfig, out: str | Path, resume: bool = False, progress: bool = False) -> tuple[SearchResult | None, dict[str, Any]]:
    """Every strategy's run: the problem built and checked before the run folder exists, the folder
    started (or resumed: the same config), then `search(problem, run)`; subnet.json and result.json
    (the SearchResult with the strategy's own figures) written. Under torchrun only rank 0 writes;
    the other ranks return (None, {}); the process group is joined here (rcai.train.distributed.process_group)."""
    from ...train.distributed import process_group, world

    strategy = STRATEGIES.get(cfg.strategy)(cfg, progress)
    if not strategy.distributed:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise RcaiError(f"--strategy {cfg.strategy} runs in one process (its trainings on --jobs / --executor); torchrun applies to darts")
        return _run(strategy, cfg, out, resume, writer=True)
    with process_group(cfg.darts.train_device):  # darts: the one strategy that runs under torchrun
        return _run(strategy, cfg, out, resume, writer=world()[0] == 0)


def _run(strategy, cfg: StrategyConfig, out: str | Path, resume: bool, writer: bool) -> tuple[SearchResult | None, dict[str, Any]]:
    def prepare() -> Problem:
        from ...train.device import resolve_train_device

        device = strategy.train_device()
        if device is not None:
            resolve_train_device(device)  # cuda without a GPU: one line (the trainings resolve it where they run)
        problem = build_problem(cfg, strategy)
        strategy.check(problem)
        return problem

    # everything checked before the run folder exists, then one writer per run folder
    with open_run(out, prepare) if writer else contextlib.nullcontext(prepare()) as problem:
        run = RunDir(Path(out))
        if writer:
            run.start(cfg.to_dict(), resume, upgrade=lambda d: StrategyConfig.from_dict(StrategyConfig.migrate(d), f"{out}/config.json").to_dict())
        result = strategy.search(problem, run)
        if result is None:
            return None, {}
        result.subnet.save(run.file("subnet.json"))
        summary = {**result.to_dict(), "strategy": cfg.strategy, "proxy": None if strategy.trains else cfg.proxy,
                   "choices": result.subnet.choices, "table": result.estimate.to_dict(), **result.info}
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
