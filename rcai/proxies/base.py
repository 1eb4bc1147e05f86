"""What every quality estimator shares: its config, its registry, the fixed batch, the seeded
initialisation and the loss the gradient-based proxies differentiate.

Our denoiser is a regression network, so the proxies written for classifiers need a loss: we use the
training objective itself, `rcai.diffusion.preset_loss` (tiny: mean squared error between the network
output and the v-prediction target) on one fixed batch of training crops, with fixed noise
levels and noise (a seeded generator). Every proxy scores the subnet at a seeded initialisation; the
output conv, which training starts at zero (so an untrained net predicts bicubic), is drawn like any
other conv, otherwise no gradient would reach the layers below it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Mapping

import torch
from torch import nn

from ..config import JsonConfig
from ..diffusion import preset_loss
from ..diffusion.parametrisation import chain_x0
from ..model.unet import UNet
from ..registry import Registry
from ..presets import Preset
from ..train.setup import schedule_of, splits_of
from ..config import counts_of, require_counts

Estimator = Callable[[Mapping[str, str]], float]  # arch -> score, higher is better


@dataclass(frozen=True)
class ProxyConfig(JsonConfig):
    batch: int = 8  # crops in the fixed batch
    seed: int = 0  # initialisation, batch draw and noise
    data_dir: str | None = None  # None: the built-in photos
    train_steps: int = 50  # short_train: optimizer steps from scratch
    lr: float = 2e-3  # short_train
    vote_refs: int = 16  # vote: random reference subnets each member's score is ranked against
    supernet: str | None = None  # inherited: a trained supernet's weights (a search run's supernet.pt)
    quality_model: str | None = None  # quality-model: a file of `rcai quality fit` (rcai/proxies/additive.py)

    def __post_init__(self) -> None:
        require_counts(counts_of(self, "batch", "train_steps", "vote_refs"), "proxy ")


# name -> factory(preset, cfg) -> Estimator. Factories may precompute (the vote's references).
PROXIES: Registry[Callable[[Preset, ProxyConfig], Estimator]] = Registry("proxy")


def register_proxy(name: str):
    """Register a per-subnet score `fn(preset, arch, cfg) -> float` as the proxy `name`."""

    def deco(fn):
        PROXIES.add(name, lambda preset, cfg, fn=fn: (lambda arch: float(fn(preset, arch, cfg))))
        return fn

    return deco


def make_estimator(name: str, preset: Preset, cfg: ProxyConfig = ProxyConfig()) -> Estimator:
    return PROXIES.get(name)(preset, cfg)


def init_model(preset: Preset, arch: Mapping[str, str], seed: int) -> UNet:
    """The subnet at a seeded initialisation (torch's global RNG untouched), output conv drawn too."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UNet(preset, dict(arch))
        for m in model.head.modules():
            if isinstance(m, nn.Conv2d):
                m.reset_parameters()
    return model.train()


@lru_cache(maxsize=8)
def _batch(preset: Preset, data_dir: str | None, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    ds = splits_of(preset, data_dir, seed, batch).train
    ds.augment = False
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:batch]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        items = [ds[int(i)] for i in idx]
    return torch.stack([it["lr_up"] for it in items]), torch.stack([it["hr"] for it in items])


def fixed_batch(preset: Preset, cfg: ProxyConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(lr_up, hr) of `cfg.batch` training crops, the same for every subnet (clones: safe to modify)."""
    lr_up, hr = _batch(preset, cfg.data_dir, cfg.batch, cfg.seed)
    return lr_up.clone(), hr.clone()


def proxy_loss(model: UNet, preset: Preset, cfg: ProxyConfig, lr_up: torch.Tensor | None = None, hr: torch.Tensor | None = None) -> torch.Tensor:
    """The preset's training loss (`preset_loss`) on the fixed batch with fixed noise levels and noise."""
    if lr_up is None:
        lr_up, hr = fixed_batch(preset, cfg)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    return preset_loss(model, schedule_of(preset), preset, lr_up, hr, generator=gen)


def noisy_input(preset: Preset, cfg: ProxyConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The network input of the proxy loss, cat[lr_up, y_t], and its noise level √γ (fixed)."""
    from ..diffusion import q_sample, sample_gamma, sample_timesteps

    lr_up, hr = fixed_batch(preset, cfg)
    schedule = schedule_of(preset)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    t = sample_timesteps(schedule, len(hr), gen)
    gamma = sample_gamma(schedule, t, gen)
    eps = torch.randn(hr.shape, generator=gen, dtype=hr.dtype)
    x0 = chain_x0(hr, lr_up, preset.residual)
    return torch.cat([lr_up, q_sample(x0, gamma, eps)], 1), gamma.sqrt().float().view(-1, 1)


def weights(model: nn.Module) -> list[nn.Parameter]:
    """The conv and linear weights (the layers pruning-at-init scores are defined on)."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def grads(model: UNet, preset: Preset, cfg: ProxyConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, dLoss/dweight) of every conv/linear layer at the seeded init."""
    ws = weights(model)
    g = torch.autograd.grad(proxy_loss(model, preset, cfg), ws, allow_unused=True)
    return [(w.detach(), gi if gi is not None else torch.zeros_like(w)) for w, gi in zip(ws, g)]
