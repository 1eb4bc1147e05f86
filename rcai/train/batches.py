"""Resumable batch stream: indices from a generator whose state goes into the checkpoint, crops and
flips from the dataset's own generator (also checkpointed)."""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset


class BatchStream:
    def __init__(self, dataset: Dataset, batch_size: int, seed: int):
        self.dataset, self.batch_size = dataset, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self.dataset), (self.batch_size,), generator=self.generator)
        items = [self.dataset[int(i)] for i in idx]
        return torch.stack([it["lr_up"] for it in items]), torch.stack([it["hr"] for it in items])

    def state_dict(self) -> dict[str, Any]:
        ds_gen = getattr(self.dataset, "generator", None)
        return {"indices": self.generator.get_state(), "dataset": ds_gen.get_state() if ds_gen is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["indices"])
        if state.get("dataset") is not None:
            self.dataset.generator.set_state(state["dataset"])
