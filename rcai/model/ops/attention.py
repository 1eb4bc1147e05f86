"""Self-attention candidate of the ResNet multi-op (SR3-style single-head attention, residual)."""
from __future__ import annotations

import math

import torch
from torch import nn

from .registry import OpSpec, norm_groups, register_op


class SelfAttention(nn.Module):
    def __init__(self, channels: int, groups: int, heads: int = 1):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(norm_groups(channels, groups), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=False)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        attn = torch.softmax(torch.einsum("bncq,bnck->bnqk", q, k) / math.sqrt(c // self.heads), dim=-1)
        out = torch.einsum("bnqk,bnck->bncq", attn, v).reshape(b, c, h, w)
        return x + self.proj(out)


@register_op("attention", candidate=True)
def attention(spec: OpSpec, dropout: float) -> nn.Module:
    """GroupNorm, single-head self-attention over all positions, 1x1 projection, residual."""
    return SelfAttention(spec.c_in, spec.groups)
