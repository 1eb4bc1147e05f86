"""`rcai profile --archs N`: whole random subnets measured end to end on the target.

Writes a latency dataset (the GNN predictor's data and the cost table's check) in a folder:
  dataset.csv    model,latency_ms,device,p10_ms,p90_ms,cv,count,round_ms,repeatability,subnet,half1_ms,half2_ms
  models/NNNN.onnx        one denoising step of the subnet (graph only, export_params=False)
  subnets/NNNN.json       its subnet.json
  rounds/gNNN.csv         raw calls (interleaved method), one line per subnet and round: resumable
  measurements.csv        raw rows of the sequential method, appended as measured: resumable
Methods (ArchDatasetConfig.method):
- interleaved (default): groups of up to `group` subnets (sessions held open together) are timed in
  `rounds` rounds, each visiting every subnet of the group and a reference kernel in a new random
  order with a short burst of calls (InterleaveConfig.net_burst); latency = the estimator (p10)
  over all calls. repeatability = |first half of the rounds - second half| / latency.
- sequential (remote and torch targets): `rounds` passes over all subnets, each subnet measured to
  convergence per pass; latency = median of its per-round medians.
"""
from __future__ import annotations

import csv
import io
import statistics
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import RcaiError
from ..latency_data import COLUMNS as DATASET_COLUMNS
from ..io import append_line, atomic_write_json, atomic_write_text, read_json, repair_torn_line
from ..lock import exclusive
from ..onnx_export import DENOISER_INPUTS, DENOISER_OUTPUTS, denoiser_inputs, export_onnx
from ..presets import get_preset
from ..space.space import SearchSpace
from ..space.subnet import SubnetSpec
from ..progress import progress_bar
from ..targets import resolve_device
from .profile import ProfileConfig, table_meta
from .subnets import SAMPLINGS, export_with_weights as _export_with_weights, prepare_subnet, sample_archs  # noqa: F401 (re-exported)

RAW_COLUMNS = ["model", "round", "median_ms", "p10_ms", "p90_ms", "cv", "count"]


@dataclass(frozen=True)
class ArchDatasetConfig:
    archs: int
    rounds: int = 12
    seed: int = 0
    sampling: str = "uniform"  # uniform | skewed (see SAMPLINGS)
    method: str = "interleaved"  # interleaved | sequential (see the module doc)
    group: int = 48  # interleaved: subnets timed together (one ONNX Runtime session each)

    def __post_init__(self) -> None:
        if self.archs < 1 or self.rounds < 1:
            raise RcaiError(f"--archs and --rounds must be >= 1, got {self.archs} and {self.rounds}")


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
    target = resolve_device(pcfg.target)
    out = Path(out)
    if acfg.method not in ("interleaved", "sequential"):
        raise RcaiError(f"unknown measurement method {acfg.method!r}; known: interleaved, sequential")
    if acfg.method == "interleaved" and (pcfg.target.host or not target.takes_onnx):
        acfg = replace(acfg, method="sequential")  # a remote call or a torch module: interleaved rounds time ONNX models locally
    meta = {**table_meta(pcfg, preset, target), "archs": acfg.archs, "rounds": acfg.rounds, "seed": acfg.seed, "sampling": acfg.sampling,
            "method": acfg.method}
    if acfg.method == "interleaved":
        from ..targets.measure import resolve_clock

        meta = {**{k: v for k, v in meta.items() if k != "measure"}, "interleave": pcfg.interleave.to_dict(), "group": acfg.group,
                "clock": resolve_clock(pcfg.interleave.clock, target)}
    meta_file = out / "meta.json"
    defaults = {"sampling": "uniform", "method": "sequential"}  # folders written before these keys existed
    if meta_file.exists():
        old = read_json(meta_file, expect=dict)
        for k in ("arch_hash", "archs", "rounds", "seed", "sampling", "method", "clock", "batch", "backend", "threads"):
            if old.get(k, defaults.get(k)) != meta.get(k):
                raise RcaiError(f"{out}: exists with {k}={old.get(k)!r}, this run has {meta.get(k)!r}; use another folder")
        meta.update({k: old[k] for k in ("sampler_ms", "loop") if k in old})  # measured before a kill
    else:
        atomic_write_json(meta_file, meta)
    archs = sample_archs(space, acfg.archs, acfg.seed, acfg.sampling)
    names = [f"{i:04d}" for i in range(len(archs))]
    if acfg.method == "interleaved":
        return _measure_interleaved(pcfg, acfg, out, preset, archs, names, meta, progress)
    raw_path = out / "measurements.csv"
    if not raw_path.exists():
        atomic_write_text(raw_path, ",".join(RAW_COLUMNS) + "\n")
    else:
        repair_torn_line(raw_path)  # a row cut by a kill: dropped (and said) before appending
    done = {(r["model"], int(r["round"])) for r in _read_raw(raw_path)}

    with tempfile.TemporaryDirectory(prefix="rcai-archs-") as tmp:
        total = len(archs) * (acfg.rounds + 1)
        finished = sum(_entry_complete(out, n) for n in names) + len(done)
        with progress_bar(progress, "subnets", total, finished, transient=False) as advance:
            for name, arch in zip(names, archs):  # export pass (a stored subnet.json wins: the dataset's truth)
                if not _entry_complete(out, name):
                    stored = out / "subnets" / f"{name}.json"
                    spec = SubnetSpec.load(stored) if stored.exists() else SubnetSpec(preset, arch)
                    export_subnet(spec, out, name, pcfg.target.batch, Path(tmp))
                    advance(name)
            for r in range(acfg.rounds):  # measurement passes, interleaved over all subnets
                for name in names:
                    if (name, r) in done:
                        continue
                    stats = prepare_subnet(target, SubnetSpec.load(out / "subnets" / f"{name}.json"), Path(tmp) / f"{name}.weights.onnx",
                                           pcfg.target.batch).measure(pcfg.measure, seed=r)
                    row = {"model": name, "round": r, **{k: getattr(stats, k) for k in RAW_COLUMNS[2:]}}
                    append_line(raw_path, ",".join(str(row[c]) for c in RAW_COLUMNS))
                    advance(f"{name} round {r}")
    return write_dataset(out, names, meta)


def _export_all(out: Path, preset, archs: list[dict[str, str]], names: list[str], batch: int, advance) -> None:
    """The export pass (a stored subnet.json wins: the dataset's truth)."""
    for name, arch in zip(names, archs):
        if not _entry_complete(out, name):
            stored = out / "subnets" / f"{name}.json"
            spec = SubnetSpec.load(stored) if stored.exists() else SubnetSpec(preset, arch)
            export_subnet(spec, out, name, batch, out)
        advance(name)


def _measure_interleaved(pcfg: ProfileConfig, acfg: ArchDatasetConfig, out: Path, preset, archs, names, meta, progress: bool) -> Path:
    from ..targets.measure import pinned
    from .rounds import NET, REFERENCE, measure_interleaved, read_rounds

    target = resolve_device(pcfg.target)
    icfg = pcfg.interleave
    groups = [names[i : i + max(acfg.group, 1)] for i in range(0, len(names), max(acfg.group, 1))]
    with tempfile.TemporaryDirectory(prefix="rcai-archs-") as tmp, pinned(target.settings().get("threads"), icfg.pin):
        with progress_bar(progress, "subnets (interleaved rounds)", len(names) + len(groups) * icfg.rounds, transient=False) as advance:
            _export_all(out, preset, archs, names, pcfg.target.batch, advance)
            for g, group in enumerate(groups):
                raw = out / "rounds" / f"g{g:03d}.csv"
                if raw.exists() and len(read_rounds(raw, [NET + n for n in group] + [REFERENCE])) >= acfg.rounds:
                    continue  # measured before a kill
                models = {}
                for name in group:
                    weights = Path(tmp) / f"{name}.weights.onnx"
                    _export_with_weights(SubnetSpec.load(out / "subnets" / f"{name}.json"), weights, pcfg.target.batch)
                    models[NET + name] = weights
                raw.parent.mkdir(parents=True, exist_ok=True)
                measure_interleaved(target, models, replace(icfg, rounds=acfg.rounds, seed=icfg.seed + g), raw, advance)
        if "sampler_ms" not in meta:
            meta = measure_sampler_terms(target, preset, pcfg, out, meta)
    return write_dataset(out, names, meta)


def measure_sampler_terms(target: Any, preset, pcfg: ProfileConfig, out: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Every sampler's own per-step cost on this machine (rcai.cost.loops), into the dataset's
    meta.json: a predictor trained on the dataset adds it to each step (its file carries it)."""
    from .loops import measure_model_loops, sampler_terms

    res = measure_model_loops(target, {}, preset, pcfg.calibrate_loops, pcfg.loop_steps, pcfg.target.batch)
    first = next(iter(res.values()))
    meta = {**meta, "sampler_ms": sampler_terms(res, preset, pcfg.loop_steps),
            "loop": {"steps": pcfg.loop_steps, "clock": first.clock, "statistic": first.statistic, "load_after": first.load_after}}
    atomic_write_json(out / "meta.json", meta)
    return meta


def export_subnet(spec: SubnetSpec, out: Path, name: str, batch: int, tmp: Path) -> None:
    """subnets/NAME.json and the weightless graph models/NAME.onnx."""
    torch.manual_seed(0)
    model = spec.build().eval()
    export_onnx(model, denoiser_inputs(spec.preset, batch), DENOISER_INPUTS, out / "models" / f"{name}.onnx", DENOISER_OUTPUTS, export_params=False)
    spec.save(out / "subnets" / f"{name}.json")


def _dataset_row(name: str, device: str, latency: float, p10: float, p90: float, cv: float, count: int, per_round: list[float],
                 repeatability: float, half1: float, half2: float) -> str:
    """One dataset.csv line in latency_data.COLUMNS order (6 significant digits; cv and repeatability 4)."""
    g = lambda v: f"{v:.6g}"  # noqa: E731
    return ",".join([f"models/{name}.onnx", g(latency), device, g(p10), g(p90), f"{cv:.4g}", str(count), "|".join(map(g, per_round)),
                     f"{repeatability:.4g}", f"subnets/{name}.json", g(half1), g(half2)])


def _write_lines(out: Path, rows: list[str]) -> Path:
    path = out / "dataset.csv"
    atomic_write_text(path, "\n".join([",".join(DATASET_COLUMNS), *rows]) + "\n")
    return path


def write_dataset(out: Path, names: list[str], meta: dict[str, Any]) -> Path:
    """dataset.csv from the raw rows (see the module doc for each method's latency)."""
    if meta.get("method", "sequential") == "interleaved":
        return _write_interleaved(out, names, meta)
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in _read_raw(out / "measurements.csv"):
        by_model.setdefault(r["model"], []).append(r)
    lines = []
    for name in names:
        rows = sorted(by_model.get(name, []), key=lambda r: int(r["round"]))
        if not rows:
            continue
        med = [float(r["median_ms"]) for r in rows]
        h = len(med) // 2
        h1, h2 = (statistics.median(med[:h]), statistics.median(med[len(med) - h :])) if h else (float("nan"), float("nan"))
        rep = abs(h2 - h1) / statistics.median(med) if h else float("nan")
        col = lambda k: statistics.median(float(r[k]) for r in rows)  # noqa: E731
        lines.append(_dataset_row(name, meta["device_name"], statistics.median(med), col("p10_ms"), col("p90_ms"), col("cv"),
                                  sum(int(r["count"]) for r in rows), med, rep, h1, h2))
    return _write_lines(out, lines)


def _write_interleaved(out: Path, names: list[str], meta: dict[str, Any]) -> Path:
    from ..targets.measure import estimate
    from .rounds import NET, REFERENCE, InterleaveConfig, call_stats, corrected, drift_summary, read_rounds

    icfg = InterleaveConfig.from_dict(meta["interleave"])
    lines, drifts = [], []
    for raw in sorted((out / "rounds").glob("g*.csv")):
        items = [r.split(",", 2)[1] for r in raw.read_text().splitlines()[1:] if r.count(",") >= 2]
        done = read_rounds(raw, sorted(set(items)))
        if not done:
            continue
        calls = {n: [r[n] for r in done] for n in done[0]}
        calls, factors = corrected(calls, icfg)
        drifts.append(drift_summary(factors))
        for item in sorted(n for n in calls if n != REFERENCE):
            name, st = item[len(NET):], call_stats(calls[item], icfg.estimator)
            lines.append(_dataset_row(name, meta["device_name"], st["value_ms"], st["p10_ms"], st["p90_ms"], st["cv"], st["count"],
                                      [estimate(r, icfg.estimator) for r in calls[item]], st["half_split"], st["half1_ms"], st["half2_ms"]))
    atomic_write_json(out / "drift.json", drifts)
    return _write_lines(out, lines)
