"""The scanner every phantom goes through: a site's ranges, one acquisition grid drawn from them,
resampling with the slice profile, bias field, noise and storage type (PHANTOM.md "Scanner and
site variation"). A phantom renders its patient on a 1 mm grid; this module scans it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy.spatial.transform import Rotation



@dataclass(frozen=True, kw_only=True)
class SiteSpec:
    """Scanner ranges of one site (PHANTOM.md "Scanner and site variation")."""

    in_plane_mm: tuple[float, float]
    thickness_mm: tuple[float, float]
    matrices: tuple[int, ...]
    orientations: tuple[str, ...]
    max_oblique_deg: float = 0.0
    float_probability: float = 0.0  # chance of a float32 file instead of int16
    wm_value: tuple[float, float] = (1.0, 1.0)  # reference tissue's intensity in file units (log-uniform)
    bias: tuple[float, float] = (1.0, 1.0)  # MR: multiplicative field within these bounds
    noise: tuple[float, float]  # MR: Rician sigma x reference tissue; CT: HU standard deviation


# Direction cosines (columns: row, column, slice axes in LPS) of the standard acquisitions.
BASE_DIRECTIONS = {
    "axial": np.eye(3),
    "sagittal": np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
    "coronal": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),
}


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


def draw_acquisition(rng: np.random.Generator, spec: SiteSpec, head_points: np.ndarray, max_matrix: int | None,
                     thickness_mm: tuple[float, float] | None = None) -> Acquisition:
    """Scanner draw: orientation first, then a matrix and spacing whose field of view holds the head
    (or body part: the other phantoms pass their own SiteSpec and points).

    ``thickness_mm`` replaces the site's slice-thickness range (domain randomisation of training data).
    """
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


def resample_profile(source: sitk.Image, acq: Acquisition, transform: sitk.Transform, n_sub: int,
                     start: tuple[int, int, int] = (0, 0, 0), size: tuple[int, int, int] | None = None,
                     outside: float = 0.0) -> np.ndarray:
    """Linear resampling onto sub-slices, averaged to the slice profile -> [slice, row, col]."""
    ref = acq.reference(n_sub, start, size)
    out = sitk.GetArrayFromImage(sitk.Resample(source, ref, transform, sitk.sitkLinear, outside, sitk.sitkFloat32))
    return out.reshape(-1, n_sub, *out.shape[1:]).mean(axis=1)


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise of std ``sigma`` (MR's noise)."""
    s = np.float32(sigma)
    n1 = rng.standard_normal(signal.shape, dtype=np.float32)
    n2 = rng.standard_normal(signal.shape, dtype=np.float32)
    return np.sqrt((signal + s * n1) ** 2 + (s * n2) ** 2)


def stored(signal: np.ndarray, acq: Acquisition, top: int = 32767) -> np.ndarray:
    """MR signal (x reference tissue) in the file's units and type: int16 clipped to [0, top], or float32."""
    signal = signal * np.float32(acq.wm_value)
    return np.clip(np.rint(signal), 0, top).astype(np.int16) if acq.dtype == "int16" else signal


def on_grid(array: np.ndarray, acq: Acquisition) -> sitk.Image:
    """An [slice, row, col] array as a SimpleITK image with the acquisition's geometry."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(acq.spacing)
    image.SetOrigin(tuple(float(v) for v in acq.origin))
    image.SetDirection(tuple(float(v) for v in acq.direction.ravel()))
    return image
