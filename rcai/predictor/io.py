"""Predictor files: one torch.save'd dict of plain tensors and strings (state_dict, JSON metadata),
loaded with `torch.load(weights_only=True)`, so opening a file cannot run code."""
from __future__ import annotations

import json
import os
from pathlib import Path



from ..errors import RcaiError
from ..io import atomic_torch_save, load_torch
from .graph import FEATURE_VERSION
from .model import LatencyGNN, ModelConfig

FORMAT = "rcai-latency-predictor"
FORMAT_VERSION = 1


def save_model(path: str | os.PathLike, model: LatencyGNN, meta: dict) -> Path:
    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "feature_version": FEATURE_VERSION,
        "model_config": model.cfg.to_json(),
        "meta_json": json.dumps(meta, sort_keys=True),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }
    return atomic_torch_save(blob, path)


def load_model(path: str | os.PathLike) -> tuple[LatencyGNN, dict]:
    blob = load_torch(path, "predictor file")
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise RcaiError(f"{path}: not an rcai latency predictor")
    if blob.get("format_version") != FORMAT_VERSION:
        raise RcaiError(f"{path}: predictor file format {blob.get('format_version')}, this rcai reads {FORMAT_VERSION}")
    if blob.get("feature_version") != FEATURE_VERSION:
        raise RcaiError(f"{path}: predictor built for graph feature version {blob.get('feature_version')}, "
                        f"this rcai encodes version {FEATURE_VERSION}: retrain it")
    try:
        cfg = ModelConfig.from_json(blob["model_config"])
        meta = json.loads(blob["meta_json"])
        sd = blob["state_dict"]
        model = LatencyGNN(cfg, n_targets=sd["head.weight"].shape[0])
        model.load_state_dict(sd, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise RcaiError(f"{path}: damaged predictor file ({type(e).__name__}: {str(e)[:120]})") from None
    model.eval()
    return model, meta
