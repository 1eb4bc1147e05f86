"""Subnets judged with the weights they inherit from the supernet, by the metric a subnet trained
from scratch is judged by (rcai/train/quality.py `gain`: posterior-mean gain over bicubic, dB), in
about a second each on the tiny preset; the predictor's data (one JSON line per subnet, so a killed
collection resumes where it stopped) and its fit.

Crops: `split="eval"` are the held-out crops every from-scratch figure is read on (a rank study
compares on them); a search chooses on `split="val"`, the validation photos, so the held-out crops
that judge its pick never took part in the choice.
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..io import append_line, read_jsonl
from ..progress import progress_bar
from ..space.space import Arch, SearchSpace
from ..train.quality import EvalSet, eval_set, gain
from ..train.setup import schedule_of
from .net import Supernet
from .predictor import SlotEffects

PREDICTOR_FILE = "predictor.json"
PREDICTOR_DATA = "inherited.jsonl"


def inherited_quality(sn: Supernet, arch: Mapping[str, str], ev: EvalSet) -> dict[str, Any]:
    """The subnet's quality with inherited weights (the `gain` figures)."""
    subnet, _ = sn.subnet(arch)
    return gain(subnet, ev, schedule_of(sn.preset))


def crops(sn: Supernet, split: str, data_dir: str | None = None) -> EvalSet:
    return eval_set(sn.preset, data_dir, split=split)


def spread_archs(space: SearchSpace, n: int, seed: int) -> list[Arch]:
    """n distinct subnets spread over the whole latency range: each draws its own preference over the
    ops (Dirichlet(1) per set of choices) and every slot picks by it, so mostly-skip and mostly-conv5x5
    subnets are drawn as often as the typical mix a uniform draw gives."""
    rng = random.Random(seed)
    gen = np.random.default_rng(seed)
    out: dict[str, Arch] = {}
    for _ in range(50 * n):
        if len(out) == n:
            break
        prefs: dict[tuple, np.ndarray] = {}

        def pick(slot):
            names = tuple(slot.choices)
            w = prefs.setdefault(names, gen.dirichlet(np.ones(len(names))))
            return rng.choices(names, weights=list(w))[0]

        arch = space.pick(pick)
        out.setdefault(json.dumps(sorted(arch.items())), arch)
    return list(out.values())


def collect(sn: Supernet, folder: str | Path, n: int, seed: int = 0, split: str = "val", data_dir: str | None = None,
            progress: bool = False) -> list[dict[str, Any]]:
    """Inherited quality of `n` spread subnets, one line each in folder/inherited.jsonl (a rerun
    evaluates only those not there yet)."""
    path = Path(folder) / PREDICTOR_DATA
    done = {json.dumps(sorted(r["arch"].items())): r for r in read_jsonl(path) if isinstance(r, dict) and "arch" in r and "gain_db" in r}
    archs = spread_archs(SearchSpace.of(sn.preset), n, seed)
    todo = [a for a in archs if json.dumps(sorted(a.items())) not in done]
    ev = crops(sn, split, data_dir) if todo else None
    with progress_bar(progress, "inherited evaluations", len(archs), len(archs) - len(todo)) as advance:
        for a in todo:
            t0 = time.process_time()
            q = inherited_quality(sn, a, ev)
            rec = {"arch": a, "gain_db": q["gain_db"], "split": split, "cpu_s": time.process_time() - t0}
            append_line(path, json.dumps(rec))
            done[json.dumps(sorted(a.items()))] = rec
            advance()
    return [done[json.dumps(sorted(a.items()))] for a in archs]


def fit_predictor(sn: Supernet, records: list[dict[str, Any]], source: dict | None = None) -> SlotEffects:
    return SlotEffects.fit(SearchSpace.of(sn.preset), [(r["arch"], r["gain_db"]) for r in records], source=source)


def fit_beside(supernet: str | Path, n: int, seed: int = 0, data_dir: str | None = None, device: str = "auto", progress: bool = False) -> dict[str, Any]:
    """Judge `n` spread subnets of the supernet file with inherited weights (validation crops) and
    write the predictor fitted on them beside it (predictor.json; the evaluations in inherited.jsonl)."""
    from ..train.device import resolve_train_device
    from .net import load_supernet

    supernet = Path(supernet)
    sn = load_supernet(supernet, device=resolve_train_device(device))
    recs = collect(sn, supernet.parent, n, seed=seed, data_dir=data_dir, progress=progress)
    cpu_s = sum(r.get("cpu_s", 0.0) for r in recs)  # what the evaluations cost (CPU seconds, resumes included)
    model = fit_predictor(sn, recs, source={"supernet": str(supernet), "subnets": n, "seed": seed, "crops": "val", "cpu_s": cpu_s})
    model.save(supernet.parent / PREDICTOR_FILE)
    return {"predictor": str(supernet.parent / PREDICTOR_FILE), "n": model.n, "loo_spearman": model.loo_spearman, "loo_rmse": model.loo_rmse, "cpu_s": cpu_s}
