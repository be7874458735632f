"""Augmentations: image and mask move together, intensity changes stay in range, seeds reproduce, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from training.data.augmentation import (
    Compose,
    RandAffine,
    RandBiasField,
    RandFlip,
    RandGamma,
    RandNoise,
    default_augmentation,
)


def sample(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Three channels of a bright off-centre square on tissue; the mask is the square."""
    mask = np.zeros((size, size), np.uint8)
    mask[10:24, 30:50] = 1
    image = np.where(mask, 2.0, 1.0).astype(np.float32)[None].repeat(3, axis=0)
    return image, mask


def test_flip_moves_image_and_mask_together() -> None:
    image, mask = sample()
    out, out_mask = RandFlip(p=1.0)(image, mask, np.random.default_rng(0))
    assert np.array_equal(out_mask, mask[:, ::-1]) and np.array_equal(out, image[:, :, ::-1])
    same, same_mask = RandFlip(p=0.0)(image, mask, np.random.default_rng(0))
    assert same is image and same_mask is mask


def test_affine_keeps_alignment() -> None:
    image, mask = sample()
    identity = RandAffine(p=1.0, max_rotation_deg=0.0, scale_range=(1.0, 1.0))
    out, out_mask = identity(image, mask, np.random.default_rng(0))
    assert np.allclose(out, image) and np.array_equal(out_mask, mask)
    for seed in range(5):
        out, out_mask = RandAffine(p=1.0, max_rotation_deg=15.0)(image, mask, np.random.default_rng(seed))
        assert out.shape == image.shape and out.dtype == np.float32 and out_mask.dtype == np.uint8
        assert set(np.unique(out_mask)) <= {0, 1}
        assert 0.75 < out_mask.sum() / mask.sum() < 1.3  # scaling within 0.9-1.1 per axis
        assert out[1][out_mask == 1].mean() > 1.8  # the mask still covers the bright square


def test_gamma_keeps_range_and_order() -> None:
    values = np.linspace(0, 4, 50, dtype=np.float32)[None, None].repeat(3, axis=0)
    out, _ = RandGamma(p=1.0, top=4.0)(values, np.zeros((1, 50), np.uint8), np.random.default_rng(3))
    assert out.min() == pytest.approx(0.0) and out.max() == pytest.approx(4.0)
    assert np.all(np.diff(out[0, 0]) > 0)


def test_bias_field_is_smooth_and_bounded() -> None:
    image, mask = sample()
    out, out_mask = RandBiasField(p=1.0, strength=0.3)(image, mask, np.random.default_rng(1))
    ratio = out / image
    assert ratio.min() >= 1 / 1.3 - 1e-5 and ratio.max() <= 1.3 + 1e-5
    assert np.abs(np.diff(ratio[0], axis=1)).max() < 0.05  # smooth: small change between neighbours
    assert out_mask is mask


def test_noise_leaves_mask_and_stays_non_negative() -> None:
    image, mask = sample()
    out, out_mask = RandNoise(p=1.0, max_std=0.5)(np.zeros_like(image), mask, np.random.default_rng(2))
    assert out.min() >= 0 and out.max() > 0 and out_mask is mask


def test_same_seed_same_result_and_throughput() -> None:
    image, mask = sample(160)
    augment = default_augmentation()
    a = augment(image, mask, np.random.default_rng([7, 0, 3]))
    b = augment(image, mask, np.random.default_rng([7, 0, 3]))
    c = augment(image, mask, np.random.default_rng([7, 0, 4]))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    n, start = 40, time.perf_counter()
    for i in range(n):
        augment(image, mask, np.random.default_rng(i))
    rate = n / (time.perf_counter() - start)
    print(f"augmentation of [3,160,160] slices: {rate:.0f} slices/s on one core")
    assert rate > 20  # far above what the network trains at on a CPU


def test_compose_applies_in_order() -> None:
    image, mask = sample()
    flip_twice = Compose([RandFlip(p=1.0), RandFlip(p=1.0)])
    out, out_mask = flip_twice(image, mask, np.random.default_rng(0))
    assert np.array_equal(out, image) and np.array_equal(out_mask, mask)
