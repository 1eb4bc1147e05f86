"""`rcai quality collect`: the data of a quality model, subnets trained from scratch.

Random subnets are drawn at fractions of the base's loop latency (by the cost table, +-5%), so the
data cover the budgets a search will be asked for, and each is trained with the training protocol
(`rcai train`: steps, batch, lr, cosine schedule) and scored by the primary quality metric. Training
seeds rotate over `seeds`, so the model does not learn one seed's luck. Every finished subnet is one
line of <out>/results.jsonl (a killed run continues with the next subnet; its run folder resumes).
"""
from __future__ import annotations

import json
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import JsonConfig
from ..cost.load import load_cost_model
from ..cost.model import OpCostModel
from ..errors import RcaiError
from ..io import append_line, atomic_write_json, read_jsonl
from ..lock import exclusive
from ..space.presets import get_preset
from ..space.subnet import SubnetSpec
from ..train.evaluate import EvalConfig
from .select import sample_at_latency

RESULTS = "results.jsonl"


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
        if not self.fracs or any(not 0 < f for f in self.fracs):
            raise RcaiError(f"fracs must be positive fractions of the base's loop, got {self.fracs!r}")
        for name in ("per_frac", "train_steps", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise RcaiError(f"{name} must be a whole number >= 1, got {getattr(self, name)!r}")
        if not self.seeds:
            raise RcaiError("seeds must name at least one training seed")


def plan(cfg: CollectConfig) -> list[dict[str, Any]]:
    """The subnets to train: id, fraction, training seed, choices (deterministic in the config)."""
    preset = get_preset(cfg.preset)
    table = load_cost_model(cfg.cost_table, preset)
    if not isinstance(table, OpCostModel):
        raise RcaiError(f"{cfg.cost_table}: collecting needs a per-op cost model (a cost table), got a {table.name}")
    space = table.space
    loop = lambda a: table.estimate(a, cfg.steps_per_sample).loop_ms  # noqa: E731
    base = loop(space.base_arch())
    jobs, i = [], 0
    for f in cfg.fracs:
        for arch in sample_at_latency(space, loop, f * base, 0.05, cfg.per_frac, seed=cfg.sample_seed + round(f * 100)):
            jobs.append({"id": f"q{i:03d}", "frac": f, "seed": cfg.seeds[i % len(cfg.seeds)], "choices": arch})
            i += 1
    return jobs


def train_one(job: dict[str, Any], cfg: CollectConfig, out: Path) -> dict[str, Any]:
    import torch

    from ..train.trainer import TrainConfig, train

    torch.set_num_threads(1)
    run = out / job["id"]
    spec = SubnetSpec(get_preset(cfg.preset), job["choices"])
    run.mkdir(parents=True, exist_ok=True)
    spec.save(run / "subnet.json")
    tcfg = TrainConfig(preset=cfg.preset, subnet=str(run / "subnet.json"), steps=cfg.train_steps, batch_size=cfg.batch_size, lr=cfg.lr,
                       lr_schedule=cfg.lr_schedule, seed=job["seed"], eval=EvalConfig(steps=20, max_images=8, seed=0))
    m = train(tcfg, run / "train", resume=(run / "train" / "config.json").exists(), progress=False)
    q = m["quality"]
    return {**job, "arch": spec.hash, "quality": q["gain_db"], "quality_lo": q["gain_lo"], "quality_hi": q["gain_hi"],
            "psnr_gain_db": m["psnr_gain_db"], "params": m["params"]}


def _worker(payload):
    job, cfg, out = payload
    return train_one(job, cfg, out)


def collect(cfg: CollectConfig, out: str | Path, jobs: int = 1, on_done: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Train every planned subnet not yet in <out>/results.jsonl; return all finished records."""
    out = Path(out)
    with exclusive(out):
        out.mkdir(parents=True, exist_ok=True)
        cfg_file = out / "config.json"
        if cfg_file.exists() and json.loads(cfg_file.read_text()) != json.loads(json.dumps(cfg.to_dict())):
            raise RcaiError(f"{out} holds data of another collection config; use another --out")
        atomic_write_json(cfg_file, cfg.to_dict())
        log = out / RESULTS
        done = {r["id"]: r for r in read_jsonl(log)}
        todo = [j for j in plan(cfg) if j["id"] not in done]
        if todo:
            with mp.get_context("spawn").Pool(jobs) as pool:
                for rec in pool.imap_unordered(_worker, [(j, cfg, out) for j in todo]):
                    append_line(log, json.dumps(rec))
                    done[rec["id"]] = rec
                    if on_done:
                        on_done(rec)
        return sorted(done.values(), key=lambda r: r["id"])
