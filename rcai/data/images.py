"""SR3 training pairs from a DIV2K-like folder: (bicubic-upsampled LR crop, HR crop) in [-1,1]."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import RcaiError
from .files import find_lr, list_images, load_rgb, resize_bicubic, split_files

# LR pixels kept around a crop before upsampling: PIL's bicubic taps reach 2 LR pixels, so the
# upsampled crop equals the same crop of the whole upsampled image (except at the image border).
_MARGIN = 3


@dataclass(frozen=True)
class _Pair:
    name: str
    hr: np.ndarray  # uint8 [H,W,3], H and W multiples of scale
    lr: np.ndarray  # uint8 [H/scale, W/scale, 3]


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 [H,W,3] -> float32 [3,H,W] in [-1,1]."""
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    return t.to(torch.float32).div_(127.5).sub_(1.0)


def _grid(extent: int, crop: int, n: int) -> list[int]:
    """n evenly spread crop offsets in [0, extent-crop]."""
    if n == 1:
        return [(extent - crop) // 2]
    return [round(i * (extent - crop) / (n - 1)) for i in range(n)]


class ImageFolderSR(Dataset):
    """HR images in `hr_dir`; LR from `lr_dir` (DIV2K `0001x2.png` or same name) or, if None, PIL
    bicubic downscaling of the HR image. Items: {"lr_up", "hr": float32 [3,hr_crop,hr_crop] in [-1,1],
    "name": file name}; lr_up is the LR crop upsampled bicubically to HR size (SR3's conditioning).

    train: random aligned crops and, with augment, random horizontal/vertical flips, drawn from the
    dataset's own torch.Generator seeded with `seed` (reseed() it per DataLoader worker, as
    make_loaders does, so workers do not repeat each other). val/test/all: fixed crops
    (centre for patches_per_image=1, else an even grid). All images are decoded once, at construction.
    """

    def __init__(
        self,
        hr_dir: str | Path,
        lr_dir: str | Path | None = None,
        scale: int = 2,
        hr_crop: int = 64,
        split: str = "train",
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        seed: int = 0,
        augment: bool = True,
        patches_per_image: int = 1,
    ) -> None:
        if scale < 1 or hr_crop < 1 or patches_per_image < 1:
            raise RcaiError(f"scale, hr_crop and patches_per_image must be >= 1 (got {scale}, {hr_crop}, {patches_per_image})")
        if hr_crop % scale:
            raise RcaiError(f"hr_crop {hr_crop} must be a multiple of scale {scale}")
        self.hr_dir, self.lr_dir = Path(hr_dir), (Path(lr_dir) if lr_dir is not None else None)
        self.scale, self.hr_crop, self.split = int(scale), int(hr_crop), split
        self.random = split == "train"
        self.augment = bool(augment) and self.random
        self.patches_per_image = int(patches_per_image)
        self.files = split_files(list_images(self.hr_dir), split, fractions, seed)
        if not self.files:
            raise RcaiError(f"{self.hr_dir}: split {split!r} is empty with fractions {tuple(fractions)}")
        self.pairs = [self._load(p) for p in self.files]
        self.generator = torch.Generator().manual_seed(int(seed))
        self.fixed_offsets = None if self.random else [self._grid_offsets(p) for p in self.pairs]

    # -- loading --------------------------------------------------------------------------------
    def _load(self, hr_path: Path) -> _Pair:
        s = self.scale
        hr = load_rgb(hr_path)
        h, w = (hr.shape[0] // s) * s, (hr.shape[1] // s) * s
        if min(h, w) < self.hr_crop:
            raise RcaiError(f"{hr_path}: image is {hr.shape[1]}x{hr.shape[0]}, smaller than the crop {self.hr_crop}")
        if self.lr_dir is None:
            hr = np.ascontiguousarray(hr[:h, :w])
            lr = resize_bicubic(hr, (w // s, h // s))
        else:
            lr_path = find_lr(hr_path, self.lr_dir, s)
            lr = load_rgb(lr_path)
            if lr.shape[:2] != (hr.shape[0] // s, hr.shape[1] // s):
                raise RcaiError(
                    f"{lr_path}: LR is {lr.shape[1]}x{lr.shape[0]} but HR {hr_path.name} is "
                    f"{hr.shape[1]}x{hr.shape[0]}; expected {hr.shape[1] // s}x{hr.shape[0] // s} at scale {s}"
                )
            hr = np.ascontiguousarray(hr[:h, :w])
        return _Pair(hr_path.name, hr, lr)

    def _grid_offsets(self, pair: _Pair) -> list[tuple[int, int]]:
        """Fixed LR-pixel offsets (top, left) for val/test crops."""
        c, n = self.hr_crop // self.scale, self.patches_per_image
        lh, lw = pair.lr.shape[:2]
        cols = math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        offs = [(y, x) for y in _grid(lh, c, rows) for x in _grid(lw, c, cols)]
        return offs[:n]

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed) % 2**63)

    # -- items ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.pairs) * self.patches_per_image

    def crop(self, index: int, top: int, left: int) -> tuple[np.ndarray, np.ndarray]:
        """(lr_up, hr) uint8 crops of image `index` at LR offset (top, left)."""
        pair, s, c = self.pairs[index], self.scale, self.hr_crop // self.scale
        lh, lw = pair.lr.shape[:2]
        y0, x0 = max(top - _MARGIN, 0), max(left - _MARGIN, 0)
        y1, x1 = min(top + c + _MARGIN, lh), min(left + c + _MARGIN, lw)
        region = resize_bicubic(pair.lr[y0:y1, x0:x1], ((x1 - x0) * s, (y1 - y0) * s))
        oy, ox = (top - y0) * s, (left - x0) * s
        lr_up = region[oy : oy + self.hr_crop, ox : ox + self.hr_crop]
        hr = pair.hr[top * s : top * s + self.hr_crop, left * s : left * s + self.hr_crop]
        return lr_up, hr

    def __getitem__(self, idx: int) -> dict:
        if not 0 <= idx < len(self):
            raise IndexError(idx)
        i, j = divmod(idx, self.patches_per_image)
        if self.random:
            lh, lw = self.pairs[i].lr.shape[:2]
            c = self.hr_crop // self.scale
            top = int(torch.randint(0, lh - c + 1, (), generator=self.generator))
            left = int(torch.randint(0, lw - c + 1, (), generator=self.generator))
        else:
            top, left = self.fixed_offsets[i][j]
        lr_up, hr = self.crop(i, top, left)
        if self.augment:
            if bool(torch.rand((), generator=self.generator) < 0.5):
                lr_up, hr = lr_up[:, ::-1], hr[:, ::-1]
            if bool(torch.rand((), generator=self.generator) < 0.5):
                lr_up, hr = lr_up[::-1], hr[::-1]
        return {"lr_up": _to_tensor(lr_up), "hr": _to_tensor(hr), "name": self.pairs[i].name}
