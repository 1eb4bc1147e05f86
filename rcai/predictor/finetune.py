"""Adaptation of a trained predictor to a new device or a new family of networks (`init=`) from K
measured networks (shots), chosen so that it cannot make the predictor worse than using it as is.

Four methods, simplest first (METHODS):
  zero   the base predictor unchanged (several base heads: their average in log space);
  level  a fitted level: log ms = s * (base's log ms) + c per target (several base heads: a ridge
         mix of them), the slope shrunk towards 1 by a ridge whose strength leave-one-out picks;
  head   a new linear head on the base's frozen graph embeddings, shrunk towards the level fit
         (ridge, strength by leave-one-out);
  full   every weight fine-tuned from the level fit (a short fixed schedule when the shots are too
         few for a validation split, else the usual early-stopped training).
Each method is scored by cross-validation within the shots (min(K, cv_folds) folds: leave-one-out
for K <= 5): squared error of log ms on the held-out shots. Going from the current choice to a
more complex method needs a gain in that error larger than its standard error over the shots (and
MIN_GAIN): a method that is not clearly better than the zero-shot predictor on held-out shots is
not used. The chosen method is then fitted on all the shots; its name, the CV scores and the reason
go into the predictor file (meta "adaptation").

Shots far from the base's guess (beyond OUTLIER_CUT robust deviations and a factor OUTLIER_FACTOR
off the median ratio) are treated as glitched measurements and left out first.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import RcaiError
from .batch import collate
from .dataset import LatencyDataset
from .model import LatencyGNN
from .train import PredictorTrainConfig, fit, log_targets, robust_stats, seed_everything, split

METHODS = ("zero", "level", "head", "full")
RIDGE_ALPHAS = np.logspace(-3, 3, 13)
MIN_GAIN = 1e-4  # squared log error: a 1 % rms improvement at least
OUTLIER_CUT = 4.0  # robust standard deviations of the residuals from the base's guess...
OUTLIER_FACTOR = 2.0  # ...and at least this factor away in latency


def ridge_loo(f: np.ndarray, z: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, float]:
    """w, c minimising |z - f w - c|^2 + alpha |w - prior|^2, alpha by leave-one-out error."""
    n = len(z)
    if n < 3:
        return prior.copy(), float(np.mean(z - f @ prior)) if n else 0.0
    fm, zm = f.mean(0), z.mean()
    fc, zc = f - fm, (z - zm) - (f - fm) @ prior
    best = (np.inf, prior.copy())
    for a in RIDGE_ALPHAS:
        inv = np.linalg.inv(fc.T @ fc + a * np.eye(f.shape[1]))
        d = inv @ fc.T @ zc
        hat = np.einsum("ij,jk,ik->i", fc, inv, fc) + 1.0 / n
        loo = np.mean(((zc - fc @ d) / np.clip(1 - hat, 1e-6, None)) ** 2)
        if loo < best[0]:
            best = (loo, prior + d)
    w = best[1]
    return w, float(zm - fm @ w)


def _log_affine(model: LatencyGNN) -> tuple[np.ndarray, np.ndarray]:
    """Each head's log ms as an affine map of the graph embedding: A [heads, hidden], a [heads]."""
    w, b = model.head.weight.detach().double().numpy(), model.head.bias.detach().double().numpy()
    s, m = model.y_std.double().numpy(), model.y_mean.double().numpy()
    return w * s[:, None], b * s + m


def _with_head(base: LatencyGNN, W: np.ndarray, c: np.ndarray) -> LatencyGNN:
    """The base's trunk with new heads of log ms = W e + c (kept in the base's standardised scale)."""
    model = LatencyGNN(base.cfg, n_targets=len(W))
    model.load_state_dict({n: v for n, v in base.state_dict().items() if not n.startswith(("head.", "y_"))}, strict=False)
    m, s = float(base.y_mean.mean()), float(base.y_std.mean())
    with torch.no_grad():
        model.y_mean.fill_(m)
        model.y_std.fill_(s)
        model.head.weight.copy_(torch.from_numpy(W / s).float())
        model.head.bias.copy_(torch.from_numpy((c - m) / s).float())
    return model.eval()


class Shots:
    """The shots' log latencies and the base's frozen embeddings of them (computed once)."""

    def __init__(self, base: LatencyGNN, ds: LatencyDataset):
        self.base, self.ds = base, ds
        self.logy = log_targets(ds).double().numpy()  # [n, targets], NaN = not measured
        with torch.no_grad():
            self.emb = base.embed(collate(ds.graphs)).double().numpy()
        self.A, self.a = _log_affine(base)

    def heads(self, rows: np.ndarray) -> np.ndarray:
        return self.emb[rows] @ self.A.T + self.a  # every base head's log ms [n, k]

    def closed_form(self, method: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """W [targets, hidden], c [targets] of zero | level | head fitted on `rows`."""
        k, T = len(self.a), self.logy.shape[1]
        W, c = np.tile(self.A.mean(0), (T, 1)), np.full(T, self.a.mean())
        if method == "zero":
            return W, c
        for d in range(T):
            r = rows[np.isfinite(self.logy[rows, d])]
            y = self.logy[r, d]
            mix, c0 = ridge_loo(self.heads(r), y, np.full(k, 1.0 / k))
            W[d], c[d] = mix @ self.A, mix @ self.a + c0
            if method == "head":
                W[d], c[d] = ridge_loo(self.emb[r], y, W[d].copy())
        return W, c

    def fit(self, method: str, rows: np.ndarray, cfg: PredictorTrainConfig, progress: bool = False) -> tuple[LatencyGNN, dict]:
        if method != "full":
            return _with_head(self.base, *self.closed_form(method, rows)), {}
        model = _with_head(self.base, *self.closed_form("level", rows))
        gen = seed_everything(cfg.seed)
        z = torch.full(self.logy.shape, float("nan"))
        z[rows] = ((torch.from_numpy(self.logy[rows]) - model.y_mean.double()) / model.y_std.double()).float()
        tr, va = split(len(rows), cfg)
        tr, va = rows[tr].tolist(), rows[va].tolist()
        epochs = cfg.epochs if va else cfg.finetune_epochs
        info = fit(model, self.ds, z, tr, va, cfg, epochs, cfg.lr if va else cfg.finetune_lr, gen, progress) if epochs else {}
        return model, {"train": len(tr), "val": len(va), **info}

    def predict(self, method: str, rows: np.ndarray, held: np.ndarray, cfg: PredictorTrainConfig) -> np.ndarray:
        """log ms [len(held), targets] of `method` fitted on `rows`."""
        if method != "full":
            W, c = self.closed_form(method, rows)
            return self.emb[held] @ W.T + c
        model, _ = self.fit(method, rows, cfg)
        with torch.no_grad():
            return model.log_ms(collate([self.ds.graphs[i] for i in held])).double().numpy()


def drop_outliers(sh: Shots) -> int:
    """Set glitched shots (far from the base's guess) to NaN; returns how many."""
    zero = sh.closed_form("zero", np.arange(len(sh.logy)))
    pred = sh.emb @ zero[0].T + zero[1]
    dropped = 0
    for d in range(sh.logy.shape[1]):
        ok = np.isfinite(sh.logy[:, d])
        r = sh.logy[ok, d] - pred[ok, d]
        centre, scale = robust_stats(torch.from_numpy(r), fallback_std=0.0)
        bad = np.flatnonzero(ok)[np.abs(r - centre) > max(OUTLIER_CUT * scale, math.log(OUTLIER_FACTOR))]
        sh.logy[bad, d] = np.nan
        dropped += len(bad)
    return dropped


def cross_validate(sh: Shots, cfg: PredictorTrainConfig, methods=METHODS) -> tuple[dict[str, np.ndarray], int]:
    """Per method, the squared log error of every measured (shot, target) when held out; the folds."""
    rows = np.flatnonzero(np.isfinite(sh.logy).any(1))
    folds = min(cfg.cv_folds, len(rows))
    if folds < 2:
        return {m: np.zeros(0) for m in methods}, folds
    perm = rows[np.random.default_rng(cfg.seed).permutation(len(rows))]
    errs: dict[str, list] = {m: [] for m in methods}
    for k in range(folds):
        held = np.sort(perm[k::folds])
        train = np.sort(np.setdiff1d(perm, held))
        y = sh.logy[held]
        for m in methods:
            e = (sh.predict(m, train, held, cfg) - y) ** 2
            errs[m].append(e[np.isfinite(y)])
    return {m: np.concatenate(v) for m, v in errs.items()}, folds


def choose(errs: dict[str, np.ndarray]) -> tuple[str, str]:
    """The simplest method that no more complex one beats on the held-out shots by more than the
    standard error of the paired gain (and MIN_GAIN); and why."""
    best, why = "zero", []
    n = len(errs["zero"])
    if n < 2:
        return best, "too few shots to cross-validate: the base predictor is kept"
    for m in METHODS[1:]:
        if m not in errs:
            continue
        d = errs[best] - errs[m]
        gain, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(n))
        if gain > max(se, MIN_GAIN):
            why.append(f"{m} beats {best} by {gain:.4g} (s.e. {se:.2g})")
            best = m
        else:
            why.append(f"{m} not better than {best} ({gain:+.4g}, s.e. {se:.2g})")
    return best, "; ".join(why)


def rms_pct(e: np.ndarray) -> float:
    """Root mean squared log error as a percentage (0.1 -> ~10 %)."""
    return float(100 * math.expm1(math.sqrt(e.mean()))) if len(e) else float("nan")


def adapt(base: LatencyGNN, ds: LatencyDataset, cfg: PredictorTrainConfig, progress: bool = False,
          method: str = "auto") -> tuple[LatencyGNN, dict]:
    """The adapted model and a summary ("adaptation": method, cv, reason)."""
    if method != "auto" and method not in METHODS:
        raise RcaiError(f"unknown adaptation method {method!r}; known: auto, {', '.join(METHODS)}")
    sh = Shots(base, ds)
    dropped = drop_outliers(sh)
    errs, folds = cross_validate(sh, cfg)
    chosen, reason = choose(errs) if method == "auto" else (method, "chosen by the caller")
    rows = np.flatnonzero(np.isfinite(sh.logy).any(1))
    if len(rows) == 0:
        raise RcaiError(f"{ds.csv}: no usable measurement to adapt to")
    model, info = sh.fit(chosen, rows, cfg, progress)
    summary = {"method": chosen, "reason": reason, "shots": int(len(rows)), "folds": folds,
               "cv_mse_log": {m: float(e.mean()) if len(e) else None for m, e in errs.items()},
               "cv_rms_pct": {m: rms_pct(e) for m, e in errs.items()}}
    return model, {"train": int(len(rows)), "val": 0, **info, "outliers_dropped": dropped, "adaptation": summary}
