"""The one factory for cost models: `load_cost_model(path, preset)` -> a `CostModel`.

    load_cost_model("latency_tables/cpu-tiny.csv", preset)   # TableCostModel (a *.csv cost table)
    load_cost_model("predictors/cpu-tiny.pt", preset)        # PredictorCostModel (a GNN predictor file)
    load_cost_model("counters", preset)                       # CounterCostModel (FLOPs/params, no latency)

A table measured on another machine than the one it will be used on still loads, with a one-line
warning on stderr saying how to re-profile here (see `foreign_table`). A table of another precision
than the target's (`precision="int8"`: an INT8 deployment) is refused in one line, as is one of
another batch.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import RcaiError
from ..registry import Registry
from ..presets import Preset
from .model import CostModel, CounterCostModel, TableCostModel
from .table import CostTable


@dataclass(frozen=True)
class LoadOptions:
    force: bool = False  # a table of another preset/batch/precision: use it anyway
    # the deployed model's precision; an int8 table for another precision, or another table for int8, is refused
    # (None: any; fp16 is not checked: GPU tables carry their target's own fp16 setting)
    precision: str | None = None
    batch: int = 1  # batch the estimates are for (the predictor's graphs; a table's must match)
    device: str | None = None  # the --device the estimates are for (None: the table's own device and threads)
    threads: int | None = None  # threads of that target (None: its default)
    warn: Callable[[str], None] | None = None  # where the foreign-table warning goes (default: stderr)
    sampler: str = "ddim"  # the sampler of the loop the estimates are for (its own per-step cost is a term of them)


LOADERS: Registry[Callable[[str, Preset, LoadOptions], CostModel]] = Registry("cost model")
SUFFIXES = {".csv": "table", ".pt": "predictor"}  # a path's kind by its suffix; "counters" is a name


def kind_of(path: str | Path) -> str:
    if str(path) in LOADERS:
        return str(path)
    kind = SUFFIXES.get(Path(path).suffix)
    if kind is None:
        raise RcaiError(f"{path}: not a cost model (a cost table .csv, a predictor .pt, or one of: {', '.join(LOADERS.names())})")
    return kind


def load_cost_model(path: str | Path, preset: Preset, **options: Any) -> CostModel:
    """The cost model stored at `path` for `preset` (options: see LoadOptions)."""
    return LOADERS.get(kind_of(path))(str(path), preset, LoadOptions(**options))


@LOADERS.register("table")
def _table(path: str, preset: Preset, opt: LoadOptions) -> TableCostModel:
    table = CostTable.load(path)
    tp = table.precision
    if opt.precision is not None and tp != opt.precision and "int8" in (tp, opt.precision) and not opt.force:
        redo = f"rcai profile --precision {opt.precision}" + (f" --preset {table.meta['preset']}" if table.meta.get("preset") else "")
        raise RcaiError(f"{path}: table was measured at precision {tp}, the target is {opt.precision}; profile one ({redo}) or pass --force")
    tb = table.meta.get("batch")
    if tb is not None and tb != opt.batch and not opt.force:
        raise RcaiError(f"{path}: table was measured at batch {tb}, the estimates are for batch {opt.batch}; pass --force to use it anyway")
    model = TableCostModel(preset, table, force=opt.force, sampler=opt.sampler)
    message = foreign_table(table, opt.device, opt.threads)
    if message:
        (opt.warn or _stderr)(message)
    return model


@LOADERS.register("predictor")
def _predictor(path: str, preset: Preset, opt: LoadOptions) -> CostModel:
    if not Path(path).is_file():
        raise RcaiError(f"{path}: predictor file not found")
    if opt.precision == "int8" and not opt.force:
        raise RcaiError(f"{path}: latency predictors are trained on fp32 loops, the target is int8; use an int8 cost table or pass --force")
    from .predictor_model import PredictorCostModel

    return PredictorCostModel(preset, path, batch=opt.batch, sampler=opt.sampler)


@LOADERS.register("counters")
def _counters(path: str, preset: Preset, opt: LoadOptions) -> CounterCostModel:
    return CounterCostModel(preset)


# What must match between where a table was measured and where it is used.
PROVENANCE = ("host", "device_model", "backend", "backend_version", "threads")


def foreign_table(table: CostTable, device: str | None = None, threads: int | None = None) -> str | None:
    """One line saying how the table's target differs from `device` with `threads` (None: its
    default) on this machine, and how to re-profile; None when they match, or when the target is not
    on this machine (a remote one) or cannot be created here. device None: the table's own device
    and threads (only the machine and library versions are compared)."""
    from ..targets import TargetSpec, resolve_device

    meta = table.meta
    if device is None:  # a command without a target of its own (search): the table's, on this machine
        device, threads = meta.get("device_name") or "cpu", meta.get("threads")
    try:
        target = resolve_device(TargetSpec(device=device, threads=threads or None))
        if not target.local:
            return None
        here = target.info().to_dict()
    except (RcaiError, ImportError, TypeError):
        return None
    diff = [f"{k} {meta.get(k)!r} != {here.get(k)!r}" for k in PROVENANCE if meta.get(k) is not None and meta.get(k) != here.get(k)]
    if not diff:
        return None
    t = here.get("threads")
    redo = f"rcai profile --device {device} --preset {meta.get('preset', '?')}" + (f" --threads {t}" if t else "")
    return f"warning: {table.path} was profiled on another target ({'; '.join(diff)}); re-profile here: {redo} --out PATH"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
