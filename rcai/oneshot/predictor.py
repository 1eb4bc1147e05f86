"""The supernet's quality predictor: quality = intercept + the sum over the active slots of the
chosen op's effect IN THAT SLOT, fitted by ridge least squares on inherited evaluations of a few
hundred subnets (OFA's accuracy predictor in its additive form). Additive, it is exact under a
budget: `slot_scores` feeds the multiple-choice knapsack of rcai/search/select.py. Its own accuracy
(leave-one-out predictions: Spearman, RMSE) is stored with it.

File: JSON (`rcai-oneshot-predictor`), never a pickle.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import RcaiError
from ..io import atomic_write_json, read_json
from ..presets import Preset
from ..space.space import SearchSpace

KIND = "rcai-oneshot-predictor"


@dataclass
class SlotEffects:
    preset: str
    arch_hash: str
    intercept: float
    effects: dict[str, dict[str, float]]  # slot -> choice -> dB (vs that slot's first choice)
    n: int = 0
    ridge: float = 1e-2
    loo_spearman: float | None = None
    loo_rmse: float | None = None
    source: dict[str, Any] = field(default_factory=dict)  # what it was fitted on (supernet, crops, ...)

    def __call__(self, arch: Mapping[str, str]) -> float:
        return self.intercept + sum(self.effects.get(s, {}).get(c, 0.0) for s, c in arch.items())

    def slot_scores(self, space: SearchSpace) -> dict[str, dict[str, float]]:
        self._check(space.preset)
        return {s.path: {c: self.effects.get(s.path, {}).get(c, 0.0) for c in s.choices} for s in space.all_slots()}

    def _check(self, preset: Preset) -> None:
        if preset.arch_hash != self.arch_hash:
            raise RcaiError(f"predictor of preset {self.preset!r} ({self.arch_hash}) does not fit preset {preset.name!r} ({preset.arch_hash})")

    @classmethod
    def fit(cls, space: SearchSpace, records: Iterable[tuple[Mapping[str, str], float]], ridge: float = 1e-2, source: dict | None = None) -> "SlotEffects":
        rows = [(dict(a), float(q)) for a, q in records]
        if len(rows) < 3:
            raise RcaiError(f"the predictor needs at least 3 evaluated subnets, got {len(rows)}")
        cols = [(s.path, c) for s in space.all_slots() for c in list(s.choices)[1:]]  # the first choice of a slot is its reference
        index = {k: i for i, k in enumerate(cols)}
        X = np.zeros((len(rows), len(cols) + 1))
        X[:, 0] = 1.0
        for r, (a, _) in enumerate(rows):
            for s, c in a.items():
                if (s, c) in index:
                    X[r, 1 + index[(s, c)]] = 1.0
        y = np.array([q for _, q in rows])
        coef = _ridge(X, y, ridge)
        loo = _loo(X, y, ridge)
        effects: dict[str, dict[str, float]] = {s.path: {c: 0.0 for c in s.choices} for s in space.all_slots()}
        for (s, c), i in index.items():
            effects[s][c] = float(coef[1 + i])
        from scipy.stats import spearmanr

        rho = float(spearmanr(loo, y)[0]) if len(set(y)) > 1 else None
        return cls(space.preset.name, space.preset.arch_hash, float(coef[0]), effects, len(rows), ridge, rho,
                   float(np.sqrt(np.mean((loo - y) ** 2))), dict(source or {}))

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, {"kind": KIND, **asdict(self)})

    @classmethod
    def load(cls, path: str | Path, preset: Preset | None = None) -> "SlotEffects":
        d = read_json(path, expect=dict)
        if d.pop("kind", None) != KIND:
            raise RcaiError(f"{path}: not a one-shot quality predictor (kind {KIND!r})")
        try:
            model = cls(**d)
        except TypeError as e:
            raise RcaiError(f"{path}: damaged predictor file ({e})") from None
        if preset is not None:
            model._check(preset)
        return model


def _ridge(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Least squares with an L2 penalty on every coefficient but the intercept."""
    pen = lam * np.eye(X.shape[1])
    pen[0, 0] = 0.0
    return np.linalg.solve(X.T @ X + pen, X.T @ y)


def _loo(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Leave-one-out predictions of the ridge fit (exact, by the hat matrix)."""
    pen = lam * np.eye(X.shape[1])
    pen[0, 0] = 0.0
    H = X @ np.linalg.solve(X.T @ X + pen, X.T)
    fitted = H @ y
    h = np.clip(np.diag(H), None, 1 - 1e-9)
    return y - (y - fitted) / (1 - h)
