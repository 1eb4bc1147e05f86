"""One job of an evaluation: an architecture (given, or found by a search run now) trained from
scratch on the evaluation's training protocol and scored by the primary quality metric
(rcai/train/quality.py). A job is a dict with `id`, `method`, `budget_frac`, `seed` and either
`arch` (choices) or, for `searched` / `variant` / `predicted`, `budget_ms`; the record returned
is the job plus the figures, ready for the journal (rcai/evaluate/journal.py)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from ..config import JsonConfig
from ..search.config import DartsOptions
from ..train.evaluate import EvalConfig
from .journal import append
from .reuse import earlier_training

SEARCHED = ("searched", "variant")  # the bilevel search (DARTS) picks the architecture


@dataclass(frozen=True)
class JobConfig(JsonConfig):
    """The protocol every job of one evaluation shares. Field names are the benchmarks' option
    names (`from_args`); their --softmax and --penalty go into the searches' option group `darts`."""

    out: str = "runs/pareto"  # job folders: <out>/<job id>/{search,train,subnet.json}
    preset: str = "tiny"
    table: str = "latency_tables/cpu-tiny.csv"  # the cost table of the searches
    train_steps: int = 800
    batch: int = 8
    lr: float = 2e-3
    lr_schedule: str = "cosine"
    steps_per_sample: int = 50
    quality_model: str | None = None  # for `predicted` jobs: knapsack on this quality model
    reuse: str | None = None  # CSV=LABEL: a searched job that reproduces the earlier run's subnet takes its figures (rcai/evaluate/reuse.py)
    train_device: str = "auto"  # where the from-scratch trainings run (rcai/train/device.py), the bilevel searches too
    train_precision: str = "auto"
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(steps=20, max_images=8, seed=0))
    darts: DartsOptions = field(default_factory=DartsOptions)  # the bilevel searches' (softmax, penalty: unless the job names one)

    @classmethod
    def from_args(cls, args: Any, **over: Any) -> "JobConfig":
        """The config from an argparse namespace: every field it has, its DARTS_ARGS in `darts`, the defaults for the rest."""
        darts = DartsOptions(**{k: getattr(args, k) for k in DARTS_ARGS if hasattr(args, k)})
        return cls(**{**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}, "darts": darts, **over})

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str | None = None):
        groups = {k: c.from_dict(d[k], k) for k, c in (("eval", EvalConfig), ("darts", DartsOptions)) if isinstance(d.get(k), dict)}
        return super().from_dict({**d, **groups}, where)


DARTS_ARGS = ("softmax", "penalty")  # the benchmarks' options that are the searches' (JobConfig.darts)


def run_job(job: dict[str, Any], cfg: JobConfig) -> dict[str, Any]:
    """Search (where the job asks for one), then train the architecture from scratch (a TrainJob on
    the job's training device, placed by the executor: `run_all`); resumes a killed search or
    training from its folder."""
    from ..presets import get_preset
    from dataclasses import replace

    from ..search.strategies.base import StrategyConfig
    from ..search.strategies.run import run_knapsack, run_strategy
    from ..space.subnet import SubnetSpec
    from ..train.protocol import TrainProtocol, train_job

    out = Path(cfg.out) / job["id"]
    ev = cfg.eval
    t0 = time.perf_counter()
    rec = {k: v for k, v in job.items() if k != "arch"}
    if job["method"] in SEARCHED:
        darts = replace(cfg.darts, eval=ev, train_device=cfg.train_device, train_precision=cfg.train_precision, **{k: job[k] for k in DARTS_ARGS if k in job})
        scfg = StrategyConfig(strategy="darts", preset=cfg.preset, cost_table=cfg.table, latency_budget_ms=job["budget_ms"], seed=job["seed"], darts=darts)
        m = run_strategy(scfg, out / "search", resume=(out / "search" / "config.json").exists())[1]
        rec["inherited_quality"] = m["quality"]["gain_db"]
        rec["search_notes"] = m["search"]["notes"]
        arch = SubnetSpec.load(out / "search" / "subnet.json").choices
    elif job["method"] == "predicted":
        result, summary = run_knapsack(cfg.preset, cfg.table, cfg.quality_model, job["budget_ms"], cfg.steps_per_sample, out / "search")
        rec["predicted_quality"] = summary["best_score"]
        arch = result.subnet.choices
    else:
        arch = job["arch"]
    spec = SubnetSpec(get_preset(cfg.preset), arch)
    spec.save(out / "subnet.json")
    earlier = earlier_training(cfg.reuse, job, spec.hash)
    if earlier is not None:  # the search found the very subnet the earlier run trained: its training is reused
        rec.update(arch=spec.hash, choices=arch, **earlier)
        return rec
    protocol = TrainProtocol(steps=cfg.train_steps, batch_size=cfg.batch, lr=cfg.lr, lr_schedule=cfg.lr_schedule, ema=0.0, eval_at=())
    m = train_job(protocol, out / "train", preset=cfg.preset, subnet=out / "subnet.json", seed=job["seed"], eval=ev,
                  device=cfg.train_device, precision=cfg.train_precision).run()
    q = m["quality"]
    rec.update(arch=spec.hash, choices=arch, quality=q["gain_db"], quality_lo=q["gain_lo"], quality_hi=q["gain_hi"],
               denoise_mse=q["denoise_mse"], psnr_gain_db=m["psnr_gain_db"], params=m["params"], seconds=time.perf_counter() - t0)
    return rec


def worker(payload: tuple[dict[str, Any], JobConfig]) -> dict[str, Any]:
    """run_job for a process pool: a failure becomes an error record and the other jobs go on."""
    from ..threads import torch_threads

    job, cfg = payload
    try:
        with torch_threads(1):  # the search too: jobs run side by side
            return run_job(job, cfg)
    except Exception as e:
        return {"id": job["id"], "error": f"{type(e).__name__}: {e}"}


def run_all(jobs: list[dict[str, Any]], cfg: JobConfig, log: str | Path, processes: int, done: dict[str, dict],
            say: Callable[[str], None] = lambda m: None) -> None:
    """The jobs in `processes` workers of the local executor (one torch thread each; job i on the
    device the executor places it, a GPU each where there are GPUs; they die with this process),
    each record appended to the journal `log` as it arrives; the finished ones also go into `done`."""
    from dataclasses import replace

    from ..search.executors import make_executor

    with make_executor("local", processes, threads=1) as pool:
        payloads = [(j, replace(cfg, train_device=pool.place(cfg.train_device, i))) for i, j in enumerate(jobs)]
        for rec in pool.imap_unordered(worker, payloads):
            append(log, rec)
            say(f"{rec['id']}: {rec.get('quality', rec.get('error'))}")
            if "error" not in rec:
                done[rec["id"]] = rec
