"""Data layer on real PNG files: splits, aligned crops, LR folders, built-in photos, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from rcai.data import DataConfig, ImageFolderSR, builtin_dataset_dir, load_rgb, make_datasets, make_loaders
from rcai.data.files import resize_bicubic
from rcai.errors import RcaiError


def _photo(h: int, w: int) -> np.ndarray:
    """A real photo (astronaut) crop: smooth regions and edges, unlike noise."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[:h, :w])


def _write(path, arr) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def folder(tmp_path):
    """10 HR photos, 96x80, named 0001.png..0010.png (different crops of one photo)."""
    big = _photo(512, 512)
    for i in range(10):
        _write(tmp_path / "HR" / f"{i + 1:04d}.png", big[i * 40 : i * 40 + 80, i * 30 : i * 30 + 96])
    return tmp_path / "HR"


def _names(ds) -> list[str]:
    return [p.name for p in ds.files]


def test_split_deterministic_and_disjoint(folder):
    parts = {s: _names(ImageFolderSR(folder, split=s, hr_crop=32)) for s in ("train", "val", "test", "eval")}
    assert [len(parts[s]) for s in ("train", "val", "test", "eval")] == [6, 1, 1, 2]
    union = set().union(*parts.values())
    assert len(union) == 10 and sum(map(len, parts.values())) == 10
    # the held-out evaluation set is the same for every seed and never in another split
    for seed in range(5):
        assert _names(ImageFolderSR(folder, split="eval", hr_crop=32, seed=seed)) == parts["eval"] == ["0003.png", "0008.png"]
        trained = {s: _names(ImageFolderSR(folder, split=s, hr_crop=32, seed=seed)) for s in ("train", "val", "test")}
        assert not set(parts["eval"]) & set().union(*trained.values())
    assert parts["train"] == _names(ImageFolderSR(folder, split="train", hr_crop=32))
    other = [_names(ImageFolderSR(folder, split="test", hr_crop=32, seed=s)) for s in range(1, 6)]
    assert any(o != parts["test"] for o in other)
    assert len(ImageFolderSR(folder, split="all", hr_crop=32)) == 10
    with pytest.raises(RcaiError, match="fractions"):
        ImageFolderSR(folder, fractions=(0.5, 0.5, 0.5))


def test_item_shapes_and_range(folder):
    ds = ImageFolderSR(folder, split="train", hr_crop=32, patches_per_image=3)
    assert len(ds) == 18  # 6 training images (2 of 10 are held out for evaluation)
    item = ds[5]
    assert item["lr_up"].shape == item["hr"].shape == (3, 32, 32)
    assert item["lr_up"].dtype == torch.float32
    assert -1.0 <= float(item["hr"].min()) and float(item["hr"].max()) <= 1.0
    assert item["name"] == ds.files[1].name


def test_crops_are_aligned(folder):
    ds = ImageFolderSR(folder, split="all", hr_crop=32)
    pair = ds.pairs[0]
    full_up = resize_bicubic(pair.lr, (pair.lr.shape[1] * 2, pair.lr.shape[0] * 2))
    top, left = 10, 12  # LR offsets away from the image border
    lr_up, hr = ds.crop(0, top, left)
    # the upsampled crop is exactly the same crop of the whole upsampled LR image ...
    assert np.array_equal(lr_up, full_up[20:52, 24:56])
    assert np.array_equal(hr, pair.hr[20:52, 24:56])
    # ... and downscaling the HR crop gives back (about) the LR crop, far better than off by one pixel
    down = resize_bicubic(np.ascontiguousarray(hr), (16, 16)).astype(float)[2:-2, 2:-2]
    err = np.abs(down - pair.lr[top : top + 16, left : left + 16][2:-2, 2:-2]).mean()
    shifted = np.abs(down - pair.lr[top + 1 : top + 17, left : left + 16][2:-2, 2:-2]).mean()
    assert err < 2.0 and shifted > 3 * err


def test_train_flips_and_crops_keep_pairs_aligned(folder):
    ds = ImageFolderSR(folder, split="train", hr_crop=32, seed=3)
    first = [ds[k % len(ds)] for k in range(40)]
    for it in first:  # the pair is flipped together: any extra flip of hr only makes it worse
        lr_up, hr = it["lr_up"], it["hr"]
        aligned = (lr_up - hr).abs().mean()
        for flipped in (hr.flip(-1), hr.flip(-2), hr.flip(-1, -2)):
            assert aligned < 0.8 * (lr_up - flipped).abs().mean()
    assert len({it["hr"].sum().item() for it in first}) > 30  # crops and flips vary
    second = ImageFolderSR(folder, split="train", hr_crop=32, seed=3)
    assert all(torch.equal(second[k % len(ds)]["hr"], first[k]["hr"]) for k in range(40))  # seeded


def test_eval_crops_fixed(folder):
    a = ImageFolderSR(folder, split="val", hr_crop=32, patches_per_image=4)
    b = ImageFolderSR(folder, split="val", hr_crop=32, patches_per_image=4)
    items = [a[i]["hr"] for i in range(4)]
    assert all(torch.equal(x, a[i]["hr"]) and torch.equal(x, b[i]["hr"]) for i, x in enumerate(items))
    assert not torch.equal(items[0], items[3])  # a grid, not four copies
    assert a.fixed_offsets[0][0] == (0, 0) and a.fixed_offsets[0][3] == (40 - 16, 48 - 16)


def test_lr_folder_div2k_names(tmp_path):
    hr = _photo(64, 64)
    _write(tmp_path / "HR" / "0001.png", hr)
    _write(tmp_path / "HR" / "0002.png", hr[::-1].copy())
    lr1 = np.full((32, 32, 3), 200, np.uint8)  # an LR unlike the bicubic one, to see it is used
    _write(tmp_path / "LR" / "0001x2.png", lr1)
    _write(tmp_path / "LR" / "0002.png", resize_bicubic(hr[::-1].copy(), (32, 32)))
    ds = ImageFolderSR(tmp_path / "HR", lr_dir=tmp_path / "LR", split="all", hr_crop=32)
    assert np.array_equal(ds.pairs[0].lr, lr1)
    assert float(ds[0]["lr_up"].mean()) == pytest.approx(200 / 127.5 - 1, abs=1e-6)


def test_gray_rgba_16bit_become_rgb(tmp_path):
    gray = _photo(40, 40)[:, :, 0]
    Image.fromarray(gray).save(tmp_path / "g.png")
    Image.fromarray(np.dstack([_photo(40, 40), np.full((40, 40), 128, np.uint8)])).save(tmp_path / "a.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "w.png")
    for name in ("g.png", "a.png", "w.png"):
        arr = load_rgb(tmp_path / name)
        assert arr.shape == (40, 40, 3) and arr.dtype == np.uint8
    assert np.array_equal(load_rgb(tmp_path / "g.png")[:, :, 2], gray)
    assert np.abs(load_rgb(tmp_path / "w.png")[:, :, 0].astype(int) - gray).max() <= 1


@pytest.fixture(scope="module")
def builtin_root(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def test_builtin_set_writes_real_pngs(builtin_root):
    hr_dir = builtin_dataset_dir(builtin_root)
    manifest = json.loads((hr_dir.parent / "manifest.json").read_text())["images"]
    assert len(manifest) >= 15
    assert {"skimage.data.astronaut", "skimage.data.coffee", "skimage.data.rocket"} <= {m["source"] for m in manifest}
    files = sorted(hr_dir.glob("*.png"))
    assert [f.name for f in files] == [m["file"] for m in manifest]
    for f, m in zip(files, manifest):
        with Image.open(f) as im:
            assert im.format == "PNG" and im.size == (m["width"], m["height"]) and min(im.size) >= 128
    astro = next(f for f, m in zip(files, manifest) if m["source"].endswith("astronaut"))
    assert np.array_equal(load_rgb(astro), _photo(512, 512))
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert builtin_dataset_dir(builtin_root) == hr_dir  # reused, not rewritten
    assert [f.stat().st_mtime_ns for f in files] == mtimes


def test_make_loaders_on_builtin(builtin_root, monkeypatch):
    monkeypatch.setenv("RCAI_CACHE_DIR", str(builtin_root))
    builtin_dataset_dir()  # already there: reused from the cache root in the env
    cfg = DataConfig(hr_crop=48, batch_size=4, seed=1)
    assert DataConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    sets = make_datasets(cfg)
    assert len(sets.train) > len(sets.val) >= 1 and len(sets.test) >= 1
    train, val, test = make_loaders(cfg)
    batch = next(iter(train))
    assert batch["hr"].shape == batch["lr_up"].shape == (4, 3, 48, 48) and len(batch["name"]) == 4
    again = next(iter(make_loaders(cfg).train))
    assert torch.equal(batch["hr"], again["hr"])  # seeded shuffle and crops
    assert sum(b["hr"].shape[0] for b in val) == len(sets.val)
    # same folder given explicitly (parent with an HR subfolder), loaded by worker processes
    workers = make_loaders(cfg, data_dir=str(builtin_root / "builtin"), num_workers=2, batch_size=2)
    assert sum(b["hr"].shape[0] for b in workers.train) == len(sets.train)


# -- bad input: RcaiError naming the file ---------------------------------------------------------
def test_corrupt_and_truncated_png(folder):
    (folder / "0003.png").write_bytes(b"not a png at all")
    with pytest.raises(RcaiError, match="0003.png: cannot read image"):
        ImageFolderSR(folder, split="all", hr_crop=32)
    data = (folder / "0004.png").read_bytes()
    (folder / "0003.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(RcaiError, match="0003.png"):
        ImageFolderSR(folder, split="all", hr_crop=32)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RcaiError, match="empty: no images"):
        ImageFolderSR(tmp_path / "empty")
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "readme.txt").write_text("hi")
    with pytest.raises(RcaiError, match="txt: no images"):
        ImageFolderSR(tmp_path / "txt")
    with pytest.raises(RcaiError, match="nope: "):
        make_datasets(data_dir=str(tmp_path / "nope"))


def test_crop_larger_than_image(folder):
    _write(folder / "0005.png", _photo(20, 60))
    with pytest.raises(RcaiError, match=r"0005.png: image is 60x20, smaller than the crop 32"):
        ImageFolderSR(folder, split="all", hr_crop=32)
    with pytest.raises(RcaiError, match="multiple of scale"):
        ImageFolderSR(folder, hr_crop=33)


def test_missing_or_mismatched_lr(tmp_path):
    _write(tmp_path / "HR" / "0001.png", _photo(64, 64))
    (tmp_path / "LR").mkdir()
    with pytest.raises(RcaiError, match=r"0001.png: no LR counterpart .*0001x2.png"):
        ImageFolderSR(tmp_path / "HR", lr_dir=tmp_path / "LR", split="all", hr_crop=32)
    _write(tmp_path / "LR" / "0001x2.png", _photo(30, 32))
    with pytest.raises(RcaiError, match=r"0001x2.png: LR is 32x30 .* expected 32x32 at scale 2"):
        ImageFolderSR(tmp_path / "HR", lr_dir=tmp_path / "LR", split="all", hr_crop=32)
