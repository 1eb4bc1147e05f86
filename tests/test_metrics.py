"""PSNR / SSIM on [-1,1] batches."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rcai.errors import RcaiError
from rcai.metrics import psnr, ssim


@pytest.fixture
def img():
    return np.random.default_rng(0).uniform(-0.8, 0.8, (2, 3, 32, 32))


def test_identical_images(img):
    assert psnr(img, img) == float("inf")
    assert ssim(img, img) == pytest.approx(1.0)


def test_psnr_known_values(img):
    assert psnr(img + 0.2, img) == pytest.approx(20.0)  # MSE 0.04, range 2: 10·log10(4/0.04)
    shifted = img + np.array([0.2, 0.02])[:, None, None, None]  # per-image 20 dB and 40 dB
    assert psnr(shifted, img) == pytest.approx(30.0)
    assert psnr(img + 0.1, img, data_range=1.0) == pytest.approx(20.0)
    noisy = img + np.random.default_rng(1).normal(0, 0.1, img.shape)
    assert psnr(noisy, img) == pytest.approx(10 * np.log10(4 / 0.01), abs=0.15)


def test_ssim_orders_noise_levels(img):
    rng = np.random.default_rng(2)
    values = [ssim(img + rng.normal(0, s, img.shape), img) for s in (0.01, 0.1, 0.5)]
    assert 1.0 > values[0] > values[1] > values[2]


def test_torch_and_single_image_inputs(img):
    noisy = img + 0.05 * np.sign(img)
    ref = psnr(noisy, img), ssim(noisy, img)
    t = torch.tensor(noisy, dtype=torch.float32), torch.tensor(img, dtype=torch.float32)
    assert psnr(*t) == pytest.approx(ref[0], abs=1e-4)
    assert ssim(*t) == pytest.approx(ref[1], abs=1e-4)
    per_image = [psnr(noisy[i], img[i]) for i in range(2)]
    assert np.mean(per_image) == pytest.approx(ref[0])


def test_bad_shapes(img):
    with pytest.raises(RcaiError, match="differ in shape"):
        psnr(img, img[:1])
    with pytest.raises(RcaiError):
        ssim(np.zeros((3, 4, 4)), np.zeros((3, 4, 4)))
    with pytest.raises(RcaiError):
        psnr(np.zeros((4, 4)), np.zeros((4, 4)))
