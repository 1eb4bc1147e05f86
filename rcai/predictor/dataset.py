"""Latency datasets: a CSV with columns `model` (ONNX path relative to the CSV), `latency_ms` and
optional `device` and `subnet` (the subnet's JSON, relative to the CSV). Rows are validated (errors
name the CSV line). A row whose ONNX file is absent (datasets ship without their exports) is encoded
from its subnet JSON by the architecture encoder, which builds the very graph of the export
(rcai/predictor/arch_graph.py). ONNX graphs are cached next to the CSV, keyed by the file's hash and
FEATURE_VERSION, so re-training does not re-encode."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import json

import numpy as np
import torch
from torch_geometric.data import Data

from ..errors import RcaiError
from ..io import atomic_torch_save
from ..latency_data import positive_ms, read_rows
from . import ops
from .graph import FEATURE_VERSION, encode_onnx

REQUIRED = ("model", "latency_ms")


@dataclass
class LatencyDataset:
    """Unique models x devices. `latency_ms[i, d]` is NaN where model i was not measured on d."""

    csv: Path
    models: list[Path]
    graphs: list[Data]
    devices: list[str]  # [""] when the CSV has no device column
    latency_ms: np.ndarray

    def __len__(self) -> int:
        return len(self.models)

    def subset(self, rows: list[int] | None = None, devices: list[str] | None = None) -> "LatencyDataset":
        """Some models and/or devices (models without any measurement left are dropped)."""
        rows = list(range(len(self))) if rows is None else list(rows)
        cols = [self.devices.index(d) for d in devices] if devices is not None else list(range(len(self.devices)))
        lat = self.latency_ms[np.ix_(rows, cols)]
        keep = [k for k in range(len(rows)) if np.isfinite(lat[k]).any()]
        return LatencyDataset(self.csv, [self.models[rows[k]] for k in keep], [self.graphs[rows[k]] for k in keep],
                              [self.devices[c] for c in cols], lat[keep])

    def summary(self) -> dict:
        return {"csv": str(self.csv), "models": len(self.models), "devices": self.devices,
                "measurements": int(np.isfinite(self.latency_ms).sum())}


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_path(csv_path: Path) -> Path:
    return csv_path.with_name(f".{csv_path.name}.graphs-v{FEATURE_VERSION}.pt")


def _pack(d: Data) -> dict[str, torch.Tensor]:
    """Compact form: op index instead of the one-hot block (rebuilt exactly by _unpack)."""
    return {"op": d.x[:, : ops.N_OPS].argmax(1).to(torch.int16), "num": d.x[:, ops.N_OPS :].clone(),
            "edge_index": d.edge_index, "g": d.g}


def _unpack(e: dict[str, torch.Tensor]) -> Data:
    onehot = torch.nn.functional.one_hot(e["op"].long(), ops.N_OPS).float()
    x = torch.cat([onehot, e["num"]], 1)
    return Data(x=x, edge_index=e["edge_index"], g=e["g"], op=e["op"].long(), num_nodes=x.shape[0])


def _load_cache(path: Path) -> dict:
    try:
        blob = torch.load(path, weights_only=True)
        return blob["entries"] if blob.get("feature_version") == FEATURE_VERSION else {}
    except Exception:  # absent, stale or damaged: re-encode
        return {}


def encode_files(files: list[tuple[str, Path]], cache_file: Path | None, progress: bool = False) -> list[Data]:
    """Encode (where, path) pairs, reusing and updating `cache_file`. Errors are prefixed by `where`."""
    cache = _load_cache(cache_file) if cache_file else {}
    keys, new = [], 0
    from .progress import track

    for where, path in track(files, "encoding ONNX graphs", progress):
        key = _file_hash(path)
        if key not in cache:
            try:
                cache[key] = _pack(encode_onnx(path))
            except RcaiError as e:
                raise RcaiError(f"{where}: {e}") from None
            new += 1
        keys.append(key)
    if cache_file and new:
        try:
            atomic_torch_save({"feature_version": FEATURE_VERSION, "entries": {k: cache[k] for k in set(keys)}}, cache_file)
        except OSError:  # read-only dataset folder: works, just without a cache
            pass
    return [_unpack(cache[k]) for k in keys]


def load_dataset(csv_path: str | Path, progress: bool = False, use_cache: bool = True) -> LatencyDataset:
    csv_path = Path(csv_path)
    rows = read_rows(csv_path, REQUIRED)
    models: dict[Path, tuple[str, int]] = {}
    values: dict[tuple[Path, str], list[float]] = {}
    for line, r in rows:
        where = f"{csv_path} line {line}"
        if not r.get("model"):
            raise RcaiError(f"{where}: model is empty")
        path = (csv_path.parent / r["model"]).resolve()
        where = f"{where} ({r['model']})"
        if not path.is_file():
            spec = (csv_path.parent / r["subnet"]).resolve() if r.get("subnet") else None
            if spec is None or not spec.is_file():
                raise RcaiError(f"{where}: model file not found" + (f" (nor its subnet {r['subnet']})" if r.get("subnet") else ""))
            path = spec
        ms = positive_ms(where, "latency_ms", r.get("latency_ms", ""))
        models.setdefault(path, (where, len(models)))
        values.setdefault((path, r.get("device", "")), []).append(ms)
    devices = sorted({d for _, d in values})
    paths = list(models)
    lat = np.full((len(paths), len(devices)), np.nan)
    row_of, col_of = {p: i for i, p in enumerate(paths)}, {d: j for j, d in enumerate(devices)}
    for (p, d), v in values.items():  # repeated measurements: geometric mean
        lat[row_of[p], col_of[d]] = float(np.exp(np.mean(np.log(v))))
    onnx_files = [(models[p][0], p) for p in paths if p.suffix != ".json"]
    encoded = dict(zip([p for _, p in onnx_files], encode_files(onnx_files, cache_path(csv_path) if use_cache else None, progress)))
    encoded.update(_encode_subnets([(models[p][0], p) for p in paths if p.suffix == ".json"], _batch_of(csv_path)))
    return LatencyDataset(csv_path, paths, [encoded[p] for p in paths], devices, lat)


def _batch_of(csv_path: Path) -> int:
    """The batch the dataset's subnets were measured at (meta.json of `rcai profile --archs`; else 1)."""
    try:
        return int(json.loads((csv_path.parent / "meta.json").read_text()).get("batch", 1))
    except (OSError, ValueError, TypeError, AttributeError):
        return 1


def _encode_subnets(files: list[tuple[str, Path]], batch: int) -> dict[Path, Data]:
    """Graphs of subnet JSON files, by the architecture encoder (one batch per preset)."""
    from ..space.subnet import SubnetSpec
    from .arch_graph import ArchEncoder

    specs = {}
    for where, path in files:
        try:
            specs[path] = SubnetSpec.load(path)
        except RcaiError as e:
            raise RcaiError(f"{where}: {e}") from None
    out: dict[Path, Data] = {}
    for preset in {s.preset for s in specs.values()}:
        group = [p for p, s in specs.items() if s.preset == preset]
        out.update(zip(group, ArchEncoder.of(preset, batch).encode_many([specs[p].choices for p in group])))
    return out
