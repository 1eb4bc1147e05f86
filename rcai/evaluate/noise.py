"""The quality metric's own noise: its sd over noise seeds for the same trained weights."""
from __future__ import annotations

import statistics
from pathlib import Path


def eval_noise(run: str | Path, seeds: int = 5) -> float:
    """sd of the primary quality metric (rcai/train/quality.py) of a training folder's `model.pt`
    over `seeds` noise seeds of the posterior mean."""
    import torch

    from ..space.subnet import SubnetSpec
    from ..train.quality import QualityConfig, eval_set, quality
    from ..train.setup import schedule_of

    run = Path(run)
    spec = SubnetSpec.load(run / "subnet.json")
    model = spec.build()
    model.load_state_dict(torch.load(run / "model.pt", weights_only=True))
    ev = eval_set(spec.preset)
    gains = [quality(model, ev, schedule_of(spec.preset), QualityConfig(seed=s))["gain_db"] for s in range(seeds)]
    return statistics.stdev(gains)
