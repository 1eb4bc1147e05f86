"""Step-aware schedules (`schedule.json`): which subnet runs each step of the sampling loop.

The loop's S denoiser calls are indexed 0..S-1 in calling order (step 0 at pure noise). Segments
[start, stop) of those indices cover every step exactly once, each naming a subnet; a subnet is
given by its choices (its weights then come from a supernet at export) or by a run folder of
`rcai train` / `rcai search` (its subnet.json; the weights are the run's):

    {"format": "rcai-schedule/1", "preset": "micro", "steps": 10,
     "subnets": {"big": {"choices": {...}}, "small": {"run": "runs/small"}},
     "segments": [{"start": 0, "stop": 4, "subnet": "big"}, {"start": 4, "stop": 10, "subnet": "small"}]}

A run path is relative to the schedule file's folder.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import RcaiError
from ..io import atomic_write_json, read_json
from ..presets import Preset, get_preset
from .space import SearchSpace
from .subnet import SubnetSpec

FORMAT = "rcai-schedule/1"
NAME = re.compile(r"[A-Za-z0-9_-]+")  # a subnet's name: it names its exported files


@dataclass(frozen=True)
class Segment:
    start: int  # first step (0: the call at pure noise)
    stop: int  # one past the last step
    subnet: str  # a name among the schedule's subnets


@dataclass(frozen=True)
class StepSchedule:
    preset: Preset
    steps: int  # denoiser calls of the loop it was built for
    subnets: dict[str, SubnetSpec]  # name -> subnet
    segments: tuple[Segment, ...]
    runs: dict[str, str] | None = None  # name -> run folder (resolved against the file's folder) for subnets given by their run

    def __post_init__(self) -> None:
        _check(self)

    # -- the loop ---------------------------------------------------------------------------------
    def step_names(self) -> list[str]:
        """The subnet name of every step, in calling order."""
        return [seg.subnet for seg in self.segments for _ in range(seg.start, seg.stop)]

    def per_step(self, by_name: Mapping[str, Any]) -> list[Any]:
        """`by_name[name]` (a denoiser, a cost...) for every step, in calling order."""
        missing = sorted(set(self.subnets) - set(by_name))
        if missing:
            raise RcaiError(f"schedule: subnet(s) {', '.join(missing)} not available (have: {', '.join(sorted(by_name)) or 'none'})")
        return [by_name[n] for n in self.step_names()]

    def require_steps(self, steps: int) -> None:
        """Refuse a loop of another length than the one the schedule was built for."""
        if steps != self.steps:
            raise RcaiError(f"schedule: built for a loop of {self.steps} steps, not {steps} (--sample-steps {self.steps}, or a schedule for {steps})")

    def step_counts(self) -> dict[str, int]:
        """Steps each subnet runs."""
        names = self.step_names()
        return {n: names.count(n) for n in self.subnets}

    # -- the file ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        runs = self.runs or {}
        return {
            "format": FORMAT,
            "preset": self.preset.name,
            "preset_hash": self.preset.hash,
            "preset_config": self.preset.to_dict(),
            "steps": self.steps,
            "subnets": {n: ({"run": runs[n]} if n in runs else {}) | {"choices": dict(sorted(s.choices.items())), "hash": s.hash}
                        for n, s in self.subnets.items()},
            "segments": [{"start": s.start, "stop": s.stop, "subnet": s.subnet} for s in self.segments],
        }

    @classmethod
    def from_dict(cls, d: Any, source: str = "schedule", base: str | Path = ".") -> "StepSchedule":
        """Parse and check; run folders are read relative to `base` (the schedule file's folder)."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise RcaiError(f"{source}: not an rcai schedule (expected format {FORMAT!r})")
        try:
            preset = Preset.from_dict(d["preset_config"]) if "preset_config" in d else get_preset(d["preset"])
            steps = d["steps"]
            entries = dict(d["subnets"])
            segments = tuple(Segment(int(s["start"]), int(s["stop"]), str(s["subnet"])) for s in d["segments"])
        except (KeyError, TypeError, ValueError) as e:
            raise RcaiError(f"{source}: malformed schedule ({type(e).__name__}: {e})") from None
        if d.get("preset_hash") not in (None, preset.hash):
            raise RcaiError(f"{source}: preset hash {d['preset_hash']} does not match its config ({preset.hash})")
        if isinstance(steps, bool) or not isinstance(steps, int):
            raise RcaiError(f"{source}: steps must be a whole number, got {steps!r}")
        subnets, runs = {}, {}
        for name, e in entries.items():
            subnets[str(name)] = _subnet(str(name), e, preset, source, Path(base))
            if isinstance(e, dict) and "run" in e:
                runs[str(name)] = str(Path(base) / str(e["run"]))
        try:
            return cls(preset, steps, subnets, segments, runs or None)
        except RcaiError as e:
            raise RcaiError(f"{source}: {e}") from None

    @classmethod
    def load(cls, path: str | Path) -> "StepSchedule":
        path = Path(path)
        return cls.from_dict(read_json(path), str(path), path.parent)

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())


def _subnet(name: str, entry: Any, preset: Preset, source: str, base: Path) -> SubnetSpec:
    """A schedule's subnet entry: {"choices": {...}} or {"run": folder} (its subnet.json)."""
    if isinstance(entry, dict) and "run" in entry:
        spec_path = base / str(entry["run"]) / "subnet.json"
        if not spec_path.is_file():
            raise RcaiError(f"{source}: subnet {name!r}: {spec_path} not found (a run of rcai train / rcai search)")
        spec = SubnetSpec.load(spec_path, expect_preset=preset)
        if "choices" in entry and SubnetSpec(preset, dict(entry["choices"])).hash != spec.hash:
            raise RcaiError(f"{source}: subnet {name!r}: its choices differ from those of {spec_path}")
        return spec
    if not isinstance(entry, dict) or not isinstance(entry.get("choices"), dict):
        raise RcaiError(f"{source}: subnet {name!r} must be {{\"choices\": {{...}}}} or {{\"run\": folder}}")
    return SubnetSpec(preset, SearchSpace.of(preset).validate(entry["choices"], f"{source}: subnet {name!r}"))


def _check(s: StepSchedule) -> None:
    """Segments cover steps 0..S-1 in order, once each, and name only the schedule's subnets, each used."""
    if s.steps < 1:
        raise RcaiError(f"steps must be >= 1, got {s.steps}")
    bad = [n for n in s.subnets if not NAME.fullmatch(n)]
    if bad:
        raise RcaiError(f"subnet name(s) {', '.join(map(repr, bad))}: use letters, digits, '-' and '_' (they name the exported files)")
    if not s.segments:
        raise RcaiError("no segments")
    at = 0
    for seg in s.segments:
        if seg.start != at or seg.stop <= seg.start:
            what = "a gap" if seg.start > at else ("an overlap" if seg.start < at else "an empty segment")
            raise RcaiError(f"segments do not cover the loop: {what} at step {min(at, seg.start)} "
                            f"(segment [{seg.start}, {seg.stop}) after step {at}; they must tile 0..{s.steps} in order)")
        if seg.subnet not in s.subnets:
            raise RcaiError(f"segment [{seg.start}, {seg.stop}) names subnet {seg.subnet!r}, not one of its subnets ({', '.join(sorted(s.subnets))})")
        at = seg.stop
    if at != s.steps:
        raise RcaiError(f"segments do not cover the loop: they end at step {at}, the loop has {s.steps} steps")
    unused = sorted(set(s.subnets) - {seg.subnet for seg in s.segments})
    if unused:
        raise RcaiError(f"subnet(s) {', '.join(unused)} run no step")
