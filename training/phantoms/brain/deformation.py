"""The patient: a random affine (scale, rotation about the brain centre) and a smooth elastic field
that deform MNI space, so no two phantom patients share a skull.

Physical space is the deformed MNI space in LPS. ITK resampling needs the map physical -> MNI,
so the deformation is stored that way: G(p) = A(p) + D(A(p)) (affine A, smooth displacement D).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.transform import Rotation

from .anatomy import Anatomy


@dataclass
class Deformation:
    """The patient: random affine (scale, rotation about the brain centre) plus elastic field."""

    affine: sitk.AffineTransform  # physical -> MNI (linear part only)
    displacement: sitk.DisplacementFieldTransform  # MNI -> MNI
    forward_linear: np.ndarray  # MNI -> physical linear part
    centre: np.ndarray

    @property
    def transform(self) -> sitk.CompositeTransform:
        return sitk.CompositeTransform([self.displacement, self.affine])  # applied right to left

    def approx_to_physical(self, mni: np.ndarray) -> np.ndarray:
        return self.centre + (np.asarray(mni) - self.centre) @ self.forward_linear.T

    def to_physical(self, mni: np.ndarray) -> np.ndarray:
        """Inverse of G by fixed-point iteration (D is smooth and small, so it contracts)."""
        p = self.approx_to_physical(mni)
        for _ in range(8):
            a = np.array(self.affine.TransformPoint(tuple(p)))
            d = np.array(self.displacement.TransformPoint(tuple(a))) - a
            p = self.approx_to_physical(np.asarray(mni) - d)
        return p

    def jacobian_to_physical(self, physical: np.ndarray) -> np.ndarray:
        """d(physical)/d(MNI) at a physical point, so lesions get their true physical size."""
        t = self.transform
        j = np.stack([(np.array(t.TransformPoint(tuple(physical + e))) - np.array(t.TransformPoint(tuple(physical - e)))) / 2.0
                      for e in np.eye(3)], axis=1)
        return np.linalg.inv(j)


def draw_deformation(anat: Anatomy, rng: np.random.Generator, scale: tuple[float, float], max_rotation_deg: float,
                     elastic_mm: float, elastic_smooth_mm: float) -> Deformation:
    centre = anat.index_to_lps(np.argwhere(anat.brain).mean(0))
    axis = rng.standard_normal(3)
    rot = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(rng.uniform(0.0, max_rotation_deg))).as_matrix()
    forward = np.diag(rng.uniform(*scale, size=3)) @ rot
    affine = sitk.AffineTransform(3)
    affine.SetMatrix(tuple(np.linalg.inv(forward).ravel()))
    affine.SetCenter(tuple(centre))

    step = 6.0
    shape = tuple(int(np.ceil(s / step)) + 1 for s in anat.shape)
    field = np.stack([ndimage.gaussian_filter(rng.standard_normal(shape), elastic_smooth_mm / step) for _ in range(3)], -1)
    field *= elastic_mm / max(float(np.sqrt((field**2).sum(-1).mean())), 1e-9)
    taper = np.ones(shape)
    for ax, n in enumerate(shape):  # zero at the border: no jump where the field ends
        ramp = np.clip(np.minimum(np.arange(n), n - 1 - np.arange(n)) / 2.0, 0.0, 1.0)
        taper *= ramp.reshape([-1 if a == ax else 1 for a in range(3)])
    image = sitk.GetImageFromArray((field * taper[..., None]).astype(np.float64), isVector=True)
    image.SetOrigin(tuple(anat.origin_lps))
    image.SetSpacing((step, step, step))
    image.SetDirection((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    return Deformation(affine, sitk.DisplacementFieldTransform(image), forward, centre)
