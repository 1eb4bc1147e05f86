"""Presets: frozen, JSON-round-tripping descriptions of a searchable SR3 UNet and how it is trained.

A preset is data, not code: its ops are names from the op registry (rcai/model/ops). It is stored as
one flat record (subnet.json's preset_config, tables' and predictors' metadata; its hash keys them),
and read in three typed parts, each by the stage that needs it:
  network   what decides the ops and shapes (rcai/model, the search space, cost tables: arch_hash)
  schedule  the noise schedule (rcai/diffusion: T, betas)
  recipe    how the network is parametrised and trained (prediction target, residual scale, loss, dropout)
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields, replace
from typing import Any, Callable

from .config import JsonConfig
from .errors import RcaiError
from .registry import Registry


@dataclass(frozen=True)
class NetworkConfig(JsonConfig):
    """The searchable UNet's geometry and candidate ops: all a cost table depends on."""

    base_channels: int
    channel_mults: tuple[int, ...]
    res_blocks: int  # ResNet blocks per UNet level
    attn_from_depth: int  # levels >= this depth get the attention/multi-op slot (0-based)
    lr_size: int
    hr_size: int
    gnconv_ops: tuple[str, ...]  # candidates of every GN-conv slot; the first is the base model's
    resnet_ops: tuple[str, ...]  # candidates of the ResNet multi-op slot; "gnconv" nests a GN-conv slot
    search_decoder: bool = False  # decoder blocks searchable too (else fixed to the base choice)
    groups: int = 32  # GroupNorm groups (clamped to a divisor of the channel count)
    emb_mult: int = 4  # noise-embedding width = emb_mult * base_channels

    @property
    def levels(self) -> int:
        return len(self.channel_mults)

    @property
    def emb_dim(self) -> int:
        return self.emb_mult * self.base_channels

    def channels(self, depth: int) -> int:
        return self.base_channels * self.channel_mults[depth]

    def resolution(self, depth: int) -> int:
        return self.hr_size // 2**depth

    @property
    def hash(self) -> str:
        return _short_hash(self.to_dict())


@dataclass(frozen=True)
class ScheduleConfig(JsonConfig):
    """T diffusion steps with β_t linear from beta_start (t=1) to beta_end (t=T)."""

    T: int = 2000
    beta_start: float = 1e-6
    beta_end: float = 0.01

    def __post_init__(self) -> None:
        if int(self.T) != self.T or self.T < 1:
            raise RcaiError(f"schedule: T must be a positive integer, got {self.T!r}")
        if not (0.0 < self.beta_start <= self.beta_end < 1.0):
            raise RcaiError(f"schedule: need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}")


@dataclass(frozen=True)
class RecipeConfig(JsonConfig):
    """What the network predicts and how it is trained (rcai/diffusion/training.py, the samplers)."""

    # If > 0 the chain models residual * (hr - bicubic(lr)) (SRDiff-style residual) instead of hr
    # (SR3, 0). Not in the report: a small model trained for minutes reaches a useful PSNR this way
    # (see docs/search-space.md). tiny uses 4: the residual of the built-in photos has std 0.065, so x0-clipping
    # at +-1 keeps residuals within +-0.25 (~4 std) and bounds what an undertrained model can add.
    residual: float = 0.0
    # "eps" (SR3, the report) or "v" (v-prediction). v is well conditioned at every noise level and at
    # pure noise is the network's regression of E[x0 | lr], the quality metric's posterior mean
    # (rcai/train/quality.py). tiny uses v.
    prediction: str = "eps"
    # Loss on the prediction: "l1" (report eq. 7) or "l2". L1's optimum at high noise is the posterior
    # median, and the median of an SR residual is ~0: trained for minutes, an L1 model sits at zero
    # residual (bicubic) and only some seeds leave it, which scrambles any ranking of subnets. L2's
    # optimum is the posterior mean, the quality metric's target. tiny uses l2.
    loss: str = "l1"
    dropout: float = 0.0  # in every candidate op; changes no shape or latency

    def __post_init__(self) -> None:
        if self.prediction not in ("eps", "v"):
            raise RcaiError(f"prediction must be 'eps' or 'v', got {self.prediction!r}")
        if self.loss not in ("l1", "l2"):
            raise RcaiError(f"loss must be 'l1' or 'l2', got {self.loss!r}")


@dataclass(frozen=True)
class Preset(JsonConfig):
    """The flat record: the fields of NetworkConfig, ScheduleConfig and RecipeConfig, plus a name
    and a description (PARTS says which part each field belongs to)."""

    name: str
    base_channels: int
    channel_mults: tuple[int, ...]
    res_blocks: int
    attn_from_depth: int
    lr_size: int
    hr_size: int
    gnconv_ops: tuple[str, ...]
    resnet_ops: tuple[str, ...]
    search_decoder: bool = False
    groups: int = 32
    dropout: float = 0.0
    residual: float = 0.0
    prediction: str = "eps"
    loss: str = "l1"
    emb_mult: int = 4
    T: int = 2000  # report: T=2000, betas linspace(1e-6, 0.01)
    beta_start: float = 1e-6
    beta_end: float = 0.01
    description: str = ""

    def __post_init__(self) -> None:
        try:
            for part in PARTS.values():
                self._part(part)
        except RcaiError as e:
            raise RcaiError(f"preset {self.name!r}: {e}") from None

    def _part(self, cls: type) -> Any:
        return cls(**{f.name: getattr(self, f.name) for f in fields(cls)})

    @property
    def network(self) -> NetworkConfig:
        return self._part(NetworkConfig)

    @property
    def schedule(self) -> ScheduleConfig:
        return self._part(ScheduleConfig)

    @property
    def recipe(self) -> RecipeConfig:
        return self._part(RecipeConfig)

    @property
    def levels(self) -> int:
        return self.network.levels

    @property
    def hash(self) -> str:
        """Short content hash of the whole preset (network, schedule, data and training recipe)."""
        return _short_hash(self.to_dict())

    @property
    def arch_hash(self) -> str:
        """The network's hash: a cost table measured for one preset serves every preset with the
        same arch_hash (schedule or recipe may differ)."""
        return self.network.hash


PARTS: dict[str, type[JsonConfig]] = {"network": NetworkConfig, "schedule": ScheduleConfig, "recipe": RecipeConfig}


def _short_hash(d: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


PRESETS: Registry[Callable[[], Preset]] = Registry("preset")


def register_preset(fn: Callable[[], Preset]) -> Callable[[], Preset]:
    """Register a preset factory under the name of the preset it builds."""
    return PRESETS.register(fn().name)(fn)


def get_preset(name: str) -> Preset:
    return PRESETS.get(name)()


list_presets = PRESETS.names


@register_preset
def rcai_report() -> Preset:
    """The RCAI report's network (Table 4.1, Fig. 4.3): 944,784 subnets.

    Per encoder level one ResNet block = GN-conv slot (3) x GN-conv slot (3) = 9 choices; from depth 3
    on the block also has the ResNet multi-op {attention, gnconv}, and "gnconv" nests a 3-way GN-conv
    slot, so that slot has 1 + 3 = 4 choices and the block 36. Levels 0,1,2 give 9 each, levels 3,4
    give 36 each: 9*9*9*36*36 = 944,784. The report does not name its 3 GN-conv ops; we take
    conv3x3 (the base SR3 op), conv5x5 and conv1x1. Decoder blocks are fixed to the base ops, as the
    report's count covers the five encoder blocks only.
    """
    return Preset(
        name="rcai-report",
        base_channels=64,
        channel_mults=(1, 2, 4, 8, 16),
        res_blocks=1,
        attn_from_depth=3,
        lr_size=64,
        hr_size=128,
        gnconv_ops=("conv3x3", "conv5x5", "conv1x1"),
        resnet_ops=("attention", "gnconv"),
        search_decoder=False,
        groups=32,
        dropout=0.1,
        T=2000,
        beta_start=1e-6,
        beta_end=0.01,
        description="RCAI report (SR3 64->128, 64 ch, mults 1,2,4,8,16)",
    )


@register_preset
def tiny() -> Preset:
    """Small enough for 2 CPU cores, with cheap choices (skip, depthwise-separable, narrow) so a
    latency-aware search has something to trade. Encoder and decoder are both searchable."""
    return Preset(
        name="tiny",
        base_channels=16,
        channel_mults=(1, 2, 4),
        res_blocks=1,
        attn_from_depth=2,
        lr_size=32,
        hr_size=64,
        gnconv_ops=("conv3x3", "conv5x5", "dwsep3x3", "narrow3x3", "skip"),
        resnet_ops=("attention", "gnconv"),
        search_decoder=True,
        groups=8,
        dropout=0.0,
        residual=4.0,
        prediction="v",
        loss="l2",
        T=1000,
        beta_start=1e-6,
        beta_end=0.02,
        description="tiny CPU preset (32->64, 16 ch, mults 1,2,4)",
    )


@register_preset
def micro() -> Preset:
    """Smallest useful preset (8 channels, 16->32, two levels): tests and smoke runs in seconds."""
    return replace(tiny(), name="micro", base_channels=8, channel_mults=(1, 2), attn_from_depth=1, lr_size=16, hr_size=32, groups=4, T=100,
                   description="micro test preset (16->32, 8 ch, mults 1,2)")
