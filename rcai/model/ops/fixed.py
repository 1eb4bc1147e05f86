"""Fixed (non-searchable) parts of the UNet, registered as ops so they are profiled and costed too."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .registry import OpSpec, gn_silu, register_op


class NoiseEmbedding(nn.Module):
    """Sinusoidal encoding of the noise level sqrt(gamma) (WaveGrad/SR3), then an MLP."""

    def __init__(self, dim: int, out_dim: int, scale: float = 1000.0):
        super().__init__()
        self.dim, self.scale = dim, scale
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, noise_level: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(1e4) * torch.arange(half, device=noise_level.device) / half)
        angles = self.scale * noise_level.reshape(-1, 1).float() * freqs  # float32 whatever the network's precision
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1).to(self.mlp[0].weight.dtype))


@register_op("noise_embed", inputs=lambda s, b: {"noise_level": (b, 1)})
def noise_embed(spec: OpSpec, dropout: float) -> nn.Module:
    """Noise-level embedding: sinusoidal(c_in) -> Linear -> SiLU -> Linear(c_out)."""
    return NoiseEmbedding(spec.c_in, spec.c_out)


class FiLM(nn.Module):
    """Feature-wise affine modulation by the noise embedding: x * (1 + scale) + shift."""

    def __init__(self, channels: int, emb: int):
        super().__init__()
        self.proj = nn.Sequential(nn.SiLU(), nn.Linear(emb, 2 * channels))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(emb)[:, :, None, None].chunk(2, dim=1)
        return x * (1 + scale) + shift


@register_op("film", inputs=lambda s, b: {"x": (b, s.c_in, s.h, s.w), "emb": (b, s.emb)})
def film(spec: OpSpec, dropout: float) -> nn.Module:
    """FiLM scale and shift from the noise embedding, in every ResNet block."""
    return FiLM(spec.c_in, spec.emb)


@register_op("stem")
def stem(spec: OpSpec, dropout: float) -> nn.Module:
    """3x3 conv from concat(LR-up, y_t) (6 channels) to the base width."""
    return nn.Conv2d(spec.c_in, spec.c_out, 3, padding=1)


@register_op("down")
def down(spec: OpSpec, dropout: float) -> nn.Module:
    """Strided 3x3 conv: halves the resolution, changes the width to the next level's."""
    return nn.Conv2d(spec.c_in, spec.c_out, 3, stride=2, padding=1)


class Upsample(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


@register_op("up")
def up(spec: OpSpec, dropout: float) -> nn.Module:
    """Nearest x2 upsampling then a 3x3 conv to the upper level's width."""
    return Upsample(spec.c_in, spec.c_out)


class Merge(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([x, skip], dim=1))


@register_op("merge", inputs=lambda s, b: {"x": (b, s.c_in, s.h, s.w), "skip": (b, s.c_in, s.h, s.w)})
def merge(spec: OpSpec, dropout: float) -> nn.Module:
    """UNet skip connection: concat with the encoder feature, 1x1 conv back to the width."""
    return Merge(spec.c_in)


@register_op("head")
def head(spec: OpSpec, dropout: float) -> nn.Module:
    """GroupNorm, SiLU, 3x3 conv to the 3 predicted channels. The conv starts at zero (as in ADM), so an
    untrained network predicts a zero residual (v = 0 at pure noise: bicubic) rather than noise."""
    conv = nn.Conv2d(spec.c_in, spec.c_out, 3, padding=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return nn.Sequential(*gn_silu(spec.c_in, spec.groups), conv)
