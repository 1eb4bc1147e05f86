"""The LR input of a benchmark: a user image of the preset's LR size, a built-in photo crop, or a
seeded random image; returned bicubic-upsampled in [-1,1] as the sampler's conditioning."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import builtin_dataset_dir, list_images, load_rgb
from ..data.files import resize_bicubic
from ..errors import RcaiError

RANDOM = "random"  # --image random: a seeded random LR image
BUILTIN = "builtin"  # default: the centre crop of the first built-in photo


def _to_input(lr: np.ndarray, hr: int, batch: int) -> np.ndarray:
    up = resize_bicubic(lr, (hr, hr)).astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0
    return np.ascontiguousarray(np.repeat(up[None], batch, axis=0))


def _builtin_lr(lr_size: int, hr: int) -> np.ndarray:
    hr_dir = builtin_dataset_dir()
    img = load_rgb(list_images(hr_dir)[0])
    h, w = img.shape[:2]
    top, left = (h - hr) // 2, (w - hr) // 2
    return resize_bicubic(np.ascontiguousarray(img[top : top + hr, left : left + hr]), (lr_size, lr_size))


def lr_input(image: str | Path | None, lr_size: int, hr_size: int, batch: int = 1, seed: int = 0) -> tuple[np.ndarray, str]:
    """(lr_up [batch,3,hr,hr] float32 in [-1,1], description of the source). `image`: a PNG/JPEG path
    of exactly lr_size x lr_size, "random", or None/"builtin" (falls back to random if the built-in
    photos cannot be loaded)."""
    if image is None or str(image) == BUILTIN:
        try:
            return _to_input(_builtin_lr(lr_size, hr_size), hr_size, batch), f"built-in photo crop {lr_size}x{lr_size}"
        except (RcaiError, OSError, IndexError) as e:
            image, fallback = RANDOM, f" (built-in photos unavailable: {e})"
    else:
        fallback = ""
    if str(image) == RANDOM:
        rng = np.random.default_rng(seed)
        lr = rng.integers(0, 256, size=(lr_size, lr_size, 3), dtype=np.uint8)
        return _to_input(lr, hr_size, batch), f"random LR image (seed {seed}){fallback}"
    lr = load_rgb(image)
    if lr.shape[:2] != (lr_size, lr_size):
        raise RcaiError(f"{image}: image is {lr.shape[1]}x{lr.shape[0]}, the model needs {lr_size}x{lr_size} (the preset's LR size)")
    return _to_input(lr, hr_size, batch), str(image)
