"""Short training from scratch: `train_steps` Adam steps of the training objective on the training
split (batch `batch`, seeded), then the primary quality metric (rcai/train/quality.py, gain over
bicubic in dB) on the fixed evaluation crops. Minutes, not milliseconds: the reference estimator."""
from __future__ import annotations

import torch

from ..diffusion import preset_loss
from ..model.unet import UNet
from ..train.batches import BatchStream
from ..train.quality import eval_set, quality
from ..train.setup import schedule_of, splits_of
from .base import register_proxy


@register_proxy("short_train")
def short_train(preset, arch, cfg) -> float:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = UNet(preset, dict(arch)).train()  # the trainer's init: output conv at zero
        schedule = schedule_of(preset)
        stream = BatchStream(splits_of(preset, cfg.data_dir, cfg.seed, cfg.batch).train, cfg.batch, cfg.seed)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        for _ in range(cfg.train_steps):
            loss = preset_loss(model, schedule, preset, *stream.next())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return quality(model, eval_set(preset, cfg.data_dir), schedule)["gain_db"]
