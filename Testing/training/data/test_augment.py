"""On-the-fly augmentation: image and mask move together, intensities stay in range, seeds reproduce,
the trainer's random state is left alone."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from training.data.augmentation import AugmentConfig, ScannerAugmentation, default_augmentation

OFF = AugmentConfig(flip=0, affine=0, blur=0, anisotropy=0, motion=0, ghosting=0, spike=0, bias=0, gamma=0, curve=0,
                    intensity_scale=(1.0, 1.0), noise=0)


def sample(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Three channels of a bright off-centre rectangle on tissue; the mask is the rectangle."""
    mask = np.zeros((size, size), np.uint8)
    mask[10:24, 30:50] = 1
    image = np.where(mask, 2.0, 1.0).astype(np.float32)[None].repeat(3, axis=0)
    return image, mask


def test_everything_off_is_the_identity() -> None:
    image, mask = sample()
    out, out_mask = ScannerAugmentation(OFF)(image, mask, np.random.default_rng(0))
    assert np.allclose(out, image) and np.array_equal(out_mask, mask)


def test_flip_is_left_right_and_moves_the_mask() -> None:
    image, mask = sample()
    out, out_mask = ScannerAugmentation(replace(OFF, flip=1.0))(image, mask, np.random.default_rng(0))
    assert np.array_equal(out_mask, mask[:, ::-1]) and np.allclose(out, image[:, :, ::-1])


def test_pose_keeps_image_and_mask_aligned() -> None:
    image, mask = sample()
    pose = ScannerAugmentation(replace(OFF, affine=1.0, max_rotation_deg=20.0))
    moved = 0
    for seed in range(6):
        out, out_mask = pose(image, mask, np.random.default_rng(seed))
        assert out.shape == image.shape and out.dtype == np.float32 and out_mask.dtype == np.uint8
        assert set(np.unique(out_mask)) <= {0, 1} and 0.6 < out_mask.sum() / mask.sum() < 1.6
        assert out[1][out_mask == 1].mean() > 1.7 and out[1][out_mask == 0].mean() < 1.1  # the mask still covers the bright part
        moved += not np.array_equal(out_mask, mask)
    assert moved >= 5


def test_full_augmentation_stays_in_range_and_reproduces() -> None:
    image, mask = sample(96)
    augment = default_augmentation(clip_max=4.0)
    outputs = [augment(image, mask, np.random.default_rng([7, i])) for i in range(12)]
    for out, out_mask in outputs:
        assert out.shape == image.shape and np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 4.0
        assert out_mask.shape == mask.shape
    again = augment(image, mask, np.random.default_rng([7, 3]))
    assert np.array_equal(again[0], outputs[3][0]) and np.array_equal(again[1], outputs[3][1])
    assert len({out.tobytes() for out, _ in outputs}) == len(outputs)  # no two samples alike


def test_the_trainers_torch_random_state_is_untouched() -> None:
    image, mask = sample()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    default_augmentation()(image, mask, np.random.default_rng(0))
    assert torch.equal(torch.rand(3), expected)


def test_noise_is_rician_and_grows_with_its_draw() -> None:
    flat = np.ones((3, 64, 64), np.float32)
    mask = np.zeros((64, 64), np.uint8)
    noisy = ScannerAugmentation(replace(OFF, noise=1.0, max_noise=0.2))
    stds = [noisy(flat, mask, np.random.default_rng(s))[0].std() for s in range(8)]
    assert max(stds) > 0.05 and min(stds) >= 0.0
    dark = ScannerAugmentation(replace(OFF, noise=1.0, max_noise=0.2))(np.zeros_like(flat), mask, np.random.default_rng(1))[0]
    assert dark.min() >= 0.0  # magnitude noise never goes negative (Rician, not Gaussian)


def test_motion_stays_in_the_slice_plane() -> None:
    """An out-of-plane rotation swings the three-slice slab out of its own field of view."""
    image, mask = sample(96)
    moving = ScannerAugmentation(replace(OFF, motion=1.0))
    for seed in range(12):
        out, _ = moving(image, mask, np.random.default_rng(seed))
        assert out[1][mask == 1].mean() > 1.5 and out[1][mask == 0].mean() < 1.3, seed


def test_intensity_curve_on_an_almost_flat_image_stays_finite() -> None:
    flat = np.full((3, 64, 64), 0.00325, np.float32) + np.linspace(0, 5e-10, 64, dtype=np.float32)
    out, _ = ScannerAugmentation(replace(OFF, curve=1.0))(flat, np.zeros((64, 64), np.uint8), np.random.default_rng(0))
    assert np.isfinite(out).all()
