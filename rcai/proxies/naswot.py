"""NASWOT (Mellor et al. 2021, the seed's Algorithm 1 score): every SiLU unit's binary code bit is
whether its pre-activation is > 0 (SiLU has ReLU's sign split); per sample of the fixed noisy batch
the code concatenates all units of all SiLUs (every channel at every position). K[i, j] = number of
units where samples i and j agree (N_A − Hamming distance); score = log|det K|."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import init_model, noisy_input, register_proxy


@register_proxy("naswot")
def naswot(preset, arch, cfg) -> float:
    model = init_model(preset, arch, cfg.seed)
    x, level = noisy_input(preset, cfg)
    k = torch.zeros(len(x), len(x), dtype=torch.float64)

    def count(_m, inputs, _out):
        c = (inputs[0].detach().reshape(len(x), -1) > 0).double()
        k.add_(c @ c.T + (1 - c) @ (1 - c).T)

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.SiLU, nn.ReLU))]
    try:
        with torch.no_grad():
            model(x, level)
    finally:
        for h in hooks:
            h.remove()
    return float(np.linalg.slogdet(k.numpy())[1])
