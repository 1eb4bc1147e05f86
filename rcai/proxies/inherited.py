"""Inherited weights (one-shot evaluation): the subnet's ops and weights are copied out of a trained
supernet (`ProxyConfig.supernet`, e.g. a search run's supernet.pt; rcai/space/extract.py) and scored
by the primary quality metric without further training. Normalisation needs no recalibration: our
GroupNorm keeps no running statistics (every sample is normalised by its own)."""
from __future__ import annotations

from ..errors import RcaiError
from ..io import load_torch
from ..model.unet import UNet
from ..space.extract import extract_subnet
from ..train.quality import eval_set, quality
from ..train.setup import schedule_of
from .base import PROXIES, ProxyConfig


@PROXIES.register("inherited")
def inherited(preset, cfg: ProxyConfig):
    if not cfg.supernet:
        raise RcaiError("proxy 'inherited' needs a trained supernet's weights (a search run's supernet.pt)")
    supernet = UNet(preset)
    state = load_torch(cfg.supernet, "supernet weights")
    try:
        supernet.load_state_dict(state)
    except RuntimeError as e:
        raise RcaiError(f"{cfg.supernet}: not a supernet of preset {preset.name} ({str(e).strip().splitlines()[0]})") from None
    ev, schedule = eval_set(preset, cfg.data_dir), schedule_of(preset)

    def score(arch) -> float:
        subnet, _ = extract_subnet(supernet, dict(arch))
        return quality(subnet, ev, schedule)["gain_db"]

    return score
