"""Training figures imported from an earlier run's results CSV instead of training again: a job
whose method, seed and subnet hash match a row there is the same architecture trained by the same
protocol. `reuse` is "CSV=LABEL" (the label names the earlier run in the records)."""
from __future__ import annotations

import csv
from typing import Any

from ..presets import Preset
from ..space.subnet import SubnetSpec

REUSED_FIELDS = ("quality", "quality_lo", "quality_hi", "psnr_gain_db", "denoise_mse", "params", "seconds")

Key = tuple[str, int, str]  # (method, seed, subnet hash)


def earlier_run(reuse: str) -> tuple[str, dict[Key, dict[str, float]]]:
    """The label and the earlier run's training figures by (method, seed, subnet hash)."""
    path, _, label = reuse.partition("=")
    with open(path, newline="") as f:
        rows = {(r["method"], int(r["seed"]), r["arch"]): r for r in csv.DictReader(f)}
    return label or path, {k: {"budget_frac": float(r["budget_frac"]), **{f: float(r[f]) for f in REUSED_FIELDS if r.get(f) not in (None, "")}}
                           for k, r in rows.items()}


def reuse_rows(jobs: list[dict[str, Any]], reuse: str, retrain: list[str], done: dict[str, dict], preset: Preset) -> list[dict[str, Any]]:
    """Records for `jobs` taken from the earlier run: jobs with a fixed architecture whose (method,
    seed, hash) has a row there, except those already `done`. A job named in `retrain` gets a
    `reuse_check` record instead (no quality: it runs again, and a report can put both side by side)."""
    label, old = earlier_run(reuse)
    out = []
    for job in jobs:
        if "arch" not in job or job["id"] in done:
            continue
        arch = SubnetSpec(preset, job["arch"]).hash
        row = old.get((job["method"], job["seed"], arch))
        if row is None:
            continue
        rec = {**{k: v for k, v in job.items() if k != "arch"}, "arch": arch, "choices": job["arch"], "reused": label,
               **{k: v for k, v in row.items() if k != "budget_frac"}}
        if job["id"] in retrain:
            rec = {"id": job["id"], "reuse_check": rec}
        out.append(rec)
    return out


def earlier_training(reuse: str | None, job: dict[str, Any], arch_hash: str) -> dict[str, Any] | None:
    """A searched job whose search reproduced the earlier run's subnet (same budget, seed and hash):
    that subnet's training figures, so it need not be trained again. None otherwise."""
    if not reuse or job["method"] != "searched":
        return None
    label, old = earlier_run(reuse)
    row = old.get(("searched", job["seed"], arch_hash))
    if row is None or abs(row["budget_frac"] - job["budget_frac"]) > 1e-9:
        return None
    return {"reused": label, "search_reproduced": True, **{k: v for k, v in row.items() if k != "budget_frac"}}
