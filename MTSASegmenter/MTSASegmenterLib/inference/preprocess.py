"""From any MR volume to the model's axial slices, and the GTV back onto the volume's own grid.

The model grid is defined in physical (LPS) space only: identity direction, ``spacing_mm``
in-plane, ``input_size`` square, centred on the tissue, with axial slices at the native slice
spacing (never thinner than ``min_slice_mm``; with ``max_slice_mm``, thick slices are interpolated
and every acquired slice of an axial scan is one of the model's). Because nothing in it depends on
how the voxels are stored, the same patient stored axial, sagittal, coronal, flipped or in another
axis order gives the same model slices; and because both directions are plain resampling between
two physical grids, the inverse mapping is exact up to interpolation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..config import PreprocessConfig

_MAX_STAT_VOXELS = 8_000_000  # larger volumes are subsampled for the intensity statistics
BRIGHT_FRACTION = 0.1  # tissue lies above this fraction of the bright level (99th percentile) at least
BACKGROUND_NOISE_MULTIPLE = 3.0  # tissue lies above this multiple of the background's median (see IntensityStats.of)
AIR_BOX_MULTIPLE = 2.0  # with noisy air, the tissue box holds the voxels above this multiple of the air's floor
FILL_SHARE = 0.2  # one value over this share of the voxels is a fill outside a mask (see signal_free_level)
# Bump when the model-grid values of a given image and PreprocessConfig change, so that the training-slice
# caches built by older code are rebuilt. 2: signed, offset and z-scored scans read from their signal-free level.
GRID_VERSION = 2


@dataclass(frozen=True)
class IntensityStats:
    """The input's intensity mapping: normalised = (value - offset) / scale, clipped to [0, clip_max].

    ``tissue_median`` (MR, MTSA-Net): offset = the signal-free level (0 for a magnitude image), scale =
    median of tissue voxels above it, because MR has no fixed unit; ``percentile`` (MR, the breast paper):
    offset and scale from two percentiles of the tissue voxels; ``ct_window``: CT is in Hounsfield units
    already, so a fixed window maps to [0, 1].
    """

    scale: float
    offset: float = 0.0
    air_floor: float = 0.0  # how far above ``zero`` a noisy background's air lies (0: none above BRIGHT_FRACTION of the bright level)
    zero: float = 0.0  # raw value that means no signal (see signal_free_level)
    fill: float | None = None  # raw value filling the outside of a mask, read as ``zero``

    @classmethod
    def of(cls, image: sitk.Image, cfg: PreprocessConfig | None = None) -> "IntensityStats":
        cfg = cfg or PreprocessConfig()
        if cfg.normalisation == "ct_window":
            low, high = cfg.window
            return cls(scale=high - low, offset=low)
        values = sitk.GetArrayViewFromImage(image)
        step = max(1, int(np.ceil((values.size / _MAX_STAT_VOXELS) ** (1 / 3))))
        sample = np.array(values[::step, ::step, ::step], dtype=np.float32).ravel()  # a copy: shifted below
        zero, fill = signal_free_level(sample)
        if fill is not None:
            sample[sample == fill] = zero
        sample -= np.float32(zero)
        high = float(np.percentile(sample, 99.0))
        floor = tissue_floor(sample, high) if high > 0 else 0.0
        tissue = sample[sample > floor]
        air = floor if floor > BRIGHT_FRACTION * high else 0.0
        if cfg.normalisation == "percentile" and tissue.size:
            lo, hi = (float(v) for v in np.percentile(tissue, cfg.percentiles))
            return cls(scale=hi - lo if hi > lo else 1.0, offset=zero + lo, air_floor=air, zero=zero, fill=fill)
        median = float(np.median(tissue)) if tissue.size else high
        return cls(scale=median if median > 0 else 1.0, offset=zero, air_floor=air, zero=zero, fill=fill)

    def raw(self, normalised: float) -> float:
        """The input value that normalises to ``normalised``."""
        return self.offset + normalised * self.scale

    def signal(self, image: sitk.Image) -> sitk.Image:
        """The image with its fill, if it has one, set to the signal-free level."""
        if self.fill is None:
            return image
        return sitk.Mask(image, sitk.NotEqual(image, self.fill), outsideValue=self.zero)


def signal_free_level(sample: np.ndarray) -> tuple[float, float | None]:
    """(zero, fill): the raw value that means no signal, and a value that fills the outside of a mask above it.
    Why: the tissue median is read as a ratio to 0, which an MR magnitude image has where there is no signal;
    signed, offset or z-scored data lost every lesion (brats-met-00110 with its background at -1000 or scaled to
    [-1, 1]: 0 of 28 mL; z-scored inside its brain mask, the outside 0: 1.8 mL). Where the lowest values (the
    0.1th percentile, so that a stray voxel does not set it) lie more than a tenth of the intensity range below 0,
    they are that level, and a value above them that fills a fifth of the scan or more (z-scored: the outside's 0)
    is read as that level too; z-scored data has lost its zero, so its darkest tissue (CSF) is read as none. Any
    other scan, noise about 0 included, keeps 0 and is read exactly as before (a constant level above 0 may be
    tissue, as in a crop: it is not taken for an offset)."""
    if sample.size == 0 or float(sample.min()) >= 0:
        return 0.0, None
    zero, high = (float(v) for v in np.percentile(sample, (0.1, 99.0), method="lower"))
    if -zero < BRIGHT_FRACTION * (high - zero):
        return 0.0, None  # noise about 0 (Gaussian air) or interpolation's undershoot, not a shift
    values, counts = np.unique(sample, return_counts=True)
    top = int(np.argmax(counts))
    if counts[top] < FILL_SHARE * sample.size or values[top] <= zero:
        return zero, None
    fill = float(values[top])
    return min(0.0, float(np.percentile(sample[sample != fill], 0.1, method="lower"))), fill


def tissue_floor(sample: np.ndarray, high: float) -> float:
    """The value above which a voxel counts as tissue: ``BRIGHT_FRACTION`` (a tenth) of the bright level ``high``, or
    ``BACKGROUND_NOISE_MULTIPLE`` times the median of the air below it if that is higher.
    Why: with a wide field of view and a noisy coil the air's noise reaches a tenth of the bright level;
    counted as tissue it pulled the median down to the noise and the whole head saturated at ``clip_max``
    (three of 40 external-site phantoms lost every lesion so). The air is what lies below the floor,
    so the floor is raised until it holds still (noise above a tenth of ``high`` is seen only in parts
    at first); a background of zeros leaves the tenth."""
    floor = BRIGHT_FRACTION * high
    for _ in range(20):
        background = sample[sample <= floor]
        raised = BACKGROUND_NOISE_MULTIPLE * float(np.median(background)) if background.size else 0.0
        if raised <= floor * 1.01:
            break
        floor = raised
    return floor


def normalise(values: np.ndarray, stats: IntensityStats, cfg: PreprocessConfig) -> np.ndarray:
    """Map to the model's scale and clip, so int16 0-4095 and float 0-1 look the same to the model."""
    out = np.asarray(values, dtype=np.float32) - np.float32(stats.offset)
    out /= np.float32(stats.scale)
    return np.clip(out, 0.0, cfg.clip_max, out=out)


def _lps_matrix(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """index -> LPS: p = origin + M @ index, with M = direction @ diag(spacing)."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    return np.asarray(image.GetOrigin(), dtype=float), direction @ np.diag(image.GetSpacing())


def _tissue_box_lps(image: sitk.Image, threshold: float, fill: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned LPS bounding box of the voxels above ``threshold`` that are not the ``fill`` outside a mask
    (all voxels if none)."""
    values = sitk.GetArrayViewFromImage(image)  # [k, j, i]
    inside = values > threshold
    if fill is not None:
        inside &= values != fill
    lo_hi = []
    for axis in (2, 1, 0):  # i, j, k
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(inside.any(axis=other))
        n = values.shape[axis]
        lo_hi.append((present[0], present[-1]) if present.size else (0, n - 1))
    corners = np.array([[a, b, c] for a in lo_hi[0] for b in lo_hi[1] for c in lo_hi[2]], dtype=float)
    origin, matrix = _lps_matrix(image)
    points = origin + corners @ matrix.T
    return points.min(axis=0), points.max(axis=0)


@dataclass(frozen=True)
class ModelGrid:
    """The mapping between one input volume and the model's stack of axial slices."""

    reference: sitk.Image  # empty image carrying the model grid's geometry
    stats: IntensityStats
    cfg: PreprocessConfig
    slice_step: int = 1  # model slices per acquired slice (> 1 where max_slice_mm interpolates thick slices)
    tissue_span_mm: tuple[float, float] = (0.0, 0.0)  # LPS x, y extent of the tissue the grid is centred on

    @classmethod
    def for_image(cls, image: sitk.Image, cfg: PreprocessConfig) -> "ModelGrid":
        stats = IntensityStats.of(image, cfg)
        # around the tissue, not the air: above twice a noisy air's floor, where no noise voxel reaches (7 sigma)
        threshold = max(stats.raw(cfg.tissue_threshold), stats.zero + AIR_BOX_MULTIPLE * stats.air_floor)
        box_lo, box_hi = _tissue_box_lps(image, threshold, stats.fill)  # the fill is read as zero, below the threshold
        _, matrix = _lps_matrix(image)
        # The native axis closest to superior sets the slice spacing, so an axial scan keeps its slices.
        axis = int(np.argmax(np.abs(matrix[2]) / np.linalg.norm(matrix, axis=0)))
        z_spacing = max(float(image.GetSpacing()[axis]), cfg.min_slice_mm)
        step = math.ceil(z_spacing / cfg.max_slice_mm) if cfg.max_slice_mm else 1
        z_spacing /= step
        z_extent = float(box_hi[2] - box_lo[2])
        n_z = int(np.floor(z_extent / z_spacing + 1e-6)) + 1
        z0 = box_lo[2] + (z_extent - (n_z - 1) * z_spacing) / 2
        centre_xy = (box_lo[:2] + box_hi[:2]) / 2
        half = (cfg.input_size - 1) * cfg.spacing_mm / 2
        reference = sitk.Image([cfg.input_size, cfg.input_size, n_z], sitk.sitkUInt8)
        reference.SetSpacing((cfg.spacing_mm, cfg.spacing_mm, z_spacing))
        reference.SetOrigin((float(centre_xy[0] - half), float(centre_xy[1] - half), float(z0)))
        reference.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, 1))
        span = (float(box_hi[0] - box_lo[0]), float(box_hi[1] - box_lo[1]))
        return cls(reference=reference, stats=stats, cfg=cfg, slice_step=step, tissue_span_mm=span)

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Model-grid spacing in array order (slice, row, column), mm."""
        sx, sy, sz = self.reference.GetSpacing()
        return float(sz), float(sy), float(sx)

    def index_to_ras(self, zyx: tuple[float, float, float]) -> tuple[float, float, float]:
        """RAS (mm) of a continuous model-grid index given in array order (slice, row, column)."""
        x, y, z = self.reference.TransformContinuousIndexToPhysicalPoint((float(zyx[2]), float(zyx[1]), float(zyx[0])))
        return (-x, -y, z)

    @property
    def field_mm(self) -> float:
        """In-plane width the model sees: tissue beyond it, around the tissue's centre, is not predicted."""
        return self.cfg.input_size * self.cfg.spacing_mm

    @property
    def n_slices(self) -> int:
        return self.reference.GetSize()[2]

    @property
    def slice_positions_mm(self) -> np.ndarray:
        """Superior coordinate (LPS z = RAS S) of each model slice."""
        z0, dz = self.reference.GetOrigin()[2], self.reference.GetSpacing()[2]
        return z0 + dz * np.arange(self.n_slices)

    def image_to_grid(self, image: sitk.Image) -> np.ndarray:
        """Normalised float32 volume [z, y, x] on the model grid (0 outside the input: the fill is the
        raw value that normalises to 0, so air outside a CT is not read as 0 HU, water)."""
        resampled = sitk.Resample(self.stats.signal(image), self.reference, sitk.Transform(), sitk.sitkLinear, self.stats.offset,
                                  sitk.sitkFloat32)
        return normalise(sitk.GetArrayViewFromImage(resampled), self.stats, self.cfg)

    def mask_to_grid(self, mask: sitk.Image) -> np.ndarray:
        """A label mask on the model grid (linear interpolation of the mask, threshold 0.5)."""
        as_float = sitk.Cast(mask > 0, sitk.sitkFloat32)
        resampled = sitk.Resample(as_float, self.reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        return (sitk.GetArrayViewFromImage(resampled) >= 0.5).astype(np.uint8)

    def grid_to_image(self, values: np.ndarray, image: sitk.Image) -> sitk.Image:
        """Model-grid values [z, y, x] resampled onto ``image``'s own grid (float32, 0 outside)."""
        grid_image = sitk.GetImageFromArray(np.ascontiguousarray(values, dtype=np.float32))
        grid_image.CopyInformation(self.reference)
        return sitk.Resample(grid_image, image, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)

    def tissue_slices(self, volume: np.ndarray) -> np.ndarray:
        """Indices of the model slices that hold enough tissue to be worth predicting."""
        share = (volume > self.cfg.tissue_threshold).mean(axis=(1, 2))
        return np.flatnonzero(share >= self.cfg.min_tissue_fraction)


def stack_context(volume: np.ndarray, z_indices: np.ndarray, context: int) -> np.ndarray:
    """[B, 2*context+1, y, x] channels of each slice and its neighbours (edges repeat the last slice)."""
    offsets = np.arange(-context, context + 1)
    index = np.clip(np.asarray(z_indices)[:, None] + offsets[None, :], 0, volume.shape[0] - 1)
    return volume[index]
