"""Few-shot adaptation of a trained predictor to a new device (`init=`).

1. Samples far from the base model's guess (beyond OUTLIER_CUT robust deviations and a factor
   OUTLIER_FACTOR) are treated as glitched measurements and left out.
2. The new head starts as a combination of the base heads: the base model's standardised outputs
   for the new samples are regressed (ridge, strength chosen by leave-one-out) onto the new device's
   standardised log-latency, shrunk towards the plain average of the heads. With one head (a
   single-device base) this is an affine recalibration in log space.
3. Then every weight is fine-tuned: a fixed, short schedule when there are too few samples for a
   validation split, else the usual early-stopped training.
"""
from __future__ import annotations

import numpy as np
import torch

from .batch import collate
from .dataset import LatencyDataset
from .model import LatencyGNN
from .train import PredictorTrainConfig, fit, fit_target_stats, log_targets, robust_stats, seed_everything, split

RIDGE_ALPHAS = np.logspace(-3, 3, 13)
OUTLIER_CUT = 4.0  # robust standard deviations of the residuals from the base's guess...
OUTLIER_FACTOR = 2.0  # ...and at least this factor away in latency


def inliers(f: np.ndarray, z: np.ndarray, prior: np.ndarray, y_std: float) -> np.ndarray:
    """Samples consistent with the base model (average head + offset; z = standardised log-latency,
    y_std = its scale in log(ms)). Drops glitched measurements, which a 10-sample regression cannot
    absorb: off by more than OUTLIER_CUT robust deviations and by more than OUTLIER_FACTOR."""
    r = z - f @ prior
    centre, scale = robust_stats(torch.from_numpy(r), fallback_std=0.0)
    return np.abs(r - centre) <= max(OUTLIER_CUT * scale, np.log(OUTLIER_FACTOR) / y_std)


def ridge_loo(f: np.ndarray, z: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, float]:
    """w, c minimising |z - f w - c|^2 + alpha |w - prior|^2, alpha by leave-one-out error."""
    n = len(z)
    if n < 3:
        return prior.copy(), float(np.mean(z - f @ prior))
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


def adapt(base: LatencyGNN, ds: LatencyDataset, cfg: PredictorTrainConfig, progress: bool = False) -> tuple[LatencyGNN, dict]:
    gen = seed_everything(cfg.seed)
    k = base.n_targets
    model = LatencyGNN(base.cfg, n_targets=len(ds.devices))
    sd = {n: v for n, v in base.state_dict().items() if not n.startswith(("head.", "y_"))}
    model.load_state_dict(sd, strict=False)  # trunk + input statistics of the base
    with torch.no_grad():
        f = base(collate(ds.graphs)).numpy().astype(np.float64)  # base heads, standardised
    logy = log_targets(ds)
    fit_target_stats(model, logy, fallback_std=float(base.y_std.mean()))
    z = (logy - model.y_mean) / model.y_std
    w_base, b_base = base.head.weight.detach().double().numpy(), base.head.bias.detach().double().numpy()
    mix, dropped = [], 0
    for d in range(len(ds.devices)):
        prior = np.full(k, 1.0 / k)
        rows = np.flatnonzero(np.isfinite(z[:, d].numpy()))
        zd = z[rows, d].double().numpy()
        keep = inliers(f[rows], zd, prior, float(model.y_std[d]))
        z[rows[~keep], d] = float("nan")  # not fitted, not fine-tuned on
        w, c = ridge_loo(f[rows[keep]], zd[keep], prior)
        dropped += int((~keep).sum())
        with torch.no_grad():
            model.head.weight[d] = torch.from_numpy(w @ w_base).float()
            model.head.bias[d] = float(w @ b_base + c)
        mix.append([round(float(v), 4) for v in w])
    tr, va = split(len(ds), cfg)
    epochs = cfg.epochs if va else cfg.finetune_epochs
    info = fit(model, ds, z, tr, va, cfg, epochs, cfg.lr if va else cfg.finetune_lr, gen, progress) if epochs else {}
    return model, {"train": len(tr), "val": len(va), "head_mix": mix, "outliers_dropped": dropped, **info}
