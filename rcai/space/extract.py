"""Subnet extraction: argmax of every mixed op -> a plain UNet with only the chosen ops, weights inherited."""
from __future__ import annotations

from ..model.mixed import MixedOp
from ..model.unet import UNet
from .space import Arch, SearchSpace
from .subnet import SubnetSpec


def argmax_arch(supernet: UNet, space: SearchSpace | None = None) -> Arch:
    """The argmax choice of every active slot (a nested slot counts only if its parent chose it)."""
    by_path = {m.path: m for m in supernet.modules() if isinstance(m, MixedOp)}
    space = space or SearchSpace.of(supernet.preset)
    return space.pick(lambda slot: by_path[slot.path].argmax())


def extract_subnet(supernet: UNet, arch: Arch | None = None) -> tuple[UNet, SubnetSpec]:
    """Build the subnet (`arch`, default argmax) and copy its weights from the supernet."""
    space = SearchSpace.of(supernet.preset)
    choices = space.validate(arch) if arch is not None else argmax_arch(supernet, space)
    spec = SubnetSpec(supernet.preset, choices)
    subnet = UNet(supernet.preset, spec.choices).to(next(supernet.parameters()).device)
    source = supernet.state_dict()
    subnet.load_state_dict({k: source[k] for k in subnet.state_dict()})
    return subnet, spec


def extract_path(net: UNet, arch: Arch) -> tuple[UNet, SubnetSpec]:
    """The subnet `arch` of a one-shot supernet (rcai/model/oneshot.py) as a plain UNet, its weights
    read off the supernet's (shared or independent) weights: it computes what the supernet computes
    on that path."""
    from ..model.oneshot import set_path, subnet_tensors

    space = SearchSpace.of(net.preset)
    spec = SubnetSpec(net.preset, space.validate(arch))
    set_path(net, spec.choices)
    subnet = UNet(net.preset, spec.choices).to(next(net.parameters()).device)
    subnet.load_state_dict({k: v.detach().clone() for k, v in subnet_tensors(net)})
    return subnet, spec
