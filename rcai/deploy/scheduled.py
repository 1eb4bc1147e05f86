"""A deployed step-aware schedule: a folder with one ONNX file (+ its sidecar and weights) per distinct
subnet and `schedule.json`, the schedule (rcai/space/step_schedule.py) with the file of each subnet.

    OUT/schedule.json   {"format": "rcai-deploy-schedule/1", "schedule": {...}, "files": {"big": "big.onnx", ...}, "weights": "..."}
    OUT/big.onnx, OUT/big.onnx.json, OUT/big.pt, ...

Another schedule over the same subnets can be run on the folder (`rcai bench OUT --schedule S.json`):
its subnets are found among the exported files by their hash.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import RcaiError
from ..io import read_json
from ..space.step_schedule import StepSchedule
from .runtime import read_deployment
from .sidecar import DeploySidecar

FORMAT = "rcai-deploy-schedule/1"
SCHEDULE_FILE = "schedule.json"


def scheduled_folder(path: str | Path) -> Path | None:
    """The deployment folder if `path` is one (or its schedule.json), else None."""
    path = Path(path)
    if path.is_dir() and (path / SCHEDULE_FILE).is_file():
        return path
    if path.name == SCHEDULE_FILE and path.is_file() and isinstance(d := read_json(path), dict) and d.get("format") == FORMAT:
        return path.parent
    return None


def deployment_dict(schedule: StepSchedule, files: dict[str, str], weights: str) -> dict[str, Any]:
    """What schedule.json holds (the subnets by their choices: the run folders stay where they were)."""
    return {"format": FORMAT, "schedule": replace(schedule, runs=None).to_dict(), "files": dict(files), "weights": weights}


@dataclass
class ScheduledDeployment:
    folder: Path
    schedule: StepSchedule
    files: dict[str, Path]  # subnet name -> its ONNX file
    sides: dict[str, DeploySidecar]  # subnet name -> the file's sidecar
    weights: str = ""

    @classmethod
    def load(cls, folder: str | Path, schedule: StepSchedule | None = None) -> "ScheduledDeployment":
        """The folder's schedule, or `schedule` run on its files (each of its subnets must be exported there)."""
        folder = Path(folder)
        d = read_json(folder / SCHEDULE_FILE)
        if not isinstance(d, dict) or d.get("format") != FORMAT or not isinstance(d.get("files"), dict):
            raise RcaiError(f"{folder / SCHEDULE_FILE}: not a deployed schedule (expected format {FORMAT!r}; rcai export --schedule writes one)")
        own = StepSchedule.from_dict(d.get("schedule"), str(folder / SCHEDULE_FILE))
        exported: dict[str, tuple[Path, DeploySidecar]] = {}
        for name, file in d["files"].items():
            path = folder / str(file)
            if not path.is_file():
                raise RcaiError(f"{folder}: subnet {name!r}: {path.name} not found")
            side, _ = read_deployment(path)
            exported[side.subnet_hash] = (path, side)
        schedule = schedule or own
        if schedule.preset.hash != own.preset.hash:
            raise RcaiError(f"schedule of preset {schedule.preset.name!r} ({schedule.preset.hash}), {folder} is of {own.preset.name!r} ({own.preset.hash})")
        files, sides = {}, {}
        for name, spec in schedule.subnets.items():
            if spec.hash not in exported:
                raise RcaiError(f"schedule names subnet {name!r} ({spec.hash}), which {folder} does not export "
                                f"(exported: {', '.join(f'{n} ({s.subnet_hash})' for n, s in _named(own, exported))})")
            files[name], sides[name] = exported[spec.hash]
        return cls(folder, schedule, files, sides, str(d.get("weights", "")))

    @property
    def first(self) -> str:
        """The subnet of step 0 (pure noise): the one whose posterior mean the loop quality's ideal reference reads."""
        return self.schedule.segments[0].subnet

    def summary(self) -> dict[str, Any]:
        s = self.schedule
        return {"folder": str(self.folder), "steps": s.steps, "files": {n: p.name for n, p in self.files.items()},
                "hashes": {n: spec.hash for n, spec in s.subnets.items()}, "step_counts": s.step_counts(),
                "segments": [{"start": g.start, "stop": g.stop, "subnet": g.subnet} for g in s.segments], "weights": self.weights}


def _named(own: StepSchedule, exported: dict[str, tuple[Path, DeploySidecar]]) -> list[tuple[str, DeploySidecar]]:
    by_hash = {spec.hash: n for n, spec in own.subnets.items()}
    return [(by_hash.get(h, p.stem), side) for h, (p, side) in exported.items()]
