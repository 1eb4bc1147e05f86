"""LatencyPredictor: a trained GNN plus its metadata; predicts whole-network latency in ms for ONNX
models given as files, in-memory ModelProtos or already encoded graphs, and for subnets of a preset
given by their architecture (encoded without export: the fast path of searches)."""
from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence, Union

import numpy as np
import onnx
import torch
from torch_geometric.data import Data

from .. import __version__
from ..errors import RcaiError
from . import io
from ..presets import Preset
from .arch_graph import ArchEncoder
from .batch import GraphBatch, collate
from .dataset import LatencyDataset, load_dataset
from .finetune import adapt
from .graph import FEATURE_VERSION, encode_onnx
from .model import LatencyGNN, ModelConfig
from .train import PredictorTrainConfig, deterministic, train_new

ModelLike = Union[str, os.PathLike, onnx.ModelProto, Data]


def _batches(graphs: list[Data], max_nodes: int) -> Iterator[list[Data]]:
    start, nodes = 0, 0
    for k, d in enumerate(graphs):
        if k > start and nodes + d.num_nodes > max_nodes:
            yield graphs[start:k]
            start, nodes = k, 0
        nodes += d.num_nodes
    if start < len(graphs):
        yield graphs[start:]


class LatencyPredictor:
    def __init__(self, model: LatencyGNN, meta: dict):
        self.model = model.eval()
        self.meta = meta

    @property
    def targets(self) -> list[str]:
        """Device names, one per output head."""
        return list(self.meta["targets"])

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LatencyPredictor":
        return cls(*io.load_model(path))

    def save(self, path: str | os.PathLike) -> Path:
        return io.save_model(path, self.model, self.meta)

    def head(self, target: str | None) -> int:
        if target is None:
            if len(self.targets) != 1:
                raise RcaiError(f"predictor has several targets ({', '.join(self.targets)}): choose one")
            return 0
        if target not in self.targets:
            raise RcaiError(f"predictor has no target {target!r} (has: {', '.join(self.targets)})")
        return self.targets.index(target)

    @staticmethod
    def encode(models: Sequence[ModelLike]) -> list[Data]:
        return [m if isinstance(m, Data) else encode_onnx(m) for m in models]

    def predict_log(self, models: Sequence[ModelLike], max_nodes: int = 6000) -> np.ndarray:
        """log(ms) for every head: [len(models), len(targets)]. Batches of at most `max_nodes` graph
        nodes keep the activations in cache: on CPU much faster than one huge batch."""
        return self._log_ms(collate(b) for b in _batches(self.encode(models), max_nodes))

    def _log_ms(self, batches: Iterable[GraphBatch]) -> np.ndarray:
        with torch.inference_mode():
            out = [self.model.log_ms(b) for b in batches]
        if not out:
            return np.zeros((0, len(self.targets)))
        return torch.cat(out).numpy().astype(np.float64)

    def predict_archs(self, preset: Preset, archs: Sequence[Mapping[str, str]], target: str | None = None,
                      batch: int = 1, max_nodes: int = 6000) -> np.ndarray:
        """Latency in ms of subnets of `preset` (slot -> op dicts) run at input batch `batch`: the
        same as `predict` on their ONNX exports, with the graphs built from the architecture
        (arch_graph.ArchEncoder, no export): thousands of subnets per second."""
        k = self.head(target)
        return np.exp(self._log_ms(ArchEncoder.of(preset, batch).batches(archs, max_nodes))[:, k])

    def predict(self, models: Sequence[ModelLike], target: str | None = None, max_nodes: int = 6000) -> np.ndarray:
        """Latency in ms of each model on `target` (may be omitted for a one-target predictor)."""
        k = self.head(target)
        return np.exp(self.predict_log(models, max_nodes)[:, k])

    def describe(self) -> dict:
        m = self.meta
        return {"targets": self.targets, "feature_version": m.get("feature_version"),
                "train_data": m.get("train_data"), "init": m.get("init")}


def pick_shots(n: int, shots: int, seed: int) -> tuple[list[int], list[int]]:
    """`shots` of n rows (seeded) and the rest."""
    if shots < 1:
        raise RcaiError(f"--shots: must be >= 1, got {shots}")
    perm = np.random.default_rng(seed).permutation(n).tolist()
    return sorted(perm[:shots]), sorted(perm[shots:])


def train_predictor(data: LatencyDataset | str | os.PathLike, init: LatencyPredictor | str | os.PathLike | None = None,
                    cfg: PredictorTrainConfig | None = None, model_cfg: ModelConfig | None = None,
                    progress: bool = False, shots: int | None = None, method: str = "auto") -> LatencyPredictor:
    """Train on a latency dataset (LatencyDataset or CSV path): one output per device in it. With
    `init` (a predictor or its file), adapt that predictor to the dataset's device(s) instead: the
    adaptation method (finetune.METHODS, or "auto": chosen by cross-validation within the shots)
    is recorded in meta["training"]["adaptation"]. `shots` K: adapt on K rows (seeded) only and
    score the base and the adapted predictor on the other rows (meta ...["adaptation"]["holdout"])."""
    ds = load_dataset(data, progress=progress) if isinstance(data, (str, os.PathLike)) else data
    cfg = cfg or PredictorTrainConfig()
    base = LatencyPredictor.load(init) if isinstance(init, (str, os.PathLike)) else init
    if shots is not None and base is None:
        raise RcaiError("--shots needs --init (the predictor to adapt)")
    held: list[int] = []
    if shots is not None:
        if shots > len(ds):
            raise RcaiError(f"--shots {shots}: the dataset has {len(ds)} models")
        rows, held = pick_shots(len(ds), shots, cfg.seed)
        full, ds = ds, ds.subset(rows)
    with deterministic():
        if base is None:
            model, info = train_new(ds, cfg, model_cfg or ModelConfig(), progress)
        else:
            model, info = adapt(base.model, ds, cfg, progress, method)
            if held:
                info["adaptation"]["holdout"] = _holdout(base, model, full.subset(held))
    lat = ds.latency_ms[np.isfinite(ds.latency_ms)]
    meta = {
        "targets": [d or Path(ds.csv).stem for d in ds.devices],
        "feature_version": FEATURE_VERSION,
        "rcai_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "train_data": {**ds.summary(), "latency_ms_min": float(lat.min()), "latency_ms_max": float(lat.max())},
        "train_config": cfg.to_json(),
        "model_config": model.cfg.to_json(),
        "training": info,
        "init": None if base is None else {"targets": base.targets, "train_data": base.meta.get("train_data")},
        # each sampler's own per-step cost, measured with the dataset (rcai.cost.archs): a term of every loop estimate
        "sampler_ms": _dataset_meta(ds.csv).get("sampler_ms") or (base.meta.get("sampler_ms") if base is not None else None) or {},
    }
    return LatencyPredictor(model, meta)


def _holdout(base: LatencyPredictor, model: LatencyGNN, ds: LatencyDataset) -> dict:
    """Accuracy of the base (zero-shot: its heads' average) and the adapted model on rows not used."""
    from ..stats import accuracy

    tuned = LatencyPredictor(model, {"targets": ds.devices})
    zero = base.predict_log(ds.graphs).mean(1)
    adapted = tuned.predict_log(ds.graphs)
    out = {}
    for j, dev in enumerate(ds.devices):
        ok = np.isfinite(ds.latency_ms[:, j])
        out[dev or "data"] = {"n": int(ok.sum()), "zero": accuracy(np.exp(zero[ok]), ds.latency_ms[ok, j]),
                              "adapted": accuracy(np.exp(adapted[ok, j]), ds.latency_ms[ok, j])}
    return out


def _dataset_meta(csv: str | os.PathLike | None) -> dict:
    import json

    path = Path(csv).parent / "meta.json" if csv else None
    try:
        return json.loads(path.read_text()) if path and path.is_file() else {}
    except (OSError, ValueError):
        return {}
