"""On-the-fly augmentation of one 2.5D sample: image [C, S, S] float32 (normalised, >= 0), mask [S, S].

What a scanner of another hospital does to an image, drawn anew for every sample so that no two
epochs see the same picture: pose (flip, in-plane rotation and scale), resolution (blur,
anisotropic downsampling), k-space artefacts (motion, ghosting, spikes), bias field, contrast
(gamma, a random monotonic intensity curve), global scale and Rician noise. The per-tissue
appearance itself is randomised when the phantom is rendered (``phantoms.brain.appearance``);
this adds the acquisition on top, per slice.

The transforms are TorchIO's (MONAI's for the intensity curve): a sample is a TorchIO subject whose
third spatial axis holds the context slices, so in-plane operations move all channels and the mask
together. Every draw comes from the ``numpy.random.Generator`` the dataset passes (seeded per
seed, epoch and sample), through a forked torch RNG, so a run is reproducible whatever the number
of DataLoader workers and the trainer's own random state is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchio as tio
from monai.transforms import RandHistogramShift

Sample = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges; intensities are in normalised units (tissue median = 1)."""

    flip: float = 0.5
    affine: float = 0.7
    max_rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.85, 1.2)
    blur: float = 0.25
    anisotropy: float = 0.15
    motion: float = 0.1
    ghosting: float = 0.1
    spike: float = 0.05
    bias: float = 0.3
    gamma: float = 0.4
    curve: float = 0.25  # random monotonic intensity mapping (MONAI RandHistogramShift)
    intensity_scale: tuple[float, float] = (0.75, 1.35)
    noise: float = 0.5
    max_noise: float = 0.08  # Rician sigma x tissue median
    clip_max: float = 4.0  # the preprocessing's clip: augmented images stay in its range


class RicianNoise(tio.IntensityTransform):
    """Magnitude of the image plus complex Gaussian noise of a random std (MR's noise)."""

    def __init__(self, max_std: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_std = max_std

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        std = float(torch.rand(1)) * self.max_std
        for image in self.get_images(subject):
            x = image.data
            image.set_data(torch.sqrt((x + std * torch.randn_like(x)) ** 2 + (std * torch.randn_like(x)) ** 2))
        return subject


class IntensityScale(tio.IntensityTransform):
    """A global factor: the tissue-median normalisation lands differently on skull-stripped and whole-head scans."""

    def __init__(self, bounds: tuple[float, float], **kwargs) -> None:
        super().__init__(**kwargs)
        self.bounds = bounds

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        lo, hi = np.log(self.bounds[0]), np.log(self.bounds[1])
        factor = float(np.exp(lo + float(torch.rand(1)) * (hi - lo)))
        for image in self.get_images(subject):
            image.set_data(image.data * factor)
        return subject


class InPlaneMotion(tio.RandomMotion):
    """TorchIO's motion ghosting with rotation about the slice axis and translation in the plane only.

    The sample is a slab as thick as the context slices: a rotation out of the plane swings it out of
    its own field of view and leaves an almost constant image, with the mask unchanged.
    """

    def get_params(self, *args, is_2d: bool = False, **kwargs):
        return super().get_params(*args, is_2d=True, **kwargs)


class ScannerAugmentation:
    """``augment(image, mask, rng) -> (image, mask)`` for ``SliceDataset``."""

    def __init__(self, cfg: AugmentConfig = AugmentConfig()) -> None:
        self.cfg = cfg
        in_plane = (0, 1)
        self.transform = tio.Compose([
            tio.RandomFlip(axes=(1,), flip_probability=1.0, p=cfg.flip),  # left-right: the flip brain anatomy tolerates
            tio.RandomAffine(scales=(*cfg.scale, *cfg.scale, 1.0, 1.0), degrees=(0, 0, 0, 0, -cfg.max_rotation_deg, cfg.max_rotation_deg),
                             translation=(-4, 4, -4, 4, 0, 0), isotropic=False, p=cfg.affine),
            tio.RandomBlur(std=(0.0, 1.2, 0.0, 1.2, 0.0, 0.0), p=cfg.blur),
            tio.RandomAnisotropy(axes=in_plane, downsampling=(1.5, 3.0), p=cfg.anisotropy),
            InPlaneMotion(degrees=4.0, translation=4.0, num_transforms=2, p=cfg.motion),
            tio.RandomGhosting(num_ghosts=(2, 6), axes=in_plane, intensity=(0.2, 0.6), p=cfg.ghosting),
            tio.RandomSpike(num_spikes=1, intensity=(0.1, 0.4), p=cfg.spike),
            tio.RandomBiasField(coefficients=0.35, order=3, p=cfg.bias),
            tio.RandomGamma(log_gamma=(-0.35, 0.35), p=cfg.gamma),
            IntensityScale(cfg.intensity_scale),
            RicianNoise(cfg.max_noise, p=cfg.noise),
        ])
        self.curve = RandHistogramShift(num_control_points=(4, 8), prob=cfg.curve)

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Sample:
        seed = int(rng.integers(2**31 - 1))
        channels = image.shape[0]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            subject = tio.Subject(
                image=tio.ScalarImage(tensor=torch.from_numpy(np.ascontiguousarray(image.transpose(1, 2, 0)))[None]),
                mask=tio.LabelMap(tensor=torch.from_numpy(np.array(mask, dtype=np.uint8))[None, :, :, None].repeat(1, 1, 1, channels)),
            )
            out = self.transform(subject)
            x = out["image"].data[0].permute(2, 0, 1)
            if float(x.max() - x.min()) > 1e-3:  # MONAI's curve divides by the range: NaN on a flat image
                self.curve.set_random_state(seed)
                x = torch.as_tensor(self.curve(x))
        x = torch.clamp(x, 0.0, self.cfg.clip_max)
        return x.numpy().astype(np.float32, copy=False), out["mask"].data[0, :, :, channels // 2].numpy().astype(np.uint8)


def default_augmentation(clip_max: float = 4.0) -> ScannerAugmentation:
    """The trainer's default: pose, resolution, artefacts, bias, contrast, scale and noise."""
    return ScannerAugmentation(AugmentConfig(clip_max=clip_max))
