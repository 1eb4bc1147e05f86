"""An evaluation's records grouped for paired comparisons over training seeds (the statistics
themselves are in rcai/stats.py)."""
from __future__ import annotations

from typing import Any

FIXED = ("base", "cheapest", "ranking", "uniform")  # methods whose architecture does not depend on the seed


def seed_pairs(rows: list[dict[str, Any]], methods: tuple[str, ...] = FIXED) -> list[dict[int, dict[str, Any]]]:
    """{0: record, 1: record} for each architecture (`arch` hash) of `methods` trained with both
    seed 0 and seed 1."""
    by_arch: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        if r["method"] in methods and r["seed"] in (0, 1):
            by_arch.setdefault(r["arch"], {})[r["seed"]] = r
    return [v for v in by_arch.values() if 0 in v and 1 in v]
