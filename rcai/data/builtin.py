"""A small real-photo SR set that needs no download: the photographs inside scikit-image's wheel.

Included (in this order, as HR/0001.png ...): astronaut, brick, camera, cell, chelsea, clock, coffee,
coins, grass, gravel, hubble_deep_field, immunohistochemistry, moon, page, retina, rocket, text,
motorcycle (left view of stereo_motorcycle). Greyscale ones are kept greyscale (the loader makes RGB).
Left out: synthetic images (checkerboard, colorwheel, logo, horse silhouette, binary_blobs,
shepp_logan_phantom), microaneurysms (102 px), the right motorcycle view (near-duplicate of the left,
would leak across splits), lfw_subset (25 px faces), and everything that needs pooch and a download
(brain, cells3d, eagle, human_mitosis, kidney, lily, nickel_solidification, palisades_of_vogt,
protein_transport, skin, vortex). An image that fails to load in some install is skipped.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import RcaiError
from ..io import atomic_write_bytes, atomic_write_json, read_json

MIN_SIDE = 128


def _fn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _motorcycle_left() -> np.ndarray:
    import skimage.data

    return skimage.data.stereo_motorcycle()[0]


BUILTIN_IMAGES: dict[str, Callable[[], np.ndarray]] = {
    **{
        n: _fn(n)
        for n in (
            "astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass",
            "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina",
            "rocket", "text",
        )
    },
    "motorcycle": _motorcycle_left,
}


def default_cache_root() -> Path:
    return Path(os.environ.get("RCAI_CACHE_DIR", Path.home() / ".cache" / "rcai"))


def _png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _complete(root: Path) -> bool:
    manifest = root / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        entries = read_json(manifest)["images"]
    except (RcaiError, KeyError, TypeError):
        return False
    return bool(entries) and all((root / "HR" / e["file"]).is_file() for e in entries)


def builtin_dataset_dir(root: str | Path | None = None) -> Path:
    """Write the built-in photos as PNGs under <root>/builtin/HR (root: $RCAI_CACHE_DIR or
    ~/.cache/rcai) and return that HR folder. Reused when a manifest says a previous run finished;
    every file and the manifest (written last) are written atomically."""
    base = (Path(root) if root is not None else default_cache_root()) / "builtin"
    hr_dir = base / "HR"
    if _complete(base):
        return hr_dir
    entries = []
    for source, load in BUILTIN_IMAGES.items():
        try:
            img = np.asarray(load())
        except Exception:  # e.g. pooch missing or no network in some install: skip that photo
            continue
        if img.dtype != np.uint8 or img.ndim not in (2, 3) or min(img.shape[:2]) < MIN_SIDE:
            continue
        name = f"{len(entries) + 1:04d}.png"
        atomic_write_bytes(hr_dir / name, _png_bytes(img))
        entries.append({"file": name, "source": f"skimage.data.{source}", "height": img.shape[0], "width": img.shape[1]})
    if not entries:
        raise RcaiError(f"{hr_dir}: no built-in image could be loaded from scikit-image")
    atomic_write_json(base / "manifest.json", {"images": entries})
    return hr_dir
