"""GN-conv candidates: GroupNorm -> SiLU -> (dropout) -> a conv variant, channel-preserving."""
from __future__ import annotations

from torch import nn

from .registry import OpSpec, gn_silu, register_op


def _gn_conv(spec: OpSpec, dropout: float, *convs: nn.Module) -> nn.Sequential:
    layers = gn_silu(spec.c_in, spec.groups)
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, *convs)


def _register_conv(k: int) -> None:
    @register_op(f"conv{k}x{k}", candidate=True)
    def build(spec: OpSpec, dropout: float) -> nn.Module:
        return _gn_conv(spec, dropout, nn.Conv2d(spec.c_in, spec.c_out, k, padding=k // 2))

    build.__doc__ = f"GroupNorm, SiLU, dense {k}x{k} conv"


def _register_dwsep(k: int) -> None:
    @register_op(f"dwsep{k}x{k}", candidate=True)
    def build(spec: OpSpec, dropout: float) -> nn.Module:
        return _gn_conv(
            spec,
            dropout,
            nn.Conv2d(spec.c_in, spec.c_in, k, padding=k // 2, groups=spec.c_in),
            nn.Conv2d(spec.c_in, spec.c_out, 1),
        )

    build.__doc__ = f"GroupNorm, SiLU, depthwise {k}x{k} then pointwise 1x1 (MobileNet-style)"


for _k in (1, 3, 5):
    _register_conv(_k)
for _k in (3, 5):
    _register_dwsep(_k)


@register_op("narrow3x3", candidate=True)
def narrow3x3(spec: OpSpec, dropout: float) -> nn.Module:
    """GroupNorm, SiLU, 3x3 conv to half width, SiLU, 1x1 back (a width choice)."""
    mid = max(1, spec.c_out // 2)
    return _gn_conv(spec, dropout, nn.Conv2d(spec.c_in, mid, 3, padding=1), nn.SiLU(), nn.Conv2d(mid, spec.c_out, 1))


@register_op("skip", candidate=True)
def skip(spec: OpSpec, dropout: float) -> nn.Module:
    """Identity: the slot is dropped from the network."""
    return nn.Identity()
