"""How far the cost table's and the predictor's whole-loop estimates are from the measured loop,
over several subnets: each is exported, all loops are measured in interleaved rounds, and each
estimate is compared with its subnet's measurement."""
from __future__ import annotations

import dataclasses
import random
import statistics
import warnings
from pathlib import Path
from typing import Any, Mapping

from ..cost.model import CounterCostModel
from ..errors import RcaiError
from ..presets import Preset
from ..space.space import SearchSpace
from ..space.subnet import SubnetSpec
from ..stats import rank_corr
from .bench import BenchConfig
from .compare import compare_loops
from .estimates import estimate_vs_measured, load_estimators
from .export import export_subnet_onnx
from .runtime import default_steps
from .sidecar import DeploySidecar


def study_subnets(preset: Preset, n_random: int = 4, seed: int = 0) -> dict[str, SubnetSpec]:
    """base, the smallest and the largest subnet by FLOPs, and `n_random` random ones."""
    space = SearchSpace.of(preset)
    flops = CounterCostModel(preset)
    cost = lambda spec: flops.op_metric(spec, "flops")  # noqa: E731
    archs = {"base": space.base_arch(), "min-flops": space.extreme_arch(cost, largest=False)[0], "max-flops": space.extreme_arch(cost, largest=True)[0]}
    rng = random.Random(seed)
    for k in range(n_random):
        archs[f"random-{k}"] = space.random_arch(rng)
    return {name: SubnetSpec(preset, arch) for name, arch in archs.items()}


def estimate_errors(
    subnets: Mapping[str, SubnetSpec], cfg: BenchConfig, workdir: str | Path, rounds: int = 3
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Export every subnet (random weights) into `workdir`, measure their loops (cfg: device, sampler,
    steps, batch, threads) in interleaved rounds, and estimate them with cfg.table / cfg.predictor.
    Returns (rows, summary): per subnet the measured loop and each estimate with its error in %;
    summary: mean / max |error| and Spearman rank correlation with the measurement per source."""
    if not cfg.table and not cfg.predictor:
        raise RcaiError("estimate errors: give a cost table and/or a predictor")
    workdir = Path(workdir)
    paths: dict[str, Path] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random-init warning
        for name, spec in subnets.items():
            paths[name] = Path(export_subnet_onnx(spec, None, workdir / f"{name}.onnx", verify=False).onnx_path)
    measured = compare_loops({n: (p, cfg.device) for n, p in paths.items()}, cfg, rounds=rounds)
    rows = []
    models = None
    for name, path in paths.items():
        side = DeploySidecar.for_onnx(path)
        if models is None:  # loaded once: every subnet is of the same preset
            models = load_estimators({"table": cfg.table, "predictor": cfg.predictor}, side, cfg.target)
        steps = default_steps(cfg.sampler, side.schedule.T) if cfg.steps is None else cfg.steps
        m = measured[name]
        row: dict[str, Any] = {"subnet": name, "hash": side.subnet_hash, "steps": steps, "batch": cfg.batch,
                               "flops": CounterCostModel(side.preset).estimate(side.choices).flops,
                               "measured_loop_ms": m["median_ms"], "repeatability": m["repeatability"]}
        for source, model in models.items():
            est = estimate_vs_measured(model, side.choices, steps, m["median_ms"])
            row[f"{source}_loop_ms"], row[f"{source}_error_pct"] = est["loop_ms"], est["loop_error_pct"]
        rows.append(row)
    summary = {"config": dataclasses.asdict(cfg), "rounds": rounds, "subnets": len(rows)}
    for source in ("table", "predictor"):
        key = f"{source}_error_pct"
        if rows and key in rows[0]:
            errs = [abs(r[key]) for r in rows]
            summary[source] = {
                "mean_abs_error_pct": statistics.fmean(errs), "max_abs_error_pct": max(errs),
                "mean_error_pct": statistics.fmean(r[key] for r in rows),
                "spearman": rank_corr([r[f"{source}_loop_ms"] for r in rows], [r["measured_loop_ms"] for r in rows]),
            }
    return rows, summary
