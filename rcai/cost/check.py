"""`rcai tables check` and `rcai profile check`: does a cost table predict whole subnets here?

check_table: a table's whole-network estimate against measured subnets. Figures per dataset: the
table estimate (calibrated where the table is: what search and every estimate use), the same table
without its calibration, the raw sum of isolated ops, and the measurement's own repeatability (first
half of its rounds vs second half; no estimate can be more accurate than the measurement repeats).
Subnets the table was calibrated on are left out.

fidelity_check: the whole check a user runs on their own machine, for one measuring method: profile
a table (with calibration), measure 40+ other subnets, profile a second table minutes later, and
report re-measurement repeatability, table vs measured for both tables, the two tables op by op,
the profiling time and the load average.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import RcaiError
from ..latency_data import positive_ms, read_rows
from ..stats import accuracy as evaluate
from ..targets import TargetSpec, resolve_device
from ..space.subnet import SubnetSpec
from .model import TableCostModel
from .table import CostTable


def read_dataset_rows(path: str | Path) -> list[dict[str, str]]:
    return [r for _, r in read_rows(path, ("latency_ms", "subnet"))]


def _figures(est, measured) -> dict[str, float]:
    e, t = np.asarray(est), np.asarray(measured)
    return {**evaluate(e, t), "bias": float(np.median(e / t) - 1)}


def _halves(r: dict[str, str], path: str | Path, line: int) -> tuple[float, float] | None:
    """The two half-run measurements of a dataset row (older datasets: first and last round)."""
    if r.get("half1_ms") and r.get("half2_ms"):
        h = (float(r["half1_ms"]), float(r["half2_ms"]))  # nan where the run had one round
        return (_ms(path, line, "half1_ms", r["half1_ms"]), _ms(path, line, "half2_ms", r["half2_ms"])) if all(np.isfinite(h)) else None
    if r.get("round_ms"):
        x = [_ms(path, line, "round_ms", v) for v in r["round_ms"].split("|")]
        return (x[0], x[-1]) if len(x) >= 2 else None
    return None


def _ms(path: str | Path, line: int, column: str, text: str | None) -> float:
    return positive_ms(f"{path}:{line}", column, text)


def check_table(table: CostTable, dataset: str | Path, force: bool = False) -> dict[str, Any]:
    rows = read_dataset_rows(dataset)
    root = Path(dataset).parent
    first = SubnetSpec.load(root / rows[0]["subnet"])
    model = TableCostModel(first.preset, table, force=force)
    bare = TableCostModel(first.preset, table, force=force, calibrated=False)
    calib = {tuple(sorted(m["arch"].items())) for m in (table.calibration.measured if table.calibration else [])}
    measured, est, uncal, raw, halves, left_out = [], [], [], [], [], 0
    for line, r in enumerate(rows, start=2):
        spec = SubnetSpec.load(root / r["subnet"], expect_preset=first.preset)
        if tuple(sorted(spec.choices.items())) in calib:
            left_out += 1
            continue
        specs = model.space.arch_specs(spec.choices)
        measured.append(_ms(dataset, line, "latency_ms", r["latency_ms"]))
        est.append(model.estimate(spec.choices).latency_ms - model.sampler_ms)  # a dataset holds network calls: the sampler's term apart
        uncal.append(bare.estimate(spec.choices).latency_ms - bare.sampler_ms)
        raw.append(sum(table.rows[s.key][table.latency_column] for s in specs))
        halves.append(_halves(r, dataset, line))
    if not measured:
        raise RcaiError(f"{dataset}: every subnet was one the table is calibrated on; measure others")
    cal = table.calibration
    out: dict[str, Any] = {
        "table": str(table.path),
        "dataset": str(dataset),
        "quantity": ("measured: the dataset's whole subnets, isolated network calls (ms per call); estimated: the table's per-step "
                     + ("loop estimate (calibrated to whole loops) less its sampler term" if cal is not None and cal.target == "loop"
                        else "sum of its ops" + (" (calibrated to single calls)" if cal is not None else ""))
                     + ". For whole loops against whole loops: rcai profile check"),
        "overhead_ms": model.overhead_ms,
        "calibrated": table.calibration is not None,
        "calibration_subnets_left_out": left_out,
        "table_sum": _figures(est, measured),
        "raw_sum": _figures(raw, measured),
        "_arrays": {"measured": measured, "table_sum": est, "raw_sum": raw},
    }
    if table.calibration is not None:
        out["uncalibrated"] = _figures(uncal, measured)
        out["_arrays"]["uncalibrated"] = uncal
    if halves and all(h is not None for h in halves):
        h1, h2 = np.array([h[0] for h in halves]), np.array([h[1] for h in halves])
        out["repeatability"] = _figures(h2, h1)
    return out


def compare_tables(a: CostTable, b: CostTable) -> dict[str, Any]:
    """Two tables op by op (each one's latency column): share of ops within 5% / 10%, median and
    largest deviation |b/a - 1|, and the op that moved most."""
    keys = sorted(k for k in set(a.rows) & set(b.rows) if a.rows[k][a.latency_column] > 0)
    if not keys:
        raise RcaiError(f"{a.path} and {b.path} have no op in common")
    dev = np.array([abs(b.rows[k][b.latency_column] / a.rows[k][a.latency_column] - 1) for k in keys])
    worst = int(dev.argmax())
    return {"ops": len(keys), "within_5": float(np.mean(dev <= 0.05)), "within_10": float(np.mean(dev <= 0.10)),
            "median_dev": float(np.median(dev)), "max_dev": float(dev.max()), "worst_op": keys[worst]}


# -- the whole check: the table and the predictor against measured whole loops ---------------------

@dataclass(frozen=True)
class FidelityConfig:
    preset: str = "tiny"
    target: TargetSpec = field(default_factory=TargetSpec)  # parsed once where the target is named; threads None: 1 where the target has threads (the CPU check)
    subnets: int = 30  # random subnets whose whole loops are measured (besides the base, twice, and the cheapest)
    calibrate: int = 8  # whole subnets whose loops calibrate the table (<= 10)
    seed: int = 1  # of the measured subnets (calibration subnets come from their own seed)
    rounds: int = 6  # rounds of the loop measurement
    steps: int = 50  # DDIM steps of every loop
    cost_model: str = "auto"  # the table's calibration: kinds | launch | auto (rcai.cost.profile.cost_model_of)

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", self.target.with_threads(1))  # the check's thread default, set once


CHECK_METHODS = ("auto", "wall")  # op and loop clocks: auto (thread / process CPU for one CPU thread) | wall


def _loop_figures(est: list[float], measured: list[float]) -> dict[str, float]:
    e, t = np.asarray(est), np.asarray(measured)
    rel = e / t - 1
    return {**evaluate(e, t), "bias": float(np.median(rel)), "median_abs_err": float(np.median(np.abs(rel))), "max_abs_err": float(np.abs(rel).max())}


def loop_check(table: CostTable, archs: dict[str, dict[str, str]], workdir: str | Path, cfg: FidelityConfig, clock: str = "auto",
               predictor: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Measure the whole DDIM loops of `archs` ({name: arch}; the name "base" is measured a second
    time as "base (again)") with the one loop measurement and compare the table's (calibrated and
    not) and the predictor's loop estimates with them, beside the loops' own re-measurement (second
    half of the rounds vs the first)."""
    from ..presets import get_preset
    from ..targets.loops import LoopConfig
    from .loops import SAMPLER, measure_model_loops

    preset = get_preset(cfg.preset)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    nets: dict[str, SubnetSpec] = {name: SubnetSpec(preset, arch) for name, arch in archs.items()}
    if "base" in nets:
        nets["base (again)"] = nets["base"]
    cal_archs = {f"cal{i}": m["arch"] for i, m in enumerate((table.meta.get("calibration") or {}).get("measured", []))}
    nets.update({name: SubnetSpec(preset, arch) for name, arch in cal_archs.items()})  # the table's calibration subnets, again
    target = resolve_device(cfg.target)
    res = measure_model_loops(target, nets, preset, LoopConfig(rounds=cfg.rounds, loops=1, clock="wall" if clock == "wall" else "auto"),
                              cfg.steps, cfg.target.batch, workdir=workdir)
    models = {"table": TableCostModel(preset, table), "uncalibrated": TableCostModel(preset, table, calibrated=False)}
    if cal_archs:
        own = table.calibration.model if table.calibration else "kinds"
        models["same_rounds"] = TableCostModel(preset, recalibrated(table, cal_archs, res, cfg.steps, own))
        other = "kinds" if own == "launch" else "launch"
        if other == "kinds" or table.meta.get("kernels"):  # the other cost model fitted to the same loops, for comparison
            models[f"same_rounds_{other}"] = TableCostModel(preset, recalibrated(table, cal_archs, res, cfg.steps, other))
    if predictor:
        from .predictor_model import PredictorCostModel

        models["predictor"] = PredictorCostModel(preset, predictor, batch=cfg.target.batch)
    names = [n for n in archs]
    rows = []
    for n in names:
        m = res[n]
        row = {"name": n, "arch": archs[n], "measured_ms": m.loop_ms, "wall_ms": m.wall.value_ms, "cpu_ms": m.cpu.value_ms, "half1_ms": m.quoted.half1_ms,
               "half2_ms": m.quoted.half2_ms, "remeasure_pct": m.remeasure_pct}
        for k, model in models.items():
            row[k] = model.estimate(archs[n], cfg.steps).loop_ms
        rows.append(row)
    measured = [r["measured_ms"] for r in rows]
    first = res[names[0]]
    out: dict[str, Any] = {
        "clock": first.clock, "statistic": first.statistic, "rounds": cfg.rounds, "steps": cfg.steps, "loops": len(rows),
        "load_before": first.load_before, "load_after": first.load_after, "cpu_share": float(np.median([r["cpu_ms"] / r["wall_ms"] for r in rows])),
        "remeasurement": _loop_figures([r["half2_ms"] for r in rows], [r["half1_ms"] for r in rows]),
        **score(rows, list(models)),
        "sampler_loop_ms": {k[len(SAMPLER):]: v.loop_ms for k, v in res.items() if k.startswith(SAMPLER)},
        "rows": rows,
    }
    if "base" in res:
        b, again = res["base"].loop_ms, res["base (again)"].loop_ms
        out["base_twice"] = {"first_ms": b, "second_ms": again, "diff_pct": 100.0 * (again / b - 1),
                             "wall_first_ms": res["base"].wall.value_ms, "wall_second_ms": res["base (again)"].wall.value_ms}
    if first.clock == "cpu":  # the same table against the wall-clock loops (what this load made the user wait)
        out["table_vs_wall"] = _loop_figures([r["table"] for r in rows], [r["wall_ms"] for r in rows])
    return out


def recalibrated(table: CostTable, cal_archs: dict[str, dict[str, str]], res: dict[str, Any], steps: int, model: str | None = None) -> CostTable:
    """A copy of `table` calibrated (and its sampler terms taken) from loops measured in the given
    rounds (`res`): the same fit as `rcai profile --calibrate`, without the machine's drift between
    the profile and the check."""
    import copy

    from ..space.space import SearchSpace
    from .loops import SAMPLER
    from .loop_calibration import fit_loop_calibration
    from .rounds import NET

    t = copy.deepcopy(table)
    model = model or (table.calibration.model if table.calibration else "kinds")
    t.path = table.path.with_name(table.path.name.removesuffix('.csv') + f'-same-rounds-{model}.csv')  # its meta is written beside, not over
    loops = {**{f"{NET}{i:04d}": res[name] for i, name in enumerate(cal_archs)}, **{k: v for k, v in res.items() if k.startswith(SAMPLER)}}
    space = SearchSpace.of(_preset_of(table))
    fit_loop_calibration(t, space, list(cal_archs.values()), loops, steps, model)
    return t


def _preset_of(table: CostTable):
    from ..presets import get_preset

    return get_preset(table.meta["preset"])


def score(rows: list[dict[str, Any]], sources: list[str]) -> dict[str, dict[str, float]]:
    """Each source's loop estimates (row[source]) against the measured loops (row["measured_ms"])."""
    measured = [r["measured_ms"] for r in rows]
    return {k: _loop_figures([r[k] for r in rows], measured) for k in sources}


def rescore_predictor(res: dict[str, Any], predictor: str | Path, preset_name: str = "tiny", steps: int = 50) -> dict[str, Any]:
    """A loop check's result with the predictor's estimates (re)computed from `predictor` on the same
    measured loops (the estimate depends on the architecture alone)."""
    from ..presets import get_preset
    from .predictor_model import PredictorCostModel

    model = PredictorCostModel(get_preset(preset_name), predictor)
    est = model.estimate_many([r["arch"] for r in res["rows"]], steps)
    for r, c in zip(res["rows"], est):
        r["predictor"] = c.loop_ms
    return {**res, **score(res["rows"], ["predictor"]), "predictor_file": str(predictor)}


def check_archs(preset_name: str, subnets: int, seed: int, table: CostTable) -> dict[str, dict[str, str]]:
    """base, the cheapest subnet by the table, and `subnets` random ones (uniform, seeded)."""
    import random

    from ..presets import get_preset
    from ..space.space import SearchSpace

    preset = get_preset(preset_name)
    space = SearchSpace.of(preset)
    model = TableCostModel(preset, table)
    archs = {"base": space.base_arch(), "cheapest": space.extreme_arch(lambda sp: model.op_metric(sp, "latency_ms"), largest=False)[0]}
    rng = random.Random(seed)
    for k in range(subnets):
        archs[f"r{k:03d}"] = space.random_arch(rng)
    return archs


def fidelity_check(cfg: FidelityConfig, method: str, workdir: str | Path, progress: bool = False,
                   log: Callable[[str], None] = lambda s: None, predictor: str | Path | None = None) -> dict[str, Any]:
    """Profile a table here (calibrated on whole loops, timed), then measure the whole loops of the
    base (twice), the cheapest and `cfg.subnets` random subnets and compare (loop_check). Files stay in workdir."""
    from ..targets.sysinfo import cpu_model, load_average
    from .profile import ProfileConfig, profile_ops
    from .rounds import InterleaveConfig

    if method not in CHECK_METHODS:
        raise RcaiError(f"unknown check method {method!r}; known: {', '.join(CHECK_METHODS)}")
    workdir = Path(workdir)
    clock = method
    pcfg = ProfileConfig(preset=cfg.preset, target=cfg.target, interleave=InterleaveConfig(clock=clock),
                         calibrate=cfg.calibrate, loop_steps=cfg.steps, cost_model=cfg.cost_model)
    if clock == "wall":
        from ..targets.loops import LoopConfig

        pcfg = replace(pcfg, calibrate_loops=LoopConfig(clock="wall"))
    out: dict[str, Any] = {"method": method, "cpu_model": cpu_model(), "cpus": os.cpu_count(), "load_start": load_average(),
                           "started": time.strftime("%H:%M:%S", time.gmtime())}
    t0 = time.perf_counter()
    log(f"[{method}] profiling the table (calibrated on {cfg.calibrate} whole loops)")
    table = profile_ops(pcfg, workdir / "table.csv", progress=progress)
    out["profile_seconds"] = time.perf_counter() - t0
    archs = check_archs(cfg.preset, cfg.subnets, cfg.seed, table)
    log(f"[{method}] measuring {len(archs) + 1} whole loops ({cfg.rounds} rounds)")
    t1 = time.perf_counter()
    out.update(loop_check(table, archs, workdir / "loops", cfg, clock, predictor, progress))
    out["loops_seconds"] = time.perf_counter() - t1
    out["load_end"] = load_average()
    out["table_clock"] = table.meta.get("clock")
    cal = table.meta.get("calibration") or {}
    out["calibration"] = cal.get("factors") if cal.get("model", "kinds") == "kinds" else {
        k: cal.get(k) for k in ("model", "overhead_ms", "kernel_ms", "scale")}
    out["cost_model"] = cal.get("model", "kinds")
    out["sampler_ms_per_step"] = table.meta.get("sampler_ms")
    return out
