"""`rcai pipeline` (what `make demo` runs): profile -> search -> export -> bench on the built-in data.

  1. cost table: profile the preset's ops on this machine into the run folder (or into --cost-table
     PATH; an existing PATH is reused, with a warning if it was measured elsewhere)
  2. search under a budget (base table latency / speedup) with the strategy's stage
     (rcai/pipeline_search.py): by default successive halving over subnets trained from scratch
  3. the models of the report, trained from scratch alike (`jobs` at a time): the base, the
     cheapest subnet (the trivial answer to a budget), a random subnet of the pick's table latency,
     the pick itself (halving), the pick of random search of the search's training cost (halving),
     and where a quality model for the preset exists (predictors/quality-PRESET.json) its knapsack
     pick under the same budget
  4. export them to ONNX; measure every model's whole sampling loop once, together, with the one
     loop measurement (rcai.targets.loops: interleaved rounds, both clocks, the load beside), the
     base a second time among them (the same model measured twice in one report); the table (and
     predictor) estimates against those figures; the torch loop's image against the ONNX loop's;
     every deployed loop's output scored on held-out crops under K noise seeds (the loop metric,
     rcai/train/loop_quality.py: single samples, their mean, consistency, beside bicubic and the
     ideal sampler)
  5. runs/NAME/report.md with plots
"""
from __future__ import annotations

import math
import os
import socket
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import torch

from .cost.load import load_cost_model
from .cost.model import CostModel
from .cost.profile import OP_MEASURE, ProfileConfig, profile_ops
from .deploy import BenchConfig, export_subnet_onnx
from .deploy.bench import psnr_vs_reference
from .deploy.compare import compare_loops
from .deploy.estimates import estimate_vs_measured
from .errors import RcaiError
from .io import atomic_write_json, read_json
from .evaluate.baselines import MatchedLatency
from .pipeline_search import SEARCH_STAGES, save_spec
from .search.config import DartsOptions, HalvingOptions
from .search.strategies.run import run_knapsack
from .presets import get_preset
from .runfolder import open_run
from .space.subnet import SubnetSpec
from .targets import TargetSpec
from .targets.sysinfo import load_average
from .config import counts_of, require_counts


@dataclass(frozen=True)
class PipelineConfig:
    preset: str = "tiny"
    device: str = "cpu"
    threads: int = 1  # target threads for profiling and timing, and torch threads for training
    speedup: float = 1.6  # latency budget = base table latency / speedup
    steps_per_sample: int = 50  # DDIM steps of the deployed loop
    strategy: str = "halving"  # halving | darts (rcai/pipeline_search.py)
    # halving: every model of the report trained from scratch with the training device's protocol
    # (`cpu`: batch 32, bf16 where the CPU has it) stopped at the last rung; the search compares
    # candidates at `rungs` (benchmarks/results/search_halving.md). Its protocol, training seed,
    # jobs and device are the pipeline's (rcai/pipeline_search.py fills them in)
    halving: HalvingOptions = field(default_factory=lambda: HalvingOptions(rungs=(200, 400), initial=4, brackets=1))
    jobs: int = 2  # trainings at once (`threads` torch threads each, or on the GPUs)
    train_device: str = "auto"  # where every training runs (rcai/train/device.py); --device is the deployment target
    train_precision: str = "auto"
    # darts: the bilevel search, its subnet fine-tuned; the references get as many weight updates.
    # Its predictor, evaluation and device are the pipeline's
    darts: DartsOptions = field(default_factory=lambda: DartsOptions(steps=240, warmup_steps=120, finetune_steps=160))
    seed: int = 0
    rounds: int = 8  # rounds of the loop measurement (every model's loop once a round, in a new random order)
    calibrate: int = 8  # whole subnets that calibrate the profiled table to in-graph latency (rcai profile --calibrate)
    eval_images: int = 8
    predictor: str | None = None  # a GNN predictor file (trained on this machine's subnets); none by default
    cost_table: str | None = None  # default: profile into the run folder; an existing file is reused
    quality_model: str | None = None  # default: predictors/quality-PRESET.json where it exists ("none": skip the pick)

    def __post_init__(self) -> None:  # bad settings fail before the minutes of profiling
        from .train.device import check_precision, resolve_train_device

        SEARCH_STAGES.get(self.strategy)
        resolve_train_device(self.train_device)  # cuda without a GPU: one line, before anything is written
        check_precision(self.train_precision)
        require_counts(counts_of(self, "threads", "jobs", "steps_per_sample", "rounds"))
        if isinstance(self.speedup, bool) or not isinstance(self.speedup, (int, float)) or not 0 < self.speedup < math.inf:
            raise RcaiError(f"speedup must be a positive finite number (budget = base table latency / speedup), got {self.speedup!r}")
        rungs = self.halving.rungs
        if not rungs or list(rungs) != sorted(set(rungs)) or rungs[0] < 1:
            raise RcaiError(f"rungs {tuple(rungs)} must be increasing steps >= 1 (the last: every training's steps)")

    @property
    def train_steps(self) -> int:
        """halving: the steps of every from-scratch training of the report (the last rung)."""
        return self.halving.rungs[-1]

    @cached_property
    def target(self) -> TargetSpec:
        """The deployment target of device and threads, parsed once (pipeline.json keeps the flat fields)."""
        return TargetSpec(device=self.device, threads=self.threads)


def find_table(cfg: PipelineConfig, out: Path, say: Callable[[str], None], progress: bool = False) -> Path:
    """The cost table of this run: the one the user named if it exists, else profiled on this
    machine (into the named path or the run folder; a partial table resumes)."""
    path = Path(cfg.cost_table) if cfg.cost_table else out / f"{cfg.device}-{cfg.preset}.csv"
    if cfg.cost_table and path.exists():
        say(f"using the given cost table {path}")
        return path
    say(f"profiling {cfg.preset}'s ops on {cfg.device} on this machine ({cfg.threads} thread(s)) -> {path}")
    profile_ops(ProfileConfig(preset=cfg.preset, target=cfg.target, measure=OP_MEASURE, calibrate=cfg.calibrate), path, progress=progress)
    return path


def given_table(cfg: PipelineConfig) -> CostModel | None:
    """The --cost-table that exists, loaded and checked (None: it is profiled by the run), and the
    preset and predictor the run reads: refused before the run folder exists."""
    preset = get_preset(cfg.preset)
    if cfg.predictor:
        load_cost_model(cfg.predictor, preset)
    if cfg.cost_table and Path(cfg.cost_table).exists():
        return load_cost_model(cfg.cost_table, preset, device=cfg.device, threads=cfg.threads)
    return None


def run_pipeline(cfg: PipelineConfig, out: str | Path, say: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    out = Path(out)
    with open_run(out, lambda: given_table(cfg)) as table:  # checked, then one writer per run folder
        return _pipeline(cfg, out, table, say, progress)


def _pipeline(cfg: PipelineConfig, out: Path, table: CostModel | None, say: Callable[[str], None], progress: bool) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "pipeline.json", asdict(cfg))
    # torch trains with the same thread count as the target runs: on a shared 2-core machine a
    # 2-thread torch stalls whenever another process holds a core (benchmarks/results/targets_overhead.md)
    torch.set_num_threads(cfg.threads)
    load = {"start": load_average()}
    table_path = find_table(cfg, out, say, progress)
    preset = get_preset(cfg.preset)
    if table is None:  # profiled by this run
        table = load_cost_model(table_path, preset, device=cfg.device, threads=cfg.threads)
    S = cfg.steps_per_sample
    base_est = table.estimate(table.space.base_arch(), S)
    budget = base_est.loop_ms / cfg.speedup
    predictor = cfg.predictor  # only when asked: a shipped predictor was trained on another machine's measurements

    stage = SEARCH_STAGES.get(cfg.strategy)(cfg)
    say(f"searching ({cfg.strategy}) under a budget of {budget:.1f} ms for {S} DDIM steps (base: {base_est.loop_ms:.1f} ms by the table)")
    found, search = stage.search(table_path, budget, out, say, progress)
    pick = SubnetSpec.load(found / "subnet.json", preset)
    baselines = MatchedLatency(table, S)
    cheapest = baselines.cheapest
    subnet_dir, pending = stage.trained_pick(found, out)
    dirs = {"base": out / "base", "subnet": subnet_dir, "cheapest": out / "cheapest"}
    runs = {"base": (dirs["base"], None), "cheapest": (dirs["cheapest"], save_spec(preset, cheapest, out / "cheapest.json"))}
    runs.update({k: (subnet_dir, v) for k, v in pending.items()})
    rand = baselines.random_or_none(baselines.frac(pick.choices), cfg.seed)
    if rand is not None:  # a latency-matched random subnet (+-5 %): what the search is worth beyond its latency
        dirs["random"] = out / "random"
        runs["random"] = (dirs["random"], save_spec(preset, rand, out / "random.json"))
    rs = stage.random_search(table_path, budget, search, out, say)
    if rs is not None:  # random search of the search's training cost: what the search bought over it
        dirs["random_search"] = out / "random-search"
        runs["random_search"] = (dirs["random_search"], rs)
    model_file = quality_model_file(cfg)
    if model_file:
        say(f"the quality model's pick under the budget ({model_file})")
        run_knapsack(cfg.preset, str(table_path), str(model_file), budget, S, out / "predicted-search")
        dirs["predicted"] = out / "predicted"
        runs["predicted"] = (dirs["predicted"], str(out / "predicted-search" / "subnet.json"))
    stage.train_all(runs, say)

    say("exporting the denoisers to ONNX")
    names = {k: stage.weights if k == "subnet" else "model" for k in dirs}
    onnx = {k: d / f"{names[k]}.onnx" for k, d in dirs.items()}
    weights = {k: d / f"{names[k]}.pt" for k, d in dirs.items()}
    exports = {}
    for k in onnx:
        spec = SubnetSpec.load(dirs[k] / "subnet.json")
        exports[k] = export_subnet_onnx(spec, torch.load(weights[k], weights_only=True), onnx[k], weights_path=weights[k]).to_dict()

    say(f"measuring the whole loops on {cfg.device} ({cfg.rounds} interleaved rounds, the base twice)")
    load["before_timing"] = load_average()
    bcfg = BenchConfig(device=cfg.device, threads=cfg.threads, sampler="ddim", steps=S, psnr=False)
    timing = compare_loops({**{k: (onnx[k], cfg.device) for k in onnx}, AGAIN: (onnx["base"], cfg.device)}, bcfg, rounds=cfg.rounds)
    say("estimates vs the measured loops; ONNX vs torch image")
    models = {"table": table, **({"predictor": load_cost_model(predictor, preset)} if predictor else {})}  # loaded once
    psnr = psnr_vs_reference(onnx["subnet"], bcfg)
    load["end"] = load_average()
    loops = deployed_loops(onnx, preset, S, cfg.threads, say)
    summary = {
        "budget_ms": budget,
        "steps": S,
        "table": str(table_path),
        "table_meta": {k: table.table.meta.get(k) for k in ("host", "device_model", "backend", "backend_version", "threads", "date")},
        "load_avg": load,
        "cpu_count": os.cpu_count(),
        "host": socket.gethostname(),
        "predictor": predictor,
        **{k: _row(dirs[k], table, S, timing[k], models, psnr if k == "subnet" else None) for k in dirs},
        "base_again": {k: timing[AGAIN][k] for k in ("median_ms", "wall_ms", "cpu_ms", "remeasure_pct", "clock")},
        "loop_measurement": {k: timing["base"]["loop"][k] for k in ("clock", "statistic", "rounds", "loops_per_round", "load_before", "load_after")},
        "exports": exports,
        "search": search,
    }
    summary["speedup_measured"] = summary["base"]["measured_loop_ms"] / summary["subnet"]["measured_loop_ms"]
    summary["psnr_delta"] = summary["subnet"]["psnr"] - summary["base"]["psnr"]
    summary["quality_delta"] = summary["subnet"]["quality"]["gain_db"] - summary["base"]["quality"]["gain_db"]
    for k, row in loops.items():
        summary[k]["loop"] = row
    summary["loop_delta"] = paired_delta(loops["subnet"], loops["base"])
    atomic_write_json(out / "summary.json", summary)
    from .report import write_report

    write_report(out, summary, cfg)
    return summary


def quality_model_file(cfg: PipelineConfig) -> Path | None:
    """The quality model the pipeline picks with: the one named, else the shipped one for the preset if any."""
    if cfg.quality_model == "none":
        return None
    path = Path(cfg.quality_model or f"predictors/quality-{cfg.preset}.json")
    if cfg.quality_model is None and not path.exists():
        return None
    return path


AGAIN = "base (again)"  # the base measured a second time in the same rounds


def deployed_loops(onnx: dict[str, Path], preset, steps: int, threads: int, say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """The loop metric of every exported model: its ONNX file at every one of the deployed loop's
    `steps`, on the held-out crops under the metric's noise seeds (the same seeds for every model:
    differences are paired)."""
    from .deploy.quality import deployed_loop_quality
    from .train.loop_quality import LoopQualityConfig

    lq = LoopQualityConfig(steps=steps)
    say(f"scoring the deployed loops' output ({lq.seeds} noise seeds x {lq.crops} held-out crops, {steps} DDIM steps, ONNX Runtime)")
    out = {}
    for k, path in onnx.items():
        r = deployed_loop_quality([path] * steps, preset, lq, threads=threads)
        out[k] = {**{key: v for key, v in r.items() if key not in ("per_seed", "eval_files")}, "seed_psnr": r["per_seed"]["psnr"]}
    return out


def paired_delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """a - b on single-sample PSNR, paired over the noise seeds (rcai/stats.py `paired_diff`: the
    mean difference and its 95% bootstrap interval over the seeds), and on the PSNR of the mean of
    the samples."""
    from .stats import paired_diff

    d = paired_diff(dict(enumerate(a["seed_psnr"])), dict(enumerate(b["seed_psnr"])))
    return {"sample_psnr": d["diff"], "sample_psnr_lo": d["lo"], "sample_psnr_hi": d["hi"], "mean_psnr": a["mean_psnr"] - b["mean_psnr"],
            "seeds": d["n"]}


def _row(run: Path, table: CostModel, S: int, timing: dict[str, Any], models: dict[str, CostModel], psnr: dict[str, Any] | None) -> dict[str, Any]:
    m = read_json(run / "metrics.json")
    spec = SubnetSpec.load(run / "subnet.json")
    est = table.estimate(spec.choices, S)
    row = {
        "run": str(run), "subnet": spec.hash, "params": m["params"], "flops_per_step": est.flops, "table_loop_ms": est.loop_ms,
        "quality": m["quality"], "psnr": m["psnr"], "ssim": m["ssim"], "psnr_gain_db": m["psnr_gain_db"],
        "bicubic_psnr": m["bicubic_psnr"], "bicubic_ssim": m["bicubic_ssim"],
    }
    row.update(measured_loop_ms=timing["median_ms"], repeatability=timing["repeatability"], remeasure_pct=timing["remeasure_pct"],
               loop_clock=timing["clock"], loop_wall_ms=timing["wall_ms"], loop_cpu_ms=timing["cpu_ms"],
               images_per_s=1e3 / timing["median_ms"],
               estimates={k: estimate_vs_measured(m, spec.choices, S, timing["median_ms"]) for k, m in models.items()})
    if psnr is not None:
        row.update(bench_psnr_onnx_vs_torch=psnr.get("psnr_db"), psnr_reference=psnr.get("reference"))
    return row
