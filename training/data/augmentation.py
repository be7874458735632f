"""Small composable augmentations on one 2.5D sample: image [C, S, S] float32 (normalised, >= 0),
mask [S, S] uint8.

Each transform takes the sample and a ``numpy.random.Generator`` and returns a new sample; the
dataset seeds that generator per (seed, epoch, sample), so a run is reproducible whatever the
number of DataLoader workers. Geometric transforms move image and mask together; intensity
transforms touch only the image. They mimic what PHANTOM.md varies between scanners (bias field,
noise, contrast) plus small pose changes; all are cheap enough for a 2-core CPU to keep pace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
from scipy import ndimage

Sample = tuple[np.ndarray, np.ndarray]


class Transform(Protocol):
    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Sample: ...


@dataclass(frozen=True)
class Compose:
    transforms: Sequence[Transform]

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Sample:
        for t in self.transforms:
            image, mask = t(image, mask, rng)
        return image, mask


@dataclass(frozen=True)
class RandFlip:
    """Mirror along an in-plane axis (-1: left-right, the flip brain anatomy tolerates)."""

    p: float = 0.5
    axis: int = -1

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return image, mask
        return np.flip(image, self.axis).copy(), np.flip(mask, self.axis).copy()


@dataclass(frozen=True)
class RandAffine:
    """Small in-plane rotation and isotropic scaling about the centre (bilinear image, nearest mask)."""

    p: float = 0.5
    max_rotation_deg: float = 10.0
    scale_range: tuple[float, float] = (0.9, 1.1)

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return image, mask
        angle = np.deg2rad(rng.uniform(-self.max_rotation_deg, self.max_rotation_deg))
        scale = rng.uniform(*self.scale_range)
        # affine_transform maps output coordinates to input ones: the inverse rotation / scaling.
        c, s = np.cos(angle) / scale, np.sin(angle) / scale
        matrix = np.array([[c, -s], [s, c]])
        centre = (np.array(mask.shape) - 1) / 2
        offset = centre - matrix @ centre
        warped = np.stack(
            [ndimage.affine_transform(ch, matrix, offset, order=1, mode="constant", cval=0.0) for ch in image]
        )
        warped_mask = ndimage.affine_transform(mask, matrix, offset, order=0, mode="constant", cval=0)
        return warped.astype(np.float32, copy=False), warped_mask


@dataclass(frozen=True)
class RandGamma:
    """Contrast change x -> top * (x / top) ** gamma on the normalised intensities (top = clip max)."""

    p: float = 0.5
    gamma_range: tuple[float, float] = (0.7, 1.5)
    top: float = 4.0

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return image, mask
        gamma = np.exp(rng.uniform(np.log(self.gamma_range[0]), np.log(self.gamma_range[1])))
        x = np.clip(image, 0, None) / self.top
        return (self.top * x**gamma).astype(np.float32), mask


@dataclass(frozen=True)
class RandBiasField:
    """Smooth multiplicative field exp(quadratic polynomial), within [1 - strength, 1 + strength]-ish.

    Normalisation divides by the tissue median of the whole volume, so a scanner's bias field
    survives it; the network should not depend on it.
    """

    p: float = 0.5
    strength: float = 0.3

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return image, mask
        h, w = image.shape[-2:]
        y, x = np.meshgrid(np.linspace(-1, 1, h, dtype=np.float32), np.linspace(-1, 1, w, dtype=np.float32), indexing="ij")
        terms = np.stack([x, y, x * y, x * x, y * y])
        coeffs = rng.uniform(-1, 1, size=5).astype(np.float32)
        field = np.tensordot(coeffs, terms, axes=1)
        field *= np.log1p(self.strength) / max(float(np.abs(field).max()), 1e-6)
        return (image * np.exp(field)).astype(np.float32), mask


@dataclass(frozen=True)
class RandNoise:
    """Additive Gaussian noise of a random std (normalised units: white matter is about 1)."""

    p: float = 0.5
    max_std: float = 0.05

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return image, mask
        std = rng.uniform(0, self.max_std)
        noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(std)
        return np.clip(image + noise, 0, None), mask


def default_augmentation(clip_max: float = 4.0) -> Compose:
    """The trainer's default: flip, pose, contrast, bias field, noise."""
    return Compose([RandFlip(), RandAffine(), RandGamma(top=clip_max), RandBiasField(), RandNoise()])
