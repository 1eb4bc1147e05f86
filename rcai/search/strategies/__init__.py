"""Search strategies behind one seam (rcai/search/strategies/base.py): grid, random, evolution (REA), area,
rl (REINFORCE), knapsack (exact, additive estimator), halving (multi-fidelity, trains subnets), bo (the same trainings, proposals by a Bayesian surrogate), darts and oneshot (over a one-shot supernet), registered in STRATEGIES."""
from . import area, bo, darts, evolution, grid, halving, knapsack, oneshot, random_search, rl  # noqa: F401  (register)
from .base import STRATEGIES, Problem, SampledStrategy, SearchStrategy, Session, StrategyConfig

__all__ = ["STRATEGIES", "Problem", "SampledStrategy", "SearchStrategy", "Session", "StrategyConfig"]
