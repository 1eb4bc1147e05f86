"""One typed config -> train/val/test datasets and DataLoaders (None as data_dir: the built-in set)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch.utils.data import DataLoader

from ..config import JsonConfig
from ..errors import RcaiError
from .builtin import builtin_dataset_dir
from .images import ImageFolderSR


@dataclass(frozen=True)
class DataConfig(JsonConfig):
    """data_dir: folder of HR images, or a folder holding an `HR` subfolder; None = built-in photos."""

    data_dir: str | None = None
    lr_dir: str | None = None
    scale: int = 2
    hr_crop: int = 64
    batch_size: int = 8
    seed: int = 0
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    augment: bool = True
    patches_per_image: int = 1
    num_workers: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "fractions", tuple(float(f) for f in self.fractions))
        if self.batch_size < 1 or self.num_workers < 0:
            raise RcaiError(f"data: batch_size must be >= 1 and num_workers >= 0 (got {self.batch_size}, {self.num_workers})")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fractions"] = list(self.fractions)
        return d



class Splits(NamedTuple):
    train: Any
    val: Any
    test: Any


def resolve_hr_dir(data_dir: str | Path | None) -> Path:
    if data_dir is None:
        return builtin_dataset_dir()
    p = Path(data_dir)
    if not p.is_dir():
        raise RcaiError(f"{p}: data directory not found")
    return p / "HR" if (p / "HR").is_dir() else p


def make_datasets(cfg: DataConfig | None = None, **overrides: Any) -> Splits:
    """ImageFolderSR for train, val and test (same file split for all three)."""
    cfg = cfg or DataConfig()
    if overrides:
        cfg = DataConfig.from_dict({**cfg.to_dict(), **overrides})
    hr_dir = resolve_hr_dir(cfg.data_dir)
    common = dict(
        hr_dir=hr_dir, lr_dir=cfg.lr_dir, scale=cfg.scale, hr_crop=cfg.hr_crop,
        fractions=cfg.fractions, seed=cfg.seed, patches_per_image=cfg.patches_per_image,
    )
    return Splits(*(ImageFolderSR(split=s, augment=cfg.augment, **common) for s in ("train", "val", "test")))


def _reseed_worker(_: int) -> None:
    """Each worker's copy of the dataset draws crops from its own seed (derived from cfg.seed)."""
    info = torch.utils.data.get_worker_info()
    info.dataset.reseed(info.seed)


def make_loaders(cfg: DataConfig | None = None, **overrides: Any) -> Splits:
    """DataLoaders: train shuffled by a generator seeded with cfg.seed, val/test in order."""
    cfg = cfg or DataConfig()
    if overrides:
        cfg = DataConfig.from_dict({**cfg.to_dict(), **overrides})
    sets = make_datasets(cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    train = DataLoader(
        sets.train, batch_size=cfg.batch_size, shuffle=True, generator=gen,
        num_workers=cfg.num_workers, worker_init_fn=_reseed_worker,
    )
    val, test = (DataLoader(s, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.num_workers) for s in sets[1:])
    return Splits(train, val, test)
