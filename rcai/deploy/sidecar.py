"""`subnet.onnx.json`: everything needed to run the deployed denoiser's sampling loop without the
Python model code: the noise schedule (config + hash of the exact betas), the preset, the subnet,
the model's inputs/outputs, its precision and where its weights came from."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import __version__
from ..diffusion import NoiseSchedule, ScheduleConfig
from ..errors import RcaiError
from ..io import atomic_write_json, read_json
from ..precisions import precisions
from ..presets import Preset
from ..space.subnet import SubnetSpec

FORMAT = "rcai-deploy/1"
BATCH = "batch"  # the symbolic (dynamic) batch dimension
NOISE_LEVEL = "sqrt(alpha_bar_t)"  # what the network is fed as `noise_level` at timestep t


def sidecar_path(onnx_path: str | Path) -> Path:
    """subnet.onnx -> subnet.onnx.json"""
    p = Path(onnx_path)
    return p.with_name(p.name + ".json")


def betas_sha256(schedule: NoiseSchedule) -> str:
    """Hash of the exact float64 betas, so a loader notices if its schedule code computes others."""
    return hashlib.sha256(np.ascontiguousarray(schedule.betas, dtype="<f8").tobytes()).hexdigest()


@dataclass(frozen=True)
class TensorSpec:
    """One model input/output: shape entries are ints or "batch"."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TensorSpec":
        return cls(str(d["name"]), tuple(d["shape"]), str(d.get("dtype", "float32")))

    def concrete(self, batch: int) -> tuple[int, ...]:
        return tuple(batch if s == BATCH else int(s) for s in self.shape)


@dataclass(frozen=True)
class WeightsRef:
    """Where the exported weights came from: a file (path relative to the ONNX file's folder when
    possible) or a random init with `seed`; `state_sha256` identifies the exact tensors."""

    source: str  # "file" | "random"
    state_sha256: str
    path: str | None = None
    seed: int | None = None
    torch_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "WeightsRef":
        return cls(**{k: d[k] for k in ("source", "state_sha256", "path", "seed", "torch_version") if k in d})


@dataclass(frozen=True)
class DeploySidecar:
    preset: Preset
    choices: dict[str, str]
    schedule: ScheduleConfig
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    precision: str = "fp32"
    opset: int = 17
    weights: WeightsRef | None = None
    export_check: dict[str, Any] = field(default_factory=dict)  # max abs diffs measured at export
    # int8: {"settings": quantize_static's settings, "calibration": the calibration set} ({} otherwise)
    quantization: dict[str, Any] = field(default_factory=dict)
    rcai_version: str = __version__

    @property
    def subnet(self) -> SubnetSpec:
        return SubnetSpec(self.preset, dict(self.choices))

    @property
    def subnet_hash(self) -> str:
        return self.subnet.hash

    def noise_schedule(self) -> NoiseSchedule:
        return NoiseSchedule(self.schedule)

    def input(self, name: str) -> TensorSpec:
        return next(t for t in self.inputs if t.name == name)

    def to_dict(self) -> dict[str, Any]:
        sched = self.noise_schedule()
        return {
            "format": FORMAT,
            "rcai_version": self.rcai_version,
            "schedule": {**self.schedule.to_dict(), "kind": "linear", "betas_sha256": betas_sha256(sched)},
            "noise_level": NOISE_LEVEL,
            "preset": self.preset.name,
            "preset_hash": self.preset.hash,
            "preset_config": self.preset.to_dict(),
            "subnet": {"hash": self.subnet_hash, "choices": dict(sorted(self.choices.items()))},
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "precision": self.precision,
            "opset": self.opset,
            "weights": self.weights.to_dict() if self.weights else None,
            "export_check": dict(self.export_check),
            "quantization": dict(self.quantization),
        }

    @classmethod
    def from_dict(cls, d: Any, source: str = "sidecar") -> "DeploySidecar":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise RcaiError(f"{source}: not an rcai deploy sidecar (expected format {FORMAT!r})")
        try:
            preset = Preset.from_dict(d["preset_config"])
            sched_d = dict(d["schedule"])
            want_hash = sched_d.pop("betas_sha256")
            kind = sched_d.pop("kind", "linear")
            schedule = ScheduleConfig.from_dict(sched_d)
            side = cls(
                preset=preset,
                choices={str(k): str(v) for k, v in d["subnet"]["choices"].items()},
                schedule=schedule,
                inputs=tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
                outputs=tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
                precision=str(d.get("precision", "fp32")),
                opset=int(d.get("opset", 17)),
                weights=WeightsRef.from_dict(d["weights"]) if d.get("weights") else None,
                export_check=dict(d.get("export_check") or {}),
                quantization=dict(d.get("quantization") or {}),
                rcai_version=str(d.get("rcai_version", "?")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise RcaiError(f"{source}: malformed deploy sidecar ({type(e).__name__}: {e})") from None
        if kind != "linear":
            raise RcaiError(f"{source}: schedule kind {kind!r} is not supported (only 'linear')")
        if preset.hash != d.get("preset_hash", preset.hash):
            raise RcaiError(f"{source}: preset hash {d['preset_hash']} does not match its config ({preset.hash})")
        if side.subnet_hash != d["subnet"].get("hash", side.subnet_hash):
            raise RcaiError(f"{source}: subnet hash {d['subnet']['hash']} does not match its choices ({side.subnet_hash})")
        got = betas_sha256(side.noise_schedule())
        if got != want_hash:
            raise RcaiError(f"{source}: this rcai computes other betas for {schedule} (hash {got[:12]} != {want_hash[:12]})")
        if side.precision not in precisions("export"):
            raise RcaiError(f"{source}: precision {side.precision!r} is not one rcai exports ({', '.join(precisions('export'))})")
        if side.precision == "int8" and not side.quantization.get("settings"):
            raise RcaiError(f"{source}: precision int8 but no quantization settings (export it with rcai export --precision int8)")
        names = [t.name for t in side.inputs]
        if sorted(names) != ["noise_level", "x"]:
            raise RcaiError(f"{source}: inputs must be 'x' and 'noise_level', got {names}")
        return side

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "DeploySidecar":
        return cls.from_dict(read_json(path), str(path))

    @classmethod
    def for_onnx(cls, onnx_path: str | Path) -> "DeploySidecar":
        """The sidecar next to `onnx_path`, or RcaiError if there is none."""
        path = sidecar_path(onnx_path)
        if not path.is_file():
            raise RcaiError(f"{onnx_path}: sidecar {path.name} not found")
        return cls.load(path)


def denoiser_specs(preset: Preset, dtype: str = "float32") -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The deployed denoiser's inputs (x, noise_level) and output (eps), batch dynamic."""
    hr = preset.hr_size
    inputs = (TensorSpec("x", (BATCH, 6, hr, hr), dtype), TensorSpec("noise_level", (BATCH, 1), dtype))
    return inputs, (TensorSpec("eps", (BATCH, 3, hr, hr), dtype),)


def sidecar_from_preset(preset: Preset) -> DeploySidecar:
    """What a missing sidecar is replaced by when the user names the preset: its schedule and I/O,
    no subnet choices (the loop needs none)."""
    inputs, outputs = denoiser_specs(preset)
    return DeploySidecar(preset=preset, choices={}, schedule=preset.schedule, inputs=inputs, outputs=outputs)
