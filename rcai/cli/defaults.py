"""CLI defaults read from the config dataclasses, statically (ast), without importing them.

The config modules import torch; importing them to define the options would make `rcai --help`
and every shell-completion TAB take seconds. So the defaults are read off the dataclasses' source:
one place for each default, and tests/test_cli.py checks that what is read here equals the
imported dataclasses' defaults."""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # the rcai package


@lru_cache(maxsize=None)
def defaults(module: str, cls: str) -> dict[str, Any]:
    """{field: default} of dataclass `cls` in rcai/`module` (e.g. "train/trainer.py"), for the
    fields whose default is a literal (default_factory fields are left out)."""
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            return {
                s.target.id: ast.literal_eval(s.value)
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and s.value is not None and _literal(s.value)
            }
    raise LookupError(f"rcai/{module}: no class {cls}")


def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
        return True
    except ValueError:
        return False


TRAIN = defaults("train/trainer.py", "TrainConfig")
EVAL = defaults("train/evaluate.py", "EvalConfig")
STRATEGY = defaults("search/strategies/base.py", "StrategyConfig")  # what every search strategy shares
DARTS = defaults("search/config.py", "DartsOptions")  # the bilevel strategy's options (StrategyConfig.darts)
BENCH = defaults("deploy/bench.py", "BenchConfig")
PIPELINE = defaults("pipeline.py", "PipelineConfig")
