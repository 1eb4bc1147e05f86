"""Jacobian covariance (Mellor et al. 2021, v1): J = d(Σ output)/d input per sample of the fixed
noisy batch (input = cat[lr_up, y_t]); the correlation matrix C of the flattened Js, eigenvalues v;
score = -Σ (log(v + k) + 1/(v + k)), k = 1e-5. Less correlated Jacobians score higher."""
from __future__ import annotations

import numpy as np
import torch

from .base import init_model, noisy_input, register_proxy


@register_proxy("jacob_cov")
def jacob_cov(preset, arch, cfg) -> float:
    model = init_model(preset, arch, cfg.seed)
    x, level = noisy_input(preset, cfg)
    x.requires_grad_(True)
    (j,) = torch.autograd.grad(model(x, level).sum(), x)
    j = j.reshape(len(x), -1).double().numpy()
    c = np.corrcoef(j)
    v = np.linalg.eigvalsh(np.nan_to_num(c))
    k = 1e-5
    return float(-np.sum(np.log(np.abs(v) + k) + 1.0 / (np.abs(v) + k)))
