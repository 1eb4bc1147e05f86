"""subnet.json: preset name + hash and the chosen op of every searchable slot, by name."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RcaiError
from ..io import atomic_write_json, read_json
from ..presets import Preset, get_preset
from .space import SearchSpace

FORMAT = "rcai-subnet/1"


@dataclass(frozen=True)
class SubnetSpec:
    preset: Preset
    choices: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "preset": self.preset.name,
            "preset_hash": self.preset.hash,
            "preset_config": self.preset.to_dict(),
            "choices": dict(sorted(self.choices.items())),
        }

    @property
    def hash(self) -> str:
        import hashlib
        import json

        payload = json.dumps({"preset": self.preset.hash, "choices": sorted(self.choices.items())}).encode()
        return hashlib.sha256(payload).hexdigest()[:12]

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "subnet.json", expect_preset: Preset | None = None) -> "SubnetSpec":
        if not isinstance(d, dict) or d.get("format") != FORMAT or "choices" not in d:
            raise RcaiError(f"{source}: not an rcai subnet file (expected format {FORMAT!r} with 'choices')")
        if "preset_config" in d:
            preset = Preset.from_dict(d["preset_config"])
        else:
            preset = get_preset(d.get("preset", "?"))
        if d.get("preset_hash") not in (None, preset.hash):
            raise RcaiError(f"{source}: preset hash {d['preset_hash']} does not match its config ({preset.hash})")
        if expect_preset is not None and preset.hash != expect_preset.hash:
            raise RcaiError(
                f"{source}: subnet is for preset {preset.name!r} ({preset.hash}), not {expect_preset.name!r} ({expect_preset.hash})"
            )
        choices = SearchSpace.of(preset).validate(d["choices"], source)
        return cls(preset, choices)

    @classmethod
    def load(cls, path: str | Path, expect_preset: Preset | None = None) -> "SubnetSpec":
        return cls.from_dict(read_json(path), str(path), expect_preset)

    def build(self):
        from ..model.unet import UNet

        return UNet(self.preset, self.choices)

