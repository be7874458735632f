"""Per-case geometry: the patient's deformation of MNI space and the scanner's acquisition grid.

Physical space is the deformed MNI space in LPS. ITK resampling needs the map physical -> MNI,
so the deformation is stored that way: G(p) = A(p) + D(A(p)) (affine A, smooth displacement D).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.transform import Rotation

from .brain.anatomy import Anatomy


@dataclass(frozen=True)
class SiteSpec:
    """Scanner ranges of one site (PHANTOM.md "Scanner and site variation")."""

    in_plane_mm: tuple[float, float]
    thickness_mm: tuple[float, float]
    matrices: tuple[int, ...]
    orientations: tuple[str, ...]
    max_oblique_deg: float
    float_probability: float  # chance of a float32 file instead of int16
    wm_value: tuple[float, float]  # WM intensity in file units (log-uniform)
    bias: tuple[float, float]
    noise: tuple[float, float]  # Rician sigma x WM


SITES: dict[str, SiteSpec] = {
    "internal": SiteSpec((0.9, 1.0), (1.0, 1.0), (256,), ("axial",), 0.0, 0.0, (900.0, 1300.0), (0.9, 1.1), (0.01, 0.02)),
    "external": SiteSpec((0.4, 1.0), (0.9, 6.5), (192, 224, 256, 320, 384, 448, 512),
                         ("axial", "axial", "sagittal", "coronal"), 15.0, 0.5, (100.0, 8000.0), (0.7, 1.3), (0.01, 0.06)),
}

# Direction cosines (columns: row, column, slice axes in LPS) of the standard acquisitions.
BASE_DIRECTIONS = {
    "axial": np.eye(3),
    "sagittal": np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
    "coronal": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),
}


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


@dataclass(frozen=True)
class Acquisition:
    """One scan's grid and signal chain; `direction` columns are the row, column and slice axes."""

    orientation: str
    oblique_deg: float
    direction: np.ndarray
    in_plane_mm: float
    thickness_mm: float
    matrix: int
    n_slices: int
    origin: np.ndarray
    dtype: str
    wm_value: float
    bias: float  # amplitude: field within 1 +- bias
    noise: float

    @property
    def spacing(self) -> tuple[float, float, float]:
        return (self.in_plane_mm, self.in_plane_mm, self.thickness_mm)

    def reference(self, n_sub: int, start: tuple[int, int, int] = (0, 0, 0), size: tuple[int, int, int] | None = None) -> sitk.Image:
        """The grid (or a sub-box of whole slices) with each slice split into n_sub sub-slices,
        whose mean is the slice's partial-volume signal (box slice profile)."""
        size = size or (self.matrix, self.matrix, self.n_slices)
        t = self.thickness_mm
        offset = np.array([start[0] * self.in_plane_mm, start[1] * self.in_plane_mm, start[2] * t - t / 2 + t / (2 * n_sub)])
        ref = sitk.Image([int(size[0]), int(size[1]), int(size[2] * n_sub)], sitk.sitkFloat32)
        ref.SetSpacing((self.in_plane_mm, self.in_plane_mm, t / n_sub))
        ref.SetDirection(tuple(self.direction.ravel()))
        ref.SetOrigin(tuple(self.origin + self.direction @ offset))
        return ref

    def physical_to_index(self, p: np.ndarray) -> np.ndarray:
        return (self.direction.T @ (np.asarray(p) - self.origin)) / np.array(self.spacing)


def draw_acquisition(rng: np.random.Generator, site: str | SiteSpec, head_points: np.ndarray, max_matrix: int | None,
                     thickness_mm: tuple[float, float] | None = None) -> Acquisition:
    """Scanner draw: orientation first, then a matrix and spacing whose field of view holds the head
    (or body part: the other phantoms pass their own SiteSpec and points).

    ``thickness_mm`` replaces the site's slice-thickness range (domain randomisation of training data).
    """
    spec = SITES[site] if isinstance(site, str) else site
    orientation = spec.orientations[int(rng.integers(len(spec.orientations)))]
    direction = BASE_DIRECTIONS[orientation]
    oblique = float(rng.uniform(0.0, spec.max_oblique_deg)) if spec.max_oblique_deg > 0 and rng.random() < 0.5 else 0.0
    if oblique:
        axis = rng.standard_normal(3)
        direction = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(oblique)).as_matrix() @ direction
    proj = head_points @ direction
    lo, hi = proj.min(0) - 4.0, proj.max(0) + 4.0
    fov = float(max(hi[0] - lo[0], hi[1] - lo[1]))
    sp_lo, sp_hi = spec.in_plane_mm
    matrices = [m for m in spec.matrices if m * sp_hi >= fov] or [max(spec.matrices)]
    matrix = int(matrices[int(rng.integers(len(matrices)))])
    in_plane = float(rng.uniform(min(max(sp_lo, fov / matrix), sp_hi), sp_hi))
    if max_matrix is not None and matrix > max_matrix:  # cheap test grids only: spacing leaves the site range
        in_plane *= matrix / max_matrix
        matrix = max_matrix
    thickness = float(rng.uniform(*(thickness_mm or spec.thickness_mm)))
    n_slices = int(np.ceil((hi[2] - lo[2]) / thickness))
    centre = direction @ ((lo + hi) / 2.0) + rng.uniform(-3.0, 3.0, 3)
    half = np.array([(matrix - 1) / 2 * in_plane, (matrix - 1) / 2 * in_plane, (n_slices - 1) / 2 * thickness])
    use_float = rng.random() < spec.float_probability
    wm_lo, wm_hi = (0.01, 5000.0) if use_float else spec.wm_value
    return Acquisition(
        orientation=orientation, oblique_deg=oblique, direction=direction, in_plane_mm=in_plane, thickness_mm=thickness,
        matrix=matrix, n_slices=n_slices, origin=centre - direction @ half, dtype="float32" if use_float else "int16",
        wm_value=float(np.exp(rng.uniform(np.log(wm_lo), np.log(wm_hi)))),
        bias=float(rng.uniform(0.5, 1.0) * (spec.bias[1] - 1.0)), noise=float(rng.uniform(*spec.noise)),
    )


def bias_field(shape: tuple[int, ...], rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """Smooth multiplicative field (quadratic polynomial) within 1 +- amplitude."""
    z, y, x = (np.linspace(-1.0, 1.0, n, dtype=np.float32).reshape([-1 if a == i else 1 for a in range(3)]) for i, n in enumerate(shape))
    c = rng.standard_normal(9).astype(np.float32)
    raw = c[0] * x + c[1] * y + c[2] * z + c[3] * x * x + c[4] * y * y + c[5] * z * z + c[6] * x * y + c[7] * y * z + c[8] * x * z
    raw -= raw.mean()
    return 1.0 + amplitude * raw / max(float(np.abs(raw).max()), 1e-6)
