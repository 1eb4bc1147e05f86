"""A quality model learnt from subnets trained from scratch: quality = intercept + the sum, over the
active slots, of the chosen op's effect (OFA's accuracy predictor, in its simplest additive form).

Why: at the scale the CPU presets train (minutes), no weight-sharing signal ranks the ops the way
training each subnet from scratch does (`benchmarks/results/supernet_signal.md`), while a few dozen
from-scratch trainings resolve the per-op effects with intervals that exclude zero. Additive, the
model is exact under the budget: `slot_scores` feeds the knapsack of rcai/search/select.py.

An op's effect is relative to its slot's reference choice ("skip" where a slot has it, else the
choice that nests a slot, else the first); a reference has effect 0. Where the data rotate training
seeds, each seed gets an offset of its own (minutes-long trainings share a seed's data order and
initialisation, and one seed can be lucky for every subnet: tiny's seed 0 scores ~0.1 dB above seeds
1 and 2); predictions are for the average seed. Fit by least squares with a small ridge, 95%
intervals by bootstrap over subnets, and leave-one-out predictions for the model's own accuracy
(Spearman and RMSE), so every figure it gives stands beside its error.

File: JSON (`rcai-quality-model`), never a pickle. `rcai quality fit` writes it.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import RcaiError
from ..io import atomic_write_json
from ..presets import Preset
from ..space.space import SearchSpace
from .base import PROXIES, ProxyConfig

KIND = "rcai-quality-model"
MAX_DB = 1000.0  # bound on every figure of the model (dB)


def references(space: SearchSpace) -> dict[str, str]:
    """Each slot's reference choice: "skip" if it has one, else the choice holding a nested slot, else the first."""
    out = {}
    for s in space.all_slots():
        names = list(s.choices)
        nesting = [n for n in names if s.choices[n].slots]
        out[s.path] = "skip" if "skip" in names else (nesting[0] if nesting else names[0])
    return out


@dataclass
class AdditiveQuality:
    preset: str
    arch_hash: str
    intercept: float  # quality of the subnet that takes every slot's reference (average training seed)
    effects: dict[str, float]  # op name -> dB per slot that takes it, vs the slot's reference
    ci95: dict[str, list[float]] = field(default_factory=dict)  # op -> [lo, hi] (bootstrap over subnets)
    n: int = 0  # subnets fitted
    loo_spearman: float | None = None  # leave-one-out predictions vs measured (None: undefined)
    loo_rmse: float | None = None
    noise_sd: float | None = None  # one subnet's sd over training seeds, where the data repeat a subnet
    seed_offsets: dict[str, float] = field(default_factory=dict)  # training seed -> dB vs the average seed
    metric: str = "quality (posterior-mean gain over bicubic, dB)"
    source: str = ""  # how the data were made (training protocol)

    # -- use -----------------------------------------------------------------------------------
    def __call__(self, arch: Mapping[str, str]) -> float:
        """Predicted quality of a subnet (an Estimator: higher is better)."""
        return self.intercept + sum(self.effects.get(op, 0.0) for op in arch.values())

    def slot_scores(self, space: SearchSpace) -> dict[str, dict[str, float]]:
        """Per slot, each choice's additive score (the knapsack's input)."""
        self._check(space.preset)
        return {s.path: {n: self.effects.get(n, 0.0) for n in s.choices} for s in space.all_slots()}

    def _check(self, preset: Preset) -> None:
        if preset.arch_hash != self.arch_hash:
            raise RcaiError(f"quality model for preset {self.preset!r} ({self.arch_hash}) does not fit preset {preset.name!r} ({preset.arch_hash})")

    # -- fit -----------------------------------------------------------------------------------
    @classmethod
    def fit(cls, preset: Preset, records: Iterable[Mapping[str, Any]], ridge: float = 1e-3, resamples: int = 1000, seed: int = 0,
            source: str = "") -> "AdditiveQuality":
        """records: {"choices": arch, "quality": dB[, "seed": training seed]} of subnets trained from scratch."""
        space = SearchSpace.of(preset)
        refs = set(references(space).values())
        try:
            rows = [(space.validate(dict(r["choices"])), _db(r["quality"], f"record {k + 1}: quality"), r.get("seed")) for k, r in enumerate(records)]
        except (KeyError, TypeError, ValueError) as e:
            raise RcaiError(f"not a trained subnet's record ({type(e).__name__}: {e})") from None
        if len(rows) < 3:
            raise RcaiError(f"a quality model needs at least 3 trained subnets, got {len(rows)}")
        ops = sorted({op for arch, _, _ in rows for op in arch.values()} - refs)
        seeds = sorted({str(s) for _, _, s in rows if s is not None}) if all(s is not None for _, _, s in rows) else []
        # seed offsets as centred indicators (sum to 0 over the seeds): the intercept is the average seed's
        S = np.array([[(str(s) == k) - 1 / len(seeds) for k in seeds[1:]] for _, _, s in rows], float).reshape(len(rows), -1)
        X = np.c_[np.array([[Counter(arch.values())[op] for op in ops] for arch, _, _ in rows], float), S]
        y = np.array([q for _, q, _ in rows])
        coef = _ridge(X, y, ridge)
        rng = np.random.default_rng(seed)
        boot = np.array([_ridge(X[i], y[i], ridge) for i in (rng.integers(0, len(y), len(y)) for _ in range(resamples))])
        loo = np.array([_predict(_ridge(np.delete(X, k, 0), np.delete(y, k), ridge), X[k]) for k in range(len(y))])
        from scipy.stats import spearmanr

        if not np.all(np.isfinite(coef)) or np.abs(coef).max() > MAX_DB:
            raise RcaiError(f"the fit gives no finite per-op effects within {MAX_DB:g} dB (degenerate data?)")
        offsets = np.r_[0.0, coef[1 + len(ops):]]
        offsets -= offsets.mean()
        return cls(preset=preset.name, arch_hash=preset.arch_hash, intercept=float(coef[0]),
                   effects={op: float(c) for op, c in zip(ops, coef[1:])},
                   ci95={op: [float(np.percentile(boot[:, j + 1], 2.5)), float(np.percentile(boot[:, j + 1], 97.5))] for j, op in enumerate(ops)},
                   n=len(y), loo_spearman=_finite(spearmanr(loo, y)[0]), loo_rmse=_finite(np.sqrt(np.mean((loo - y) ** 2))),
                   noise_sd=_seed_sd(rows), seed_offsets={k: float(v) for k, v in zip(seeds, offsets)} if seeds else {},
                   source=source)

    # -- file ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        atomic_write_json(Path(path), {"kind": KIND, **asdict(self)})

    @classmethod
    def load(cls, path: str | Path, preset: Preset | None = None) -> "AdditiveQuality":
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError:
            raise RcaiError(f"{p}: no such quality model (make one with `rcai quality fit`)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RcaiError(f"{p}: not a quality model ({type(e).__name__})") from None
        if not isinstance(d, dict) or d.pop("kind", None) != KIND:
            raise RcaiError(f"{p}: not a quality model (no \"kind\": \"{KIND}\")")
        try:
            model = cls(**d)
            model.effects = {str(k): _db(v, f"effects.{k}") for k, v in model.effects.items()}
            model.intercept = _db(model.intercept, "intercept")
            model.seed_offsets = {str(k): _db(v, f"seed_offsets.{k}") for k, v in model.seed_offsets.items()}
            model.ci95 = {str(k): [_db(x, f"ci95.{k}") for x in v] for k, v in model.ci95.items()}
            for name in ("loo_rmse", "noise_sd"):
                if getattr(model, name) is not None:
                    setattr(model, name, _db(getattr(model, name), name))
        except (TypeError, ValueError, AttributeError) as e:
            raise RcaiError(f"{p}: corrupt quality model ({e})") from None
        if preset is not None:
            model._check(preset)
        return model


def _ridge(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Least squares with an intercept (not shrunk) and a small ridge on the effects."""
    A = np.c_[np.ones(len(y)), X]
    reg = lam * len(y) * np.eye(A.shape[1])
    reg[0, 0] = 0.0
    return np.linalg.solve(A.T @ A + reg, A.T @ y)


def _predict(coef: np.ndarray, x: np.ndarray) -> float:
    return float(coef[0] + x @ coef[1:])


def _db(x: Any, what: str) -> float:
    """A figure in dB: a real number (not a string or bool), finite and within +-MAX_DB (a quality
    gain over bicubic of a thousand dB is no measurement, and sums of such numbers overflow)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"{what} must be a number of dB, got {x!r}")
    if not (math.isfinite(x) and abs(x) <= MAX_DB):
        raise ValueError(f"{what} must be a finite number of dB within +-{MAX_DB:g}, got {x!r}")
    return float(x)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _seed_sd(rows: list[tuple[dict, float, Any]]) -> float | None:
    """Pooled sd over training seeds of the subnets trained more than once (None if none is)."""
    groups: dict[str, list[float]] = {}
    for arch, q, _ in rows:
        groups.setdefault(json.dumps(sorted(arch.items())), []).append(q)
    reps = [g for g in groups.values() if len(g) > 1]
    if not reps:
        return None
    ss = sum(sum((q - sum(g) / len(g)) ** 2 for q in g) for g in reps)
    return math.sqrt(ss / sum(len(g) - 1 for g in reps))


def _quality_model_proxy(preset: Preset, cfg: ProxyConfig) -> AdditiveQuality:
    if not cfg.quality_model:
        raise RcaiError("the quality-model proxy needs a model file: --quality-model PATH (made by `rcai quality fit`)")
    return AdditiveQuality.load(cfg.quality_model, preset)


PROXIES.add("quality-model", _quality_model_proxy)
