"""What the liver-CT and breast-MR phantoms share: the label-dependent distributions (each with its
exact density, for the Bayes limits), the 1 mm render grid, vessels, irregular lesions, and the
scanner chain (resampling with the slice profile, noise, storage type).

No pip package ships an abdominal CT or a breast MR atlas that loads offline (the brain phantom's
MNI152 comes with nilearn), so these phantoms build their anatomy from smooth random shapes; the
principles of docs/PHANTOM.md hold otherwise: label first, then label-dependent lesion
biology with an exact likelihood; enhancing vessels as false-positive bait; site variation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.transform import Rotation

from .tubes import stamp_tubes, tube_walks
from .scanner import SiteSpec, bias_field, draw_acquisition, on_grid, resample_profile, rician, stored

# --------------------------------------------------------------------------- render grid


@dataclass(frozen=True)
class RenderGrid:
    """A 1 mm grid in LPS with identity direction: array [z, y, x] <-> LPS (x, y, z)."""

    origin: np.ndarray  # LPS of voxel [0, 0, 0]
    shape: tuple[int, int, int]

    @classmethod
    def around(cls, lo: np.ndarray, hi: np.ndarray) -> "RenderGrid":
        lo = np.floor(np.asarray(lo, float))
        size = np.ceil(np.asarray(hi, float) - lo).astype(int) + 1
        return cls(lo, (int(size[2]), int(size[1]), int(size[0])))

    def coordinates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable LPS coordinates (x, y, z) in mm."""
        z, y, x = (np.arange(n, dtype=np.float32) + np.float32(o) for n, o in zip(self.shape, self.origin[::-1]))
        return x[None, None, :], y[None, :, None], z[:, None, None]

    def index_to_lps(self, zyx: np.ndarray) -> np.ndarray:
        return self.origin + np.asarray(zyx, float)[..., ::-1]

    def to_sitk(self, array: np.ndarray) -> sitk.Image:
        image = sitk.GetImageFromArray(array.astype(np.float32, copy=False))
        image.SetOrigin(tuple(float(v) for v in self.origin))
        return image


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: float) -> np.ndarray:
    """Zero-mean, unit-std smooth random field (computed coarse and zoomed, for speed)."""
    step = max(1, int(sigma_vox // 2))
    coarse = ndimage.gaussian_filter(rng.standard_normal([int(np.ceil(n / step)) + 1 for n in shape]), sigma_vox / step)
    field = ndimage.zoom(coarse, step, order=1)[tuple(slice(0, n) for n in shape)]
    return ((field - field.mean()) / max(float(field.std()), 1e-9)).astype(np.float32)


def inside_depth(mask: np.ndarray) -> np.ndarray:
    """Distance (mm, 1 mm grid) from each voxel of ``mask`` to its outside; the EDT runs on the mask's box only."""
    depth = np.zeros(mask.shape, np.float32)
    found = ndimage.find_objects(mask.astype(np.uint8))
    if found and found[0] is not None:
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in found[0])
        depth[box] = ndimage.distance_transform_edt(mask[box])
    return depth


def random_vessels(rng: np.random.Generator, allowed: np.ndarray, n: int, radius_mm: tuple[float, float],
                   level: tuple[float, float], length_mm: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random walks inside ``allowed``: (weight, weight x level) maps of thin bright tubes."""
    seeds = np.flatnonzero(allowed)
    seeds = seeds[rng.integers(0, len(seeds), n)] if len(seeds) else seeds
    walks = tube_walks(rng, allowed, seeds, radius_mm, level, (2 * length_mm[0], 2 * length_mm[1]), 0.15)
    return stamp_tubes(allowed.shape, *walks)


def ellipsoid_sdf(grid: RenderGrid, centre: np.ndarray, axes: np.ndarray, rotation: np.ndarray,
                  box: tuple[slice, ...] | None = None) -> np.ndarray:
    """Approximate signed distance (mm) to an ellipsoid: radial distance scaled by the local radius.

    On ``box`` only when given; otherwise on the whole grid, computed inside the ellipsoid's
    bounding box and 1e3 (far outside) elsewhere.
    """
    if box is None:
        full = np.full(grid.shape, 1e3, np.float32)
        idx = (np.asarray(centre, float) - grid.origin)[::-1]
        reach = float(np.max(axes)) + 3.0
        inner = tuple(slice(int(max(0, np.floor(i - reach))), int(min(n, np.ceil(i + reach) + 1))) for i, n in zip(idx, grid.shape))
        if all(s.stop > s.start for s in inner):
            full[inner] = ellipsoid_sdf(grid, centre, axes, rotation, inner)
        return full
    x, y, z = grid.coordinates()
    d = (x[..., box[2]] - np.float32(centre[0]), y[:, box[1], :] - np.float32(centre[1]), z[box[0]] - np.float32(centre[2]))
    r2 = sum(((d[0] * np.float32(rotation[0, k]) + d[1] * np.float32(rotation[1, k]) + d[2] * np.float32(rotation[2, k]))
              / np.float32(axes[k])) ** 2 for k in range(3))
    r = np.sqrt(r2)
    return ((r - 1.0) * np.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2) / np.maximum(r, 1e-6)).astype(np.float32)


# --------------------------------------------------------------------------- lesions


@dataclass
class LesionShape:
    """The shape of one irregular ellipsoidal lesion on its box of the render grid (its appearance is the phantom's)."""

    centre: np.ndarray  # LPS mm
    diameter_mm: float
    box: tuple[slice, ...]
    sd: np.ndarray  # signed distance to the surface (mm), negative inside
    texture: np.ndarray  # unit-std smooth noise on the box
    truth: dict = field(default_factory=dict)

    @classmethod
    def build(cls, grid: RenderGrid, rng: np.random.Generator, centre: np.ndarray, diameter_mm: float,
              irregularity: float, margin_mm: float) -> "LesionShape":
        radius = diameter_mm / 2.0
        axes = radius * np.array([1.0, *rng.uniform(0.75, 1.0, 2)])
        reach = radius * (1.0 + irregularity) + margin_mm + 2.0
        idx = (centre - grid.origin)[::-1]
        lo = np.maximum(np.floor(idx - reach).astype(int), 0)
        hi = np.minimum(np.ceil(idx + reach).astype(int) + 1, grid.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        rot = Rotation.from_quat(rng.standard_normal(4)).as_matrix()
        sd = ellipsoid_sdf(grid, centre, axes, rot, box)
        # Surface perturbation: low-frequency lobes plus ``irregularity`` of finer ones (spiculation).
        bumps = smooth_noise(rng, sd.shape, max(radius / 3.0, 1.5))
        fine = smooth_noise(rng, sd.shape, 1.2)
        sd = sd - radius * (0.08 * bumps + irregularity * np.clip(fine, 0.0, None))
        return cls(centre, diameter_mm, box, sd.astype(np.float32), smooth_noise(rng, sd.shape, 1.0))

    @property
    def occupancy(self) -> np.ndarray:
        return np.clip(0.5 - self.sd, 0.0, 1.0)


def place_centres(rng: np.random.Generator, depth: np.ndarray, grid: RenderGrid, diameters: list[float],
                  min_depth: float = 0.6) -> list[np.ndarray]:
    """Non-overlapping centres, largest first, at least ``min_depth`` x radius inside the organ."""
    placed: list[tuple[np.ndarray, float]] = []
    out: dict[int, np.ndarray] = {}
    for i in sorted(range(len(diameters)), key=lambda k: -diameters[k]):
        r = diameters[i] / 2.0
        for need in (r + 3.0, min_depth * r + 1.0, 2.0):
            feasible = np.flatnonzero(depth >= need)
            found = None
            for flat in rng.choice(feasible, size=min(300, len(feasible)), replace=False) if len(feasible) else []:
                c = grid.index_to_lps(np.array(np.unravel_index(flat, depth.shape), float))
                if all(np.linalg.norm(c - pc) >= r + pr + 2.0 for pc, pr in placed):
                    found = c
                    break
            if found is not None:
                break
        if found is None:
            raise RuntimeError(f"no room for a {diameters[i]:.1f} mm lesion")
        placed.append((found, r))
        out[i] = found
    return [out[i] for i in range(len(diameters))]


# --------------------------------------------------------------------------- scanner


@dataclass
class BodyCase:
    """One patient of the liver or breast phantom: scan and GTV mask on one grid, the labels
    (cases.csv columns) and the truth that made them."""

    image: sitk.Image
    mask: sitk.Image
    labels: dict[str, str]
    lesions: list[dict]
    site: str
    acquisition: dict


@dataclass
class Scene:
    """A rendered patient on the 1 mm grid, ready to be scanned."""

    grid: RenderGrid
    image: np.ndarray  # HU (CT) or signal relative to the reference tissue (MR)
    occupancy: np.ndarray  # GTV partial-volume occupancy
    extent: np.ndarray  # LPS points bounding what the scan must cover
    outside: float  # value outside the body (air: -1000 HU, 0 in MR)


def scan(scene: Scene, rng: np.random.Generator, spec: SiteSpec, max_matrix: int | None, ct: bool) -> tuple[sitk.Image, sitk.Image, dict]:
    """Acquire the scene: grid and slice profile, bias (MR), noise (Gaussian in HU for CT, Rician
    for MR), storage type; the mask is the resampled occupancy >= 0.5 on the same grid."""
    acq = draw_acquisition(rng, spec, scene.extent, max_matrix)
    image = scene.image
    if not ct and acq.bias > 0:
        image = image * bias_field(image.shape, rng, acq.bias)
    n_sub = max(1, int(np.ceil(acq.thickness_mm - 1e-6)))
    identity = sitk.Transform(3, sitk.sitkIdentity)
    signal = resample_profile(scene.grid.to_sitk(image), acq, identity, n_sub, outside=scene.outside)
    if ct:
        noise = rng.standard_normal(signal.shape, dtype=np.float32)
        signal = np.clip(np.rint(signal + np.float32(acq.noise) * noise), -1024, 3071).astype(np.int16)
    else:
        signal = stored(rician(signal, acq.noise, rng), acq)
    occ = resample_profile(scene.grid.to_sitk(scene.occupancy), acq, identity, n_sub)
    info = {"orientation": acq.orientation, "in_plane_mm": acq.in_plane_mm, "thickness_mm": acq.thickness_mm,
            "matrix": acq.matrix, "dtype": "int16" if ct else acq.dtype, "noise": acq.noise}
    return on_grid(signal, acq), on_grid((occ >= 0.5).astype(np.uint8), acq), info
