"""Memory of a training step on the CPU, estimated before any work so that a batch that cannot fit is
refused in one line (not a MemoryError, or the kernel's OOM killer, minutes later)."""
from __future__ import annotations

import torch

from ..memory import require_memory
from ..diffusion import NoiseSchedule, preset_loss


def bytes_per_sample(model: torch.nn.Module) -> int:
    """A training step's memory per sample: what autograd saves for the backward pass of one sample's
    loss (measured by its saved-tensor hooks; the weights aside), twice (the gradients flowing back
    through them), plus the sample's crops as the batch is assembled (items, stack, device copy)."""
    preset = model.preset
    weights = {p.data_ptr() for p in model.parameters()}
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        if t.data_ptr() not in weights:
            saved += t.numel() * t.element_size()
        return t

    crop = torch.zeros(1, 3, preset.hr_size, preset.hr_size)
    with torch.random.fork_rng(devices=[]), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        preset_loss(model, NoiseSchedule(preset.schedule), preset, crop, crop, torch.Generator().manual_seed(0))
    return 2 * saved + 6 * crop.numel() * crop.element_size()


def check_train_memory(model: torch.nn.Module, batch_size: int) -> None:
    """Refuse, in one line, a batch whose training step needs more memory than is available."""
    per = bytes_per_sample(model)
    require_memory(batch_size * per, f"--batch-size {batch_size}", f"about {per / 2**20:.2f} MiB a sample; use a smaller --batch-size")
