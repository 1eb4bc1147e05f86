"""DARTS, the bilevel supernet search (`rcai search --strategy darts`), one module a job:
strategy.py  the strategy behind the seam (registered as "darts"): checks the problem, runs the search;
runner.py    the search in its run folder: supernet search, subnet choice, fine-tune, evaluation; checkpoints and resume;
engine.py    the bilevel engine (`Bilevel`): the weight and alpha steps, the cost term, its state;
choose.py    the subnet it ends with: argmax, or the exact knapsack under the budget (and the predictor's check).
"""
from .strategy import Darts

__all__ = ["Darts"]
