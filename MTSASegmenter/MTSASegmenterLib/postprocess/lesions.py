"""Lesions as 3D connected components: volume (mL), max diameter (mm), centroid (RAS).

Connectivity is 26 (faces, edges and corners) by default: a metastasis cut diagonally by the
slice grid must stay one lesion, which is the usual rule for lesion counting. 6 (faces only)
is available for comparison with tools that use it.

Geometry follows ITK: the physical point of array voxel ``[k, j, i]`` is
``origin + D @ (spacing * (i, j, k))`` in LPS, which is what
``sitk.Image.TransformIndexToPhysicalPoint`` computes, vectorised here. Reports give RAS:
``(-x, -y, z)`` of LPS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

__all__ = ["Lesion", "find_lesions", "find_lesions_array", "label_components", "component_peaks", "drop_weak_components",
           "max_diameter_mm", "max_diameters_mm", "measure_labels", "lesion_detection"]

# Below this many surface points the exact all-pairs search is cheap; above it the convex hull
# removes the interior points first (the farthest pair always lies on the hull).
_PAIRWISE_MAX_POINTS = 1500


@dataclass(frozen=True)
class Lesion:
    """One connected component. ``bbox`` is ``(z0, y0, x0, z1, y1, x1)`` in array indices, half-open
    (scikit-image's regionprops order); ``centroid_ras`` is in mm."""

    id: int
    volume_ml: float
    max_diameter_mm: float
    centroid_ras: tuple[float, float, float]
    voxel_count: int
    bbox: tuple[int, int, int, int, int, int]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict with the report's keys (id, volume_ml, max_diameter_mm, centroid_ras) plus extras."""
        d = asdict(self)
        d["centroid_ras"] = [float(c) for c in self.centroid_ras]
        d["bbox"] = [int(b) for b in self.bbox]
        return d


def _structure(connectivity: int, ndim: int = 3) -> np.ndarray:
    rank = {6: 1, 18: 2, 26: 3}.get(connectivity) if ndim == 3 else {4: 1, 8: 2}.get(connectivity)
    if rank is None:
        raise ValueError(f"connectivity {connectivity} is not valid for {ndim}-D (use 6, 18 or 26 in 3D)")
    return ndimage.generate_binary_structure(ndim, rank)


def label_components(mask: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """(labels, n) of the connected components of a boolean ``[z, y, x]`` array."""
    mask = np.asarray(mask).astype(bool, copy=False)
    labels, n = ndimage.label(mask, structure=_structure(connectivity, mask.ndim))
    return labels, int(n)


def component_peaks(probability: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, peak probability, voxel count) of the components of ``probability >= threshold``;
    entry i belongs to label i + 1."""
    labels, n = label_components(probability >= threshold)
    if not n:
        return labels, np.zeros(0), np.zeros(0, dtype=int)
    peaks = np.asarray(ndimage.maximum(probability, labels, np.arange(1, n + 1)), dtype=float)
    return labels, peaks, np.bincount(labels.ravel(), minlength=n + 1)[1:]


def drop_weak_components(probability: np.ndarray, min_peak: float, min_volume_ml: float = 0.0,
                         spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0), threshold: float = 0.5) -> int:
    """Zero, in place, each component whose highest probability stays below ``min_peak`` or whose
    volume stays below ``min_volume_ml`` (``spacing_zyx`` in mm); returns how many were dropped.

    Why: on scans unlike the training data the network leaves many small, uncertain specks (vessel
    cross-sections, partial volume); a true lesion nearly always has a confident core.
    """
    if min_peak <= threshold and min_volume_ml <= 0:
        return 0
    labels, peaks, sizes = component_peaks(probability, threshold)
    volumes_ml = sizes * (float(np.prod(spacing_zyx)) / 1000.0)
    weak = np.flatnonzero((peaks < min_peak) | (volumes_ml < min_volume_ml)) + 1
    if weak.size:
        probability[np.isin(labels, weak)] = 0.0
    return int(weak.size)


def _surface_indices(comp: np.ndarray) -> np.ndarray:
    """Indices (array order) of a component's boundary voxels: only those can be farthest apart."""
    eroded = ndimage.binary_erosion(comp, structure=ndimage.generate_binary_structure(comp.ndim, 1))
    return np.argwhere(comp & ~eroded)


def _max_pairwise(points: np.ndarray) -> float:
    """Largest Euclidean distance among points (chunked so memory stays bounded)."""
    best = 0.0
    step = 512
    for s in range(0, len(points), step):
        d = ((points[s : s + step, None, :] - points[None, s:, :]) ** 2).sum(-1)
        best = max(best, float(d.max()))
    return float(np.sqrt(best))


def max_diameter_mm(points_mm: np.ndarray) -> float:
    """Largest distance between any two points (N x 3, mm). Exact; the hull only prunes points."""
    pts = np.unique(np.asarray(points_mm, dtype=float), axis=0)
    if len(pts) < 2:
        return 0.0
    if len(pts) > _PAIRWISE_MAX_POINTS:
        from scipy.spatial import ConvexHull, QhullError

        try:
            pts = pts[ConvexHull(pts).vertices]
        except QhullError:  # flat (e.g. single-slice) lesion: joggle to get a hull, distances stay exact
            pts = pts[ConvexHull(pts, qhull_options="QJ").vertices]
    return _max_pairwise(pts)


def _index_to_lps(idx_zyx: np.ndarray, spacing_xyz: np.ndarray, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Array indices [k, j, i] (N x 3) to LPS mm, as ``TransformIndexToPhysicalPoint``."""
    ijk = np.asarray(idx_zyx, dtype=float)[:, ::-1]
    return origin + (ijk * spacing_xyz) @ direction.T


def measure_labels(labels: np.ndarray, n: int, spacing: Sequence[float], origin: Sequence[float] = (0.0, 0.0, 0.0),
                   direction: Sequence[float] | np.ndarray | None = None) -> list[Lesion]:
    """Lesions of labels 1..n of a ``[z, y, x]`` label array, in label order (``id`` is the label); geometry
    the sitk way (``spacing``, ``origin`` x, y, z; ``direction`` 9 values or 3 x 3, identity if None)."""
    if n == 0:
        return []
    sp, org = np.asarray(spacing, dtype=float).reshape(3), np.asarray(origin, dtype=float).reshape(3)
    dirm = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
    voxel_ml = float(np.prod(sp)) / 1000.0
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    boxes = ndimage.find_objects(labels)  # per-component work stays in its box (center_of_mass scans the volume per call)
    out = []
    for lab in range(1, n + 1):
        box = boxes[lab - 1]
        comp = labels[box] == lab
        start = np.array([s.start for s in box])
        # Pad by one so the erosion sees background around the component, not the crop edge.
        surf = _surface_indices(np.pad(comp, 1)) - 1 + start
        centroid = _index_to_lps((np.argwhere(comp).mean(axis=0) + start)[None], sp, org, dirm)[0]
        out.append(Lesion(id=lab, volume_ml=int(counts[lab - 1]) * voxel_ml,
                          max_diameter_mm=max_diameter_mm(_index_to_lps(surf, sp, org, dirm)),
                          centroid_ras=(float(-centroid[0]), float(-centroid[1]), float(centroid[2])),
                          voxel_count=int(counts[lab - 1]),
                          bbox=tuple(int(s.start) for s in box) + tuple(int(s.stop) for s in box)))  # type: ignore[arg-type]
    return out


def max_diameters_mm(labels: np.ndarray, n: int, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Max diameter (mm) of labels 1..n of a ``[z, y, x]`` label array; direction cosines do not change lengths."""
    return np.array([lesion.max_diameter_mm for lesion in measure_labels(labels, n, list(spacing_zyx)[::-1])])


def find_lesions_array(
    mask: np.ndarray,
    spacing: Sequence[float],
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    direction: Sequence[float] | np.ndarray | None = None,
    connectivity: int = 26,
) -> list[Lesion]:
    """Lesions of a boolean ``[z, y, x]`` array whose geometry is given the sitk way.

    ``spacing`` and ``origin`` are in sitk order (x, y, z); ``direction`` is the 9 values of
    ``GetDirection()`` (row-major) or a 3x3 matrix; identity if None. Sorted by volume, largest
    first, ids from 1. Max diameter is between voxel centres (a one-voxel lesion has 0 mm).
    """
    mask = np.asarray(mask).astype(bool, copy=False)
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3-D [z, y, x], got shape {mask.shape}")
    found = measure_labels(*label_components(mask, connectivity), spacing, origin, direction)
    found.sort(key=lambda lesion: (-lesion.voxel_count, lesion.bbox))  # volume descending; position breaks ties deterministically
    return [replace(lesion, id=i) for i, lesion in enumerate(found, start=1)]


def find_lesions(mask: sitk.Image, connectivity: int = 26) -> list[Lesion]:
    """Lesions of a binary sitk mask (any non-zero voxel is lesion), honouring spacing and direction."""
    if mask.GetDimension() != 3:
        raise ValueError(f"mask must be a 3-D image, got {mask.GetDimension()}-D")
    return find_lesions_array(
        sitk.GetArrayViewFromImage(mask) != 0,
        mask.GetSpacing(),
        mask.GetOrigin(),
        mask.GetDirection(),
        connectivity,
    )


def lesion_detection(
    pred_mask: np.ndarray,
    truth_mask: np.ndarray,
    spacing: Sequence[float],
    min_diameter_mm: float = 5.0,
    connectivity: int = 26,
) -> dict[str, Any]:
    """Lesion-wise detection for evaluation on ``[z, y, x]`` arrays; ``spacing`` in array order (sz, sy, sx).

    Overlap rule: a truth lesion is detected when at least one predicted voxel lies in it. Only
    truth lesions with max diameter >= ``min_diameter_mm`` count for sensitivity (smaller ones
    are below what the ground truth reliably marks), but a prediction touching any truth voxel,
    small lesion included, is never a false positive. A false positive is a predicted component
    touching no truth voxel. Sensitivity is NaN when no truth lesion is large enough (aggregate
    with ``numpy.nanmean``). Diameters need only spacing: direction cosines do not change lengths.
    ``evaluated_lesions``: (max diameter mm, detected) of each evaluated truth lesion, for sensitivity by size.
    """
    pred = np.asarray(pred_mask).astype(bool, copy=False)
    truth = np.asarray(truth_mask).astype(bool, copy=False)
    if pred.shape != truth.shape:
        raise ValueError(f"pred and truth shapes differ: {pred.shape} vs {truth.shape}")
    truth_labels, n_truth = label_components(truth, connectivity)
    pred_labels, n_pred = label_components(pred, connectivity)
    hit_labels = set(np.unique(truth_labels[pred]).tolist())
    diameters = max_diameters_mm(truth_labels, n_truth, spacing)
    evaluated = [int(lab) for lab in np.flatnonzero(diameters >= min_diameter_mm) + 1]
    n_eval = len(evaluated)
    n_hit = sum(lab in hit_labels for lab in evaluated)

    n_touching = len(np.unique(pred_labels[truth & pred]))  # every such label is > 0
    n_fp = n_pred - n_touching

    return {
        "n_truth_lesions": n_truth,
        "n_truth_lesions_evaluated": n_eval,
        "n_detected": n_hit,
        "lesion_sensitivity": (n_hit / n_eval) if n_eval else float("nan"),
        "n_pred_lesions": n_pred,
        "n_false_positive_lesions": n_fp,
        "evaluated_lesions": [(float(diameters[lab - 1]), lab in hit_labels) for lab in evaluated],
    }

