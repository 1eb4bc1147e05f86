"""`rcai quality collect`: the data of a quality model, subnets trained from scratch.

Random subnets are drawn at fractions of the base's loop latency (by the cost table, +-5%), so the
data cover the budgets a search will be asked for, and each is trained with the training protocol
(`rcai train`: steps, batch, lr, cosine schedule) and scored by the primary quality metric. Training
seeds rotate over `seeds`, so the model does not learn one seed's luck. Every finished subnet is one
line of <out>/results.jsonl (a killed run continues with the next subnet; its run folder resumes).
Each subnet is one training job (rcai/train/job.py) dispatched by the local executor
(rcai/search/executors.py) on the training device: its workers die with the command
(rcai/procs.py), so a kill -9 leaves no worker training on and holding a subnet's lock, and the
rerun resumes at once. The training device and precision are not part of the collection's config:
a collection started on a GPU continues on a CPU.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import JsonConfig
from ..cost.load import load_cost_model
from ..cost.model import OpCostModel
from ..errors import RcaiError
from ..io import append_line, atomic_write_json, read_json
from ..runfolder import open_run
from ..proxies.additive import MAX_DB
from ..presets import get_preset
from ..space.subnet import SubnetSpec
from ..train.evaluate import EvalConfig
from .select import sample_at_latency
from ..config import counts_of, require_counts

RESULTS = "results.jsonl"
TOL = 0.05  # a subnet drawn at fraction f has a loop within f * base * (1 +- TOL)


@dataclass(frozen=True)
class CollectConfig(JsonConfig):
    preset: str = "tiny"
    cost_table: str = "latency_tables/cpu-tiny.csv"
    fracs: tuple[float, ...] = (0.35, 0.45, 0.55, 0.65, 0.75, 0.85)  # of the base's loop latency
    per_frac: int = 6  # subnets drawn at each fraction
    seeds: tuple[int, ...] = (0, 1, 2)  # training seeds, in rotation
    sample_seed: int = 5000  # draws of the subnets (the Pareto benchmark's random subnets use others)
    train_steps: int = 800
    batch_size: int = 8
    lr: float = 2e-3
    lr_schedule: str = "cosine"
    steps_per_sample: int = 50

    def __post_init__(self) -> None:
        if not self.fracs or any(isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < math.inf for f in self.fracs):
            raise RcaiError(f"fracs must be positive finite fractions of the base's loop, got {self.fracs!r}")
        require_counts(counts_of(self, "per_frac", "train_steps", "batch_size"))
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in self.seeds):
            raise RcaiError(f"seeds must name at least one training seed (whole numbers), got {self.seeds!r}")


def plan(cfg: CollectConfig) -> list[dict[str, Any]]:
    """The subnets to train: id, fraction, training seed, choices (deterministic in the config)."""
    preset = get_preset(cfg.preset)
    table = load_cost_model(cfg.cost_table, preset)
    if not isinstance(table, OpCostModel):
        raise RcaiError(f"{cfg.cost_table}: collecting needs a per-op cost model (a cost table), got a {table.name}")
    space = table.space
    loop = lambda a: table.estimate(a, cfg.steps_per_sample).loop_ms  # noqa: E731
    base = loop(space.base_arch())
    op_ms = lambda sp: table.op_metric(sp, "latency_ms")  # noqa: E731
    lo, hi = (loop(space.extreme_arch(op_ms, largest=side)[0]) / base for side in (False, True))
    for f in cfg.fracs:  # the window must meet the space's range, else no subnet can be drawn there
        if f * (1 + TOL) < lo or f * (1 - TOL) > hi:
            raise RcaiError(f"fraction {f:g} of the base's loop is outside this space's range ({lo:.3f} to {hi:.3f} x base, "
                            f"by {cfg.cost_table})")
    jobs, i = [], 0
    for f in cfg.fracs:
        for arch in sample_at_latency(space, loop, f * base, TOL, cfg.per_frac, seed=cfg.sample_seed + round(f * 100)):
            jobs.append({"id": f"q{i:03d}", "frac": f, "seed": cfg.seeds[i % len(cfg.seeds)], "choices": arch})
            i += 1
    return jobs


def subnet_job(job: dict[str, Any], cfg: CollectConfig, out: Path, device: str = "auto", precision: str = "auto"):
    """The TrainJob of a planned subnet (writes its subnet.json)."""
    from ..train.protocol import TrainProtocol, train_job

    run = out / job["id"]
    spec = SubnetSpec(get_preset(cfg.preset), job["choices"])
    run.mkdir(parents=True, exist_ok=True)
    spec.save(run / "subnet.json")
    protocol = TrainProtocol(steps=cfg.train_steps, batch_size=cfg.batch_size, lr=cfg.lr, lr_schedule=cfg.lr_schedule, ema=0.0, eval_at=())
    return train_job(protocol, run / "train", preset=cfg.preset, subnet=run / "subnet.json", seed=job["seed"],
                     eval=EvalConfig(steps=20, max_images=8, seed=0), device=device, precision=precision)


def record(job: dict[str, Any], cfg: CollectConfig, out: Path, m: dict[str, Any]) -> dict[str, Any]:
    """The results.jsonl line of a trained subnet (its training's metrics `m`)."""
    run = out / job["id"]
    spec = SubnetSpec(get_preset(cfg.preset), job["choices"])
    q = m["quality"]
    if not (isinstance(q["gain_db"], (int, float)) and math.isfinite(q["gain_db"])):
        raise RcaiError(f"{run}: subnet {job['id']} trained to a non-finite quality ({q['gain_db']!r}); not recorded")
    return {**job, "arch": spec.hash, "quality": q["gain_db"], "quality_lo": q["gain_lo"], "quality_hi": q["gain_hi"],
            "psnr_gain_db": m["psnr_gain_db"], "params": m["params"]}


def train_one(job: dict[str, Any], cfg: CollectConfig, out: Path) -> dict[str, Any]:
    """One planned subnet trained here, on one torch thread (what a collection's worker does)."""
    from ..threads import torch_threads

    with torch_threads(1):
        return record(job, cfg, out, subnet_job(job, cfg, out).run())


def read_results(path: Path, plan_jobs: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The finished records of a results.jsonl by id. A line that is not a record of this collection
    (not a dict, no planned id, choices other than the plan's, no finite quality) is a one-line
    RcaiError naming it; an unparsable last line (cut by a kill) is left to be redone."""
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RcaiError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    planned = {j["id"]: j for j in plan_jobs} if plan_jobs is not None else None
    lines, done = text.splitlines(), {}
    for n, line in enumerate(lines, 1):
        where = f"{path}: line {n}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines) and not text.endswith("\n"):
                break  # torn by a kill: append_line drops it, the subnet is trained again
            raise RcaiError(f"{where} is not JSON; fix or remove the line (its subnet is trained again)") from None
        check_record(rec, where)
        if planned is not None:
            job = planned.get(rec["id"])
            if job is None or job["choices"] != rec["choices"]:
                raise RcaiError(f"{where}: subnet {rec['id']!r} is not this collection's (another config?); use another --out")
        if rec["id"] in done:
            raise RcaiError(f"{where}: subnet {rec['id']!r} recorded twice; remove one of its lines")
        done[rec["id"]] = rec
    return done


def check_record(rec: Any, where: str) -> None:
    """A results.jsonl record: a dict with a string id, a dict of choices and a finite number as quality."""
    if not isinstance(rec, dict):
        raise RcaiError(f"{where}: expected a JSON object (a trained subnet's record), got a JSON {type(rec).__name__}")
    if not isinstance(rec.get("id"), str):
        raise RcaiError(f"{where}: no subnet \"id\" (a string) in the record")
    if not isinstance(rec.get("choices"), dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in rec["choices"].items()):
        raise RcaiError(f"{where}: \"choices\" must map slots to op names")
    q = rec.get("quality")
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not math.isfinite(q) or abs(q) > MAX_DB:
        raise RcaiError(f"{where}: \"quality\" must be a finite number of dB (|q| <= {MAX_DB:g}), got {q!r}")
    s = rec.get("seed")
    if s is not None and (isinstance(s, bool) or not isinstance(s, (int, str))):
        raise RcaiError(f"{where}: \"seed\" must be a training seed (a whole number), got {s!r}")


def collect(cfg: CollectConfig, out: str | Path, jobs: int = 1, on_done: Callable[[dict[str, Any]], None] | None = None,
            on_start: Callable[[int, int], None] | None = None, train_device: str = "auto", train_precision: str = "auto") -> list[dict[str, Any]]:
    """Train every planned subnet not yet in <out>/results.jsonl; return all finished records.
    on_start(planned, already done) is called once the inputs are checked, before any training."""
    from ..search.executors import make_executor
    from ..train.device import check_precision, resolve_train_device

    require_counts({"jobs": jobs}, "--")
    check_precision(train_precision)
    resolve_train_device(train_device)  # cuda without a GPU: refused before anything is written
    executor = make_executor("local", jobs)
    out = Path(out)
    with open_run(out, lambda: plan(cfg)) as planned:  # the plan (its cost table, fractions) checked before the folder exists
        out.mkdir(parents=True, exist_ok=True)
        cfg_file = out / "config.json"
        if cfg_file.exists() and read_json(cfg_file, dict) != json.loads(json.dumps(cfg.to_dict())):
            raise RcaiError(f"{out} holds data of another collection config; use another --out")
        log = out / RESULTS
        done = read_results(log, planned)  # before anything is written: a bad file changes nothing
        atomic_write_json(cfg_file, cfg.to_dict())
        todo = [j for j in planned if j["id"] not in done]
        if on_start:
            on_start(len(planned), len(done))
        with executor:
            for i, m in executor.train([subnet_job(j, cfg, out, train_device, train_precision) for j in todo], ordered=False):
                rec = record(todo[i], cfg, out, m)
                append_line(log, json.dumps(rec))
                done[rec["id"]] = rec
                if on_done:
                    on_done(rec)
        return sorted(done.values(), key=lambda r: r["id"])
