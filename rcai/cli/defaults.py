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


def _fields(module: str, cls: str) -> dict[str, ast.expr]:
    """{field: default expression} of dataclass `cls` in rcai/`module`."""
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            return {s.target.id: s.value for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and s.value is not None}
    raise LookupError(f"rcai/{module}: no class {cls}")


@lru_cache(maxsize=None)
def defaults(module: str, cls: str) -> dict[str, Any]:
    """{field: default} of dataclass `cls` in rcai/`module` (e.g. "train/trainer.py"), for the
    fields whose default is a literal (default_factory fields are left out)."""
    return {k: ast.literal_eval(v) for k, v in _fields(module, cls).items() if _literal(v)}


@lru_cache(maxsize=None)
def group(module: str, cls: str, name: str, base: tuple[str, str]) -> dict[str, Any]:
    """The literal defaults of option group `name` of dataclass `cls`: those of the group's class
    (`base`: its module and class) with the literal keywords of the field's
    `field(default_factory=lambda: Group(key=value, ...))` over them."""
    call = _fields(module, cls)[name]
    factory = next(k.value for k in call.keywords if k.arg == "default_factory")  # type: ignore[attr-defined]
    body = factory.body if isinstance(factory, ast.Lambda) else None
    over = {k.arg: ast.literal_eval(k.value) for k in body.keywords if k.arg and _literal(k.value)} if isinstance(body, ast.Call) else {}
    return {**defaults(*base), **over}


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
PIPELINE_HALVING = group("pipeline.py", "PipelineConfig", "halving", ("search/config.py", "HalvingOptions"))  # the pipeline's demo-sized groups
PIPELINE_DARTS = group("pipeline.py", "PipelineConfig", "darts", ("search/config.py", "DartsOptions"))
