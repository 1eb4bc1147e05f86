"""DARTS as one strategy among the others: the bilevel supernet search of rcai/search/run.py, whose
quality estimate is the supernet itself (its alphas) and whose budget step is the exact knapsack.
`rcai search --strategy darts` (the default) runs it with its fine-tune and evaluation; this wrapper
gives the same run as a `SearchResult` with its log as history."""
from __future__ import annotations

from pathlib import Path

from ...cost.model import Cost
from ...presets import get_preset
from ...space.subnet import SubnetSpec
from ..config import SearchConfig
from ..result import SearchResult
from ..run import run_search
from ...train.rundir import RunDir
from .base import STRATEGIES


@STRATEGIES.register("darts")
class Darts:
    name = "darts"

    def __init__(self, cfg: SearchConfig):
        self.cfg = cfg
        self.metrics: dict = {}

    def search(self, out: str | Path, resume: bool = False, progress: bool = False) -> SearchResult:
        self.metrics = m = run_search(self.cfg, out, resume=resume, progress=progress)
        s = m["search"]
        est = {k: v for k, v in s["estimate"].items() if k != "loop_ms"}
        return SearchResult(SubnetSpec(get_preset(self.cfg.preset), m["choices"]), Cost(**est), s["selection"],
                            history=RunDir(Path(out)).read_log(), notes=list(s["notes"]), budget_ms=s["budget_ms"], table_loop_ms=s["table_loop_ms"])
