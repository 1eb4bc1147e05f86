"""Image files of a DIV2K-like folder: listing, decoding to RGB uint8, LR pairing, splits."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..errors import RcaiError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val", "test", "eval", "all")
# A folder of at least HOLDOUT_MIN_FILES images keeps a fixed fifth of them out of every split: the
# evaluation set that ranks networks is then the same whatever the training seed.
HOLDOUT_FRACTION = 0.2
HOLDOUT_MIN_FILES = 10


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RcaiError(f"{folder}: not a directory")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise RcaiError(f"{folder}: no images ({', '.join(IMAGE_EXTS)})")
    return files


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode to uint8 [H,W,3]: grayscale is replicated, alpha dropped, 16-bit scaled to 8-bit."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im, dtype=np.float64)
                a = np.clip(a / (257.0 if a.max() > 255 else 1.0), 0, 255).round().astype(np.uint8)
                return np.ascontiguousarray(np.repeat(a[:, :, None], 3, axis=2))
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise RcaiError(f"{path}: file not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise RcaiError(f"{path}: cannot read image ({e})") from None


def find_lr(hr_path: Path, lr_dir: str | Path, scale: int) -> Path:
    """LR counterpart of `hr_path` in lr_dir: DIV2K style `0001x2.png`, else the same name."""
    lr_dir = Path(lr_dir)
    candidates = [lr_dir / f"{hr_path.stem}x{scale}{hr_path.suffix}", lr_dir / hr_path.name]
    for c in candidates:
        if c.is_file():
            return c
    raise RcaiError(f"{hr_path}: no LR counterpart (looked for {' or '.join(str(c) for c in candidates)})")


def resize_bicubic(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """PIL bicubic resize of uint8 [H,W,3] to size = (width, height)."""
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BICUBIC), dtype=np.uint8)


def split_counts(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Images per train/val/test: val and test get at least one each when their fraction > 0."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise RcaiError(f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    n_val, n_test = (max(1, round(f * n)) if f > 0 else 0 for f in fractions[1:])
    n_train = n - n_val - n_test
    if n_train < (1 if fractions[0] > 0 else 0) or n_train < 0:
        raise RcaiError(f"{n} images are too few for fractions {tuple(fractions)}")
    return n_train, n_val, n_test


def holdout_files(files: Sequence[Path]) -> list[Path]:
    """The seed-independent evaluation set: round(20%) of the name-sorted files, evenly spread
    (none below HOLDOUT_MIN_FILES files). Built-in photos: camera, coffee, immunohistochemistry, rocket."""
    files = sorted(files, key=lambda p: p.name)
    n = len(files)
    k = round(HOLDOUT_FRACTION * n) if n >= HOLDOUT_MIN_FILES else 0
    return [files[int((i + 0.5) * n / k)] for i in range(k)]


def split_files(files: Sequence[Path], split: str, fractions: Sequence[float], seed: int) -> list[Path]:
    """Deterministic split: the held-out evaluation files apart ("eval"; see holdout_files), shuffle the
    rest with `seed` and cut by fractions. "all": every file. Without a held-out set "eval" is "test"."""
    if split not in SPLITS:
        raise RcaiError(f"split must be one of {SPLITS}, got {split!r}")
    files = sorted(files, key=lambda p: p.name)
    if split == "all":
        return files
    held = holdout_files(files)
    if split == "eval" and held:
        return held
    if split == "eval":
        split = "test"
    files = [f for f in files if f not in held]
    n_train, n_val, _ = split_counts(len(files), fractions)
    order = np.random.default_rng(seed).permutation(len(files))
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, len(files))}
    lo, hi = bounds[split]
    return sorted((files[i] for i in order[lo:hi]), key=lambda p: p.name)
