"""`rcai export OUT --schedule S.json`: a step-aware schedule as a deployment folder (rcai/deploy/scheduled.py):
each distinct subnet exported as `rcai export` exports one (export_subnet_onnx, verified against
torch), its weights saved beside it (read off a supernet file, or the run folder the schedule names),
and schedule.json. Everything is checked before anything is written; the folder is built aside and
moved into place whole, so OUT never holds half an export."""
from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import RcaiError
from ..io import atomic_torch_save, atomic_write_json, os_errors
from ..lock import exclusive
from ..space.step_schedule import StepSchedule
from .export import export_subnet_onnx
from .scheduled import SCHEDULE_FILE, deployment_dict
from .weights import load_state, run_files


@dataclass
class ScheduleExportReport:
    out: str
    schedule_path: str
    weights: str  # where the subnets' weights came from
    subnets: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> its ExportReport
    step_counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"out": self.out, "schedule_path": self.schedule_path, "weights": self.weights, "subnets": self.subnets, "step_counts": self.step_counts}


def subnet_states(schedule: StepSchedule, supernet: str | Path | None = None) -> tuple[dict[str, dict[str, torch.Tensor]], str]:
    """({name: state_dict} of every subnet, where they came from): a subnet given by its run folder has
    the run's weights, the others are read off `supernet` (one is needed then)."""
    runs = schedule.runs or {}
    need = [n for n in schedule.subnets if n not in runs]
    if need and supernet is None:
        raise RcaiError(f"schedule: subnet(s) {', '.join(need)} have no weights: give --supernet FILE (or a run folder for each in the schedule)")
    states, sources = {}, []
    if need:
        from ..oneshot.net import load_supernet

        sn = load_supernet(supernet, schedule.preset)
        for n in need:
            states[n] = {k: v.detach().clone() for k, v in sn.subnet(schedule.subnets[n].choices)[0].state_dict().items()}
        sources.append(f"supernet {supernet}")
    for n, run in runs.items():
        states[n] = load_state(run_files(run)[1])
        sources.append(f"{n}: run {run}")
    return states, "; ".join(sources)


def export_schedule(schedule: StepSchedule, out: str | Path, supernet: str | Path | None = None, verify: bool = True) -> ScheduleExportReport:
    """Export `schedule` to the folder `out` (see the module doc). An existing `out` is replaced only
    if it is an earlier deployment (it holds schedule.json) or empty."""
    out = Path(out)
    _check_out(out)
    states, source = subnet_states(schedule, supernet)
    with exclusive(out), os_errors(out), tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        stage = Path(tmp) / "out"
        stage.mkdir()
        reports = {}
        for name, spec in schedule.subnets.items():
            weights = atomic_torch_save(states[name], stage / f"{name}.pt")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rep = export_subnet_onnx(spec, states[name], stage / f"{name}.onnx", verify=verify, weights_path=weights)
            reports[name] = {**rep.to_dict(), "onnx_path": str(out / f"{name}.onnx"), "sidecar_path": str(out / f"{name}.onnx.json")}
        atomic_write_json(stage / SCHEDULE_FILE, deployment_dict(schedule, {n: f"{n}.onnx" for n in schedule.subnets}, source))
        _move_into_place(stage, out, Path(tmp))
    return ScheduleExportReport(str(out), str(out / SCHEDULE_FILE), source, reports, schedule.step_counts())


def _check_out(out: Path) -> None:
    if out.suffix == ".onnx":
        raise RcaiError(f"{out}: a schedule is exported to a folder (one ONNX per subnet + {SCHEDULE_FILE}), not to an .onnx file")
    if out.exists() and not (out.is_dir() and ((out / SCHEDULE_FILE).is_file() or not any(out.iterdir()))):
        raise RcaiError(f"{out}: exists and is not an earlier schedule export (no {SCHEDULE_FILE}); refusing to replace it")


def _move_into_place(stage: Path, out: Path, tmp: Path) -> None:
    """Replace `out` by `stage` (an earlier export moved aside first, removed with the temporary folder)."""
    if out.exists():
        out.rename(tmp / "old")
    stage.rename(out)
    shutil.rmtree(tmp / "old", ignore_errors=True)
