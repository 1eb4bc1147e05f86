"""Presets: frozen, JSON-round-tripping descriptions of a searchable SR3 UNet.

A preset is data, not code: its ops are names from the op registry (rcai/model/ops).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any, Callable

from .config import JsonConfig
from .errors import RcaiError
from .registry import Registry


@dataclass(frozen=True)
class Preset(JsonConfig):
    name: str
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
    dropout: float = 0.0
    # If > 0 the chain models residual * (hr - bicubic(lr)) (SRDiff-style residual) instead of hr
    # (SR3, 0). Not in the report: a small model trained for minutes reaches a useful PSNR this way
    # (see README). tiny uses 4: the residual of the built-in photos has std 0.065, so x0-clipping
    # at +-1 keeps residuals within +-0.25 (~4 std) and bounds what an undertrained model can add.
    residual: float = 0.0
    # What the network predicts: "eps" (SR3, the report) or "v" (v-prediction). v is well conditioned
    # at every noise level and at pure noise is the network's regression of E[x0 | lr], the quality
    # metric's posterior mean (rcai/train/quality.py). tiny uses v.
    prediction: str = "eps"
    # Training loss on the prediction: "l1" (report eq. 7) or "l2". L1's optimum at high noise is the
    # posterior median, and the median of an SR residual is ~0: trained for minutes, an L1 model sits at
    # zero residual (bicubic) and only some seeds leave it, which scrambles any ranking of subnets. L2's
    # optimum is the posterior mean, the quality metric's target. tiny uses l2.
    loss: str = "l1"
    emb_mult: int = 4  # noise-embedding width = emb_mult * base_channels
    # Diffusion schedule (report: T=2000, betas linspace(1e-6, 0.01)).
    T: int = 2000
    beta_start: float = 1e-6
    beta_end: float = 0.01
    description: str = ""

    def __post_init__(self) -> None:
        if self.prediction not in ("eps", "v"):
            raise RcaiError(f"preset {self.name!r}: prediction must be 'eps' or 'v', got {self.prediction!r}")
        if self.loss not in ("l1", "l2"):
            raise RcaiError(f"preset {self.name!r}: loss must be 'l1' or 'l2', got {self.loss!r}")

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
        """Short content hash of the whole preset (network, schedule, data and training recipe)."""
        return _short_hash(self.to_dict())

    @property
    def arch_hash(self) -> str:
        """Hash of what decides the network's ops and shapes alone: a cost table measured for one
        preset serves every preset with the same arch_hash (schedule or residual may differ)."""
        return _short_hash({k: v for k, v in self.to_dict().items() if k in ARCH_FIELDS})


ARCH_FIELDS = ("base_channels", "channel_mults", "res_blocks", "attn_from_depth", "lr_size", "hr_size", "gnconv_ops",
               "resnet_ops", "search_decoder", "groups", "emb_mult")


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
