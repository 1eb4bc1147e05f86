"""Training of the latency GNN: masked Huber loss on standardised log-latency (one head per device), Adam,
early stopping on a validation split. `init=` fine-tunes a trained predictor on a new device
(see finetune.py). One set of settings for every device: no per-device tuning."""
from __future__ import annotations

import contextlib
import copy
import json
import math
import random
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import RcaiError
from .batch import collate
from .dataset import LatencyDataset
from .model import LatencyGNN, ModelConfig
from .ops import N_OPS
from .progress import bar


@dataclass(frozen=True)
class PredictorTrainConfig:
    seed: int = 0
    epochs: int = 80  # at most (cosine schedule over this length); early stopping may end sooner
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-5
    patience: int = 15  # epochs without validation improvement
    val_fraction: float = 0.1
    min_val: int = 8  # fewer validation graphs than this: no split, train all `epochs` (few-shot)
    finetune_epochs: int = 30  # few-shot fine-tuning (no validation split): fixed length
    finetune_lr: float = 3e-4
    cv_folds: int = 5  # adaptation (finetune.py): folds of the cross-validation within the shots

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PredictorTrainConfig":
        return cls(**json.loads(text))


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def deterministic():
    """torch deterministic algorithms (warn where none exists) for the block, then as before."""
    was, warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn)


def _std(x: torch.Tensor) -> torch.Tensor:
    s = x.std(0, unbiased=False) if len(x) > 1 else torch.ones(x.shape[1:])
    return torch.where(s > 1e-6, s, torch.ones_like(s))


def fit_input_stats(model: LatencyGNN, ds: LatencyDataset, idx: list[int]) -> None:
    num = torch.cat([ds.graphs[i].x[:, N_OPS:] for i in idx])
    glob = torch.cat([ds.graphs[i].g for i in idx])
    model.num_mean.copy_(num.mean(0)); model.num_std.copy_(_std(num))
    model.glob_mean.copy_(glob.mean(0)); model.glob_std.copy_(_std(glob))


def robust_stats(v: torch.Tensor, fallback_std: float = 1.0) -> tuple[float, float]:
    """Median and MAD-based standard deviation: one glitched measurement must not set the scale."""
    if len(v) == 0:
        return 0.0, fallback_std
    med = v.median()
    mad = 1.4826 * (v - med).abs().median()
    return float(med), float(mad) if len(v) > 2 and mad > 1e-3 else fallback_std


def fit_target_stats(model: LatencyGNN, logy: torch.Tensor, fallback_std: float = 1.0) -> None:
    """Per-head centre/scale of log(ms) over the measured entries."""
    for d in range(logy.shape[1]):
        v = logy[:, d][torch.isfinite(logy[:, d])]
        model.y_mean[d], model.y_std[d] = robust_stats(v, fallback_std)


def split(n: int, cfg: PredictorTrainConfig) -> tuple[list[int], list[int]]:
    perm = np.random.default_rng(cfg.seed).permutation(n).tolist()
    n_val = round(cfg.val_fraction * n)
    n_val = n_val if n_val >= cfg.min_val else 0
    return sorted(perm[n_val:]), sorted(perm[:n_val])


def masked_loss(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Huber loss (quadratic within 1 standardised unit, linear beyond) over measured entries:
    robust to the occasional glitched measurement (NAS-Bench-201's pixel3 has ~2 %)."""
    mask = torch.isfinite(y)
    err = torch.nn.functional.smooth_l1_loss(pred, torch.nan_to_num(y), reduction="none", beta=1.0)
    return (err * mask).sum() / mask.sum().clamp(min=1)


def fit(model: LatencyGNN, ds: LatencyDataset, z: torch.Tensor, train_idx: list[int], val_idx: list[int],
        cfg: PredictorTrainConfig, epochs: int, lr: float, gen: torch.Generator, progress: bool) -> dict:
    """Minimise the masked loss between model outputs and standardised targets `z` [n, heads].
    Returns a summary (epochs run, best validation loss); the model keeps its best state."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs), eta_min=lr * 0.05)
    val_batch = collate([ds.graphs[i] for i in val_idx]) if val_idx else None
    best, best_state, since, ep = math.inf, None, 0, 0
    pb = bar(progress)
    task = pb.add_task("training", total=epochs, status="") if pb else None
    with pb if pb else contextlib.nullcontext():
        for ep in range(1, epochs + 1):
            model.train()
            order = torch.randperm(len(train_idx), generator=gen).tolist()
            total = 0.0
            for s in range(0, len(order), cfg.batch_size):
                ids = [train_idx[k] for k in order[s : s + cfg.batch_size]]
                loss = masked_loss(model(collate([ds.graphs[i] for i in ids])), z[ids])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(ids)
            sched.step()
            status = f"train {total / len(order):.4f}"
            if val_batch is not None:
                model.eval()
                with torch.no_grad():
                    v = masked_loss(model(val_batch), z[val_idx]).item()
                status += f" val {v:.4f}"
                if v < best - 1e-6:
                    best, best_state, since = v, copy.deepcopy(model.state_dict()), 0
                else:
                    since += 1
            if pb:
                pb.update(task, advance=1, status=status)
            if val_batch is not None and since >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"epochs_run": ep, "best_val_loss": None if best_state is None else best}


def log_targets(ds: LatencyDataset) -> torch.Tensor:
    return torch.tensor(np.log(ds.latency_ms), dtype=torch.float32)


def train_new(ds: LatencyDataset, cfg: PredictorTrainConfig, model_cfg: ModelConfig, progress: bool = False
              ) -> tuple[LatencyGNN, dict]:
    """A new model with one head per device of the dataset."""
    if len(ds) < 2:
        raise RcaiError(f"{ds.csv}: need at least 2 models to train, got {len(ds)}")
    gen = seed_everything(cfg.seed)
    model = LatencyGNN(model_cfg, n_targets=len(ds.devices))
    tr, va = split(len(ds), cfg)
    if not va:
        import sys

        print(f"warning: {ds.csv}: {len(ds)} models are too few for a validation split (needs "
              f"{math.ceil((cfg.min_val - 0.5) / cfg.val_fraction)}): trained {cfg.epochs} epochs unchecked", file=sys.stderr)
    fit_input_stats(model, ds, tr)
    logy = log_targets(ds)
    fit_target_stats(model, logy[tr])
    z = (logy - model.y_mean) / model.y_std
    epochs = cfg.epochs
    info = fit(model, ds, z, tr, va, cfg, epochs, cfg.lr, gen, progress)
    return model, {"train": len(tr), "val": len(va), **info}
