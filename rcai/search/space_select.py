"""TinyNAS-style search-space selection (Lin et al. 2020): before searching, pick the design space
(width multiplier x input resolution) whose subnets that satisfy the constraint have the most FLOPs
— the space more likely to hold high-capacity models under the budget.

Each candidate space is the base preset with `base_channels` scaled by the width (rounded to a
multiple of its GroupNorm groups' divisor 4) and the HR size set to the resolution (LR = HR / scale).
Constraints (one or both):
- peak activation memory (analytic, rcai/cost/counters.py: the largest op's live bytes at batch 1),
  which needs no profiling of spaces not built yet;
- latency of the whole sampling loop, predicted by the GNN latency predictor from each subnet's graph
  (rcai/predictor/arch_graph.py builds it for any candidate space without export). A cost table would
  need every candidate space profiled; the predictor extrapolates from the widths and resolutions it
  was trained on, so check the chosen space's latency once it is built (`rcai profile --archs`).
Per space: `samples` uniform random subnets, the fraction satisfying the constraint, and the FLOPs CDF
of those that do; chosen: the highest mean FLOPs among them.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..cost.model import CounterCostModel
from ..errors import RcaiError
from ..presets import Preset
from ..space.space import SearchSpace


@dataclass
class SpaceStats:
    width: float
    resolution: int
    preset: Preset
    satisfied: float  # fraction of sampled subnets within the constraint
    flops: np.ndarray  # sorted FLOPs of those subnets (the CDF's x values)

    @property
    def mean_flops(self) -> float:
        return float(self.flops.mean()) if len(self.flops) else 0.0

    def quantile(self, q: float) -> float:
        return float(np.quantile(self.flops, q)) if len(self.flops) else 0.0


def candidate(base: Preset, width: float, resolution: int) -> Preset:
    scale = base.hr_size // base.lr_size
    ch = max(4, int(round(base.base_channels * width / 4)) * 4)
    if resolution % (scale * 2 ** (base.levels - 1)):
        raise RcaiError(f"resolution {resolution} must be a multiple of {scale * 2 ** (base.levels - 1)} (scale x 2^(levels-1))")
    return replace(base, name=f"{base.name}-w{width:g}-r{resolution}", base_channels=ch, hr_size=resolution, lr_size=resolution // scale)


@dataclass(frozen=True)
class LatencyLimit:
    """Whole-loop latency budget: predicted step latency x `steps` <= `budget_ms`."""

    budget_ms: float
    predictor: Any  # rcai.predictor.LatencyPredictor
    steps: int = 1
    target: str | None = None  # the predictor's output head (None: its only one)
    batch: int = 1

    def __post_init__(self) -> None:
        if not self.budget_ms > 0 or self.steps < 1:
            raise RcaiError(f"latency budget must be > 0 ms over >= 1 step, got {self.budget_ms} ms, {self.steps} steps")
        self.predictor.head(self.target)  # fails early on a wrong target

    def loop_ms(self, preset: Preset, archs: list[dict[str, str]]) -> np.ndarray:
        return self.predictor.predict_archs(preset, archs, self.target, self.batch) * self.steps


def describe(max_memory_bytes: float | None, latency: LatencyLimit | None) -> str:
    parts = [] if max_memory_bytes is None else [f"peak activation memory <= {max_memory_bytes / 2**20:.3g} MiB"]
    if latency is not None:
        parts.append(f"predicted loop latency <= {latency.budget_ms:.4g} ms ({latency.steps} steps)")
    return " and ".join(parts) or "no constraint"


def space_stats(preset: Preset, max_memory_bytes: float | None, samples: int, seed: int,
                latency: LatencyLimit | None = None) -> tuple[float, np.ndarray]:
    space, counters = SearchSpace.of(preset), CounterCostModel(preset)
    rng = random.Random(seed)
    archs = [space.random_arch(rng) for _ in range(samples)]
    costs = [counters.estimate(a) for a in archs]
    ok = np.array([max_memory_bytes is None or c.memory_bytes <= max_memory_bytes for c in costs], dtype=bool)
    if latency is not None:
        ok &= latency.loop_ms(preset, archs) <= latency.budget_ms
    return float(ok.mean()) if samples else 0.0, np.sort([c.flops for c, fit in zip(costs, ok) if fit])


def select_space(base: Preset, widths: list[float], resolutions: list[int], max_memory_bytes: float | None = None,
                 samples: int = 500, seed: int = 0, latency: LatencyLimit | None = None) -> tuple[SpaceStats, list[SpaceStats]]:
    if not widths or not resolutions or min(widths) <= 0 or samples < 1:
        raise RcaiError(f"need widths > 0, resolutions and samples >= 1 (got widths {widths}, resolutions {resolutions}, samples {samples})")
    stats = []
    for w in widths:
        for r in resolutions:
            p = candidate(base, w, r)
            sat, flops = space_stats(p, max_memory_bytes, samples, seed, latency)
            stats.append(SpaceStats(w, r, p, sat, flops))
    best = max(stats, key=lambda s: (s.mean_flops, s.satisfied))
    if not len(best.flops):
        raise RcaiError(f"no sampled subnet of any candidate space satisfies {describe(max_memory_bytes, latency)}")
    return best, stats


def plot_cdfs(stats: list[SpaceStats], best: SpaceStats, path, max_memory_bytes: float | None, latency: LatencyLimit | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for s in stats:
        if not len(s.flops):
            continue
        y = np.arange(1, len(s.flops) + 1) / len(s.flops)
        ax.plot(s.flops / 1e6, y, lw=2.2 if s is best else 1.0, color="red" if s is best else None,
                label=f"w{s.width:g}-r{s.resolution} | {s.mean_flops / 1e6:.0f}M ({s.satisfied:.0%} fit)")
    ax.set_xlabel("MFLOPs of subnets within the constraint")
    ax.set_ylabel("CDF")
    ax.set_title(describe(max_memory_bytes, latency), fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
