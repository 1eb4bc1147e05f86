"""`rcai profile --archs N`: whole random subnets measured end to end on the target.

Writes a latency dataset (the GNN predictor's data and the cost table's check) in a folder:
  dataset.csv    model,latency_ms,device,p10_ms,p90_ms,cv,count,round_ms,repeatability,subnet
  models/NNNN.onnx        one denoising step of the subnet (graph only, export_params=False)
  subnets/NNNN.json       its subnet.json
  measurements.csv        raw rows (one per subnet and round), appended as measured: resumable
Each subnet is measured in `rounds` interleaved passes (all subnets once, then all again...) and
its latency is the median of its per-round medians, so machine drift spreads over all of them.
"""
from __future__ import annotations

import csv
import io
import random
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import RcaiError
from ..io import append_line, atomic_write_json, atomic_write_text, read_json, repair_torn_line
from ..lock import exclusive
from ..onnx_export import DENOISER_INPUTS, DENOISER_OUTPUTS, denoiser_inputs, export_onnx
from ..space.presets import get_preset
from ..space.space import SearchSpace
from ..space.subnet import SubnetSpec
from ..progress import progress_bar
from .profile import ProfileConfig, table_meta

RAW_COLUMNS = ["model", "round", "median_ms", "p10_ms", "p90_ms", "cv", "count"]


@dataclass(frozen=True)
class ArchDatasetConfig:
    archs: int
    rounds: int = 2
    seed: int = 0
    sampling: str = "uniform"  # uniform | skewed (see SAMPLINGS)

    def __post_init__(self) -> None:
        if self.archs < 1 or self.rounds < 1:
            raise RcaiError(f"--archs and --rounds must be >= 1, got {self.archs} and {self.rounds}")


def _skewed_arch(space: SearchSpace, rng: random.Random) -> dict[str, str]:
    """One subnet from a random preference over op names (Gamma(0.3) weights): most picks fall on one
    or two ops, so nets near the extremes (all skip, all 5x5...) appear, which uniform sampling of
    9 billion subnets practically never draws."""
    names = sorted({n for s in space.all_slots() for n in s.choices})
    pref = {n: rng.gammavariate(0.3, 1.0) + 1e-9 for n in names}
    return space.pick(lambda s: rng.choices(list(s.choices), weights=[pref[n] for n in s.choices])[0])


SAMPLINGS = {"uniform": lambda space, rng: space.random_arch(rng), "skewed": _skewed_arch}


def sample_archs(space: SearchSpace, n: int, seed: int, sampling: str = "uniform") -> list[dict[str, str]]:
    """n distinct random subnets (the base model first: it is the reference of every comparison)."""
    if sampling not in SAMPLINGS:
        raise RcaiError(f"unknown sampling {sampling!r}; known: {', '.join(SAMPLINGS)}")
    draw = SAMPLINGS[sampling]
    rng = random.Random(seed)
    archs, seen = [space.base_arch()], set()
    seen.add(tuple(sorted(archs[0].items())))
    while len(archs) < min(n, space.size):
        a = draw(space, rng)
        key = tuple(sorted(a.items()))
        if key not in seen:
            seen.add(key)
            archs.append(a)
    return archs[:n]


def _read_raw(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    text = path.read_text()
    text = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    return [r for r in csv.DictReader(io.StringIO(text))]


ARTEFACTS = (("models", ".onnx"), ("subnets", ".json"))  # what export_subnet writes for one entry


def _entry_complete(out: Path, name: str) -> bool:
    """An entry is done when every artefact it writes exists (a kill can fall between them)."""
    return all((out / d / f"{name}{ext}").is_file() for d, ext in ARTEFACTS)


def profile_archs(pcfg: ProfileConfig, acfg: ArchDatasetConfig, out: str | Path, progress: bool = True) -> Path:
    with exclusive(out):  # one writer per dataset folder
        return _profile_archs(pcfg, acfg, Path(out), progress)


def _profile_archs(pcfg: ProfileConfig, acfg: ArchDatasetConfig, out: Path, progress: bool) -> Path:
    preset = get_preset(pcfg.preset)
    space = SearchSpace.of(preset)
    target = pcfg.target()
    out = Path(out)
    meta = {**table_meta(pcfg, preset, target), "archs": acfg.archs, "rounds": acfg.rounds, "seed": acfg.seed, "sampling": acfg.sampling}
    meta_file = out / "meta.json"
    if meta_file.exists():
        old = read_json(meta_file, expect=dict)
        for k in ("arch_hash", "archs", "rounds", "seed", "sampling", "batch", "backend", "threads"):
            if old.get(k, "uniform" if k == "sampling" else None) != meta.get(k):
                raise RcaiError(f"{out}: exists with {k}={old.get(k)!r}, this run has {meta.get(k)!r}; use another folder")
    else:
        atomic_write_json(meta_file, meta)
    raw_path = out / "measurements.csv"
    if not raw_path.exists():
        atomic_write_text(raw_path, ",".join(RAW_COLUMNS) + "\n")
    else:
        repair_torn_line(raw_path)  # a row cut by a kill: dropped (and said) before appending
    archs = sample_archs(space, acfg.archs, acfg.seed, acfg.sampling)
    names = [f"{i:04d}" for i in range(len(archs))]
    done = {(r["model"], int(r["round"])) for r in _read_raw(raw_path)}

    with tempfile.TemporaryDirectory(prefix="rcai-archs-") as tmp:
        total = len(archs) * (acfg.rounds + 1)
        finished = sum(_entry_complete(out, n) for n in names) + len(done)
        with progress_bar(progress, "subnets", total, finished, transient=False) as advance:
            for name, arch in zip(names, archs):  # export pass (a stored subnet.json wins: the dataset's truth)
                if not _entry_complete(out, name):
                    stored = out / "subnets" / f"{name}.json"
                    spec = SubnetSpec.load(stored) if stored.exists() else SubnetSpec(preset, arch)
                    export_subnet(spec, out, name, pcfg.batch, Path(tmp))
                    advance(name)
            for r in range(acfg.rounds):  # measurement passes, interleaved over all subnets
                for name in names:
                    if (name, r) in done:
                        continue
                    stats = _prepare(target, SubnetSpec.load(out / "subnets" / f"{name}.json"), Path(tmp) / f"{name}.weights.onnx",
                                     pcfg.batch).measure(pcfg.measure, seed=r)
                    row = {"model": name, "round": r, **{k: getattr(stats, k) for k in RAW_COLUMNS[2:]}}
                    append_line(raw_path, ",".join(str(row[c]) for c in RAW_COLUMNS))
                    advance(f"{name} round {r}")
    return write_dataset(out, names, meta)


def export_subnet(spec: SubnetSpec, out: Path, name: str, batch: int, tmp: Path) -> None:
    """subnets/NAME.json and the weightless graph models/NAME.onnx."""
    torch.manual_seed(0)
    model = spec.build().eval()
    export_onnx(model, denoiser_inputs(spec.preset, batch), DENOISER_INPUTS, out / "models" / f"{name}.onnx", DENOISER_OUTPUTS, export_params=False)
    spec.save(out / "subnets" / f"{name}.json")


def _prepare(target: Any, spec: SubnetSpec, weights: Path, batch: int) -> Any:
    """The subnet ready on the target: its ONNX file with weights, or the module for torch targets."""
    if not target.takes_onnx:
        torch.manual_seed(0)
        specs = {n: (tuple(t.shape), "float32") for n, t in zip(DENOISER_INPUTS, denoiser_inputs(spec.preset, batch))}
        return target.prepare(spec.build().eval(), specs)
    if not weights.exists():
        _export_with_weights(spec, weights, batch)
    return target.prepare(weights)


def _export_with_weights(spec: SubnetSpec, path: Path, batch: int) -> None:
    torch.manual_seed(0)
    export_onnx(spec.build().eval(), denoiser_inputs(spec.preset, batch), DENOISER_INPUTS, path, DENOISER_OUTPUTS)


def write_dataset(out: Path, names: list[str], meta: dict[str, Any]) -> Path:
    """dataset.csv from the raw rows: latency = median of per-round medians."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in _read_raw(out / "measurements.csv"):
        by_model.setdefault(r["model"], []).append(r)
    lines = ["model,latency_ms,device,p10_ms,p90_ms,cv,count,round_ms,repeatability,subnet"]
    for name in names:
        rows = sorted(by_model.get(name, []), key=lambda r: int(r["round"]))
        if not rows:
            continue
        med = [float(r["median_ms"]) for r in rows]
        rep = abs(med[-1] - med[0]) / statistics.median(med) if len(med) > 1 else float("nan")
        lines.append(
            f"models/{name}.onnx,{statistics.median(med):.6g},{meta['device_name']},{statistics.median(float(r['p10_ms']) for r in rows):.6g},"
            f"{statistics.median(float(r['p90_ms']) for r in rows):.6g},{statistics.median(float(r['cv']) for r in rows):.4g},"
            f"{sum(int(r['count']) for r in rows)},{'|'.join(f'{m:.6g}' for m in med)},{rep:.4g},subnets/{name}.json"
        )
    path = out / "dataset.csv"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
