"""The one-shot network, its file (`supernet.pt`) and subnets with inherited weights.

supernet.pt holds, never as a pickle of code: the format tag, the preset's config and hash, the
weight sharing, the (EMA) weights as CPU tensors, and what the training was (`info`: plain values).
A file of another format, preset or sharing is refused in one line before anything is written.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import RcaiError
from ..io import atomic_torch_save, load_torch
from ..model.oneshot import OneShotSlotMaker
from ..model.unet import UNet
from ..presets import Preset
from ..space.extract import extract_path
from ..space.subnet import SubnetSpec

FORMAT = "rcai-supernet/1"


def build_supernet(preset: Preset, sharing: str) -> UNet:
    """A freshly initialised one-shot supernet (the current torch RNG draws its weights)."""
    return UNet(preset, make=OneShotSlotMaker(sharing, preset.network.gnconv_ops))


@dataclass
class Supernet:
    net: UNet
    sharing: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def preset(self) -> Preset:
        return self.net.preset

    def subnet(self, arch: Mapping[str, str]) -> tuple[UNet, SubnetSpec]:
        """The subnet `arch` as a plain network with the supernet's weights (exactly its path)."""
        return extract_path(self.net, dict(arch))

    def save(self, path: str | Path) -> Path:
        state = {k: v.detach().to("cpu") for k, v in self.net.state_dict().items()}
        info = json.loads(json.dumps(self.info, default=str))  # plain values only: the file loads with weights_only
        return atomic_torch_save({"format": FORMAT, "preset_config": self.preset.to_dict(), "preset_hash": self.preset.hash,
                                  "sharing": self.sharing, "state": state, "info": info}, path)

    @classmethod
    def load(cls, path: str | Path, expect_preset: Preset | None = None) -> "Supernet":
        obj = load_torch(path, "supernet file")
        if not isinstance(obj, dict) or obj.get("format") != FORMAT or not isinstance(obj.get("state"), dict):
            raise RcaiError(f"{path}: not an rcai supernet file (expected format {FORMAT!r}; `rcai supernet train` writes one)")
        try:
            preset = Preset.from_dict(obj["preset_config"])
        except (KeyError, TypeError) as e:
            raise RcaiError(f"{path}: damaged supernet file (preset: {e})") from None
        if obj.get("preset_hash") != preset.hash:
            raise RcaiError(f"{path}: damaged supernet file (preset hash {obj.get('preset_hash')} does not match its config {preset.hash})")
        if expect_preset is not None and preset.arch_hash != expect_preset.arch_hash:
            raise RcaiError(f"{path}: supernet of preset {preset.name!r} ({preset.arch_hash}), not of {expect_preset.name!r} ({expect_preset.arch_hash})")
        net = build_supernet(preset, obj.get("sharing", "?")) if obj.get("sharing") in ("shared", "independent") else None
        if net is None:
            raise RcaiError(f"{path}: damaged supernet file (weight sharing {obj.get('sharing')!r})")
        try:
            net.load_state_dict(obj["state"])
        except RuntimeError as e:
            raise RcaiError(f"{path}: damaged supernet file (weights do not fit the {preset.name} {obj['sharing']} supernet: {str(e).splitlines()[0][:120]})") from None
        return cls(net.eval(), obj["sharing"], dict(obj.get("info") or {}))


def load_supernet(path: str | Path, preset: Preset | None = None, device: str | torch.device = "cpu") -> Supernet:
    sn = Supernet.load(path, preset)
    sn.net.to(device)
    return sn
