"""Keep a predicted GTV component only when it looks like a metastasis, not a vessel or a speck.

Why: the network, looking at a few slices at a time, marks bright structures that enhance in
every T1-CE scan (vessel cross-sections, choroid plexus, dural sinuses) and noise specks. Seen
whole in 3D they differ from metastases in ways a slice model cannot see: vessels are long and
thin, specks are tiny and unsure, and both are brighter or darker than enhancing tumour; normal
enhancing anatomy comes in left-right pairs, a metastasis seldom does. A small
logistic model over those measurements (fitted by ``mtsa fit-head`` on the network's own training
patients, stored as plain data in the checkpoint) removes most of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .lesion_features import equivalent_diameter_mm
from .lesions import label_components
from .patient_model import LogisticModel

MEASURED_FEATURES = ("log_volume_ml", "peak_probability", "mean_probability", "mean_intensity", "mean_intensity_squared",
                     "max_intensity", "shell_contrast", "elongation", "flatness", "log_depth_mm", "height_ratio", "mirror_partner")
# What a filter is fitted on: size, certainty and shape, not brightness. Intensities relative to the
# tissue median differ between scanners and contrasts (a real metastasis can be 1.2 or 3 x white
# matter), so a filter that learned the phantom's brightness drops real lesions; filters fitted
# before (the intensity features included) still work, each model naming its own features.
COMPONENT_FEATURES = ("log_volume_ml", "peak_probability", "mean_probability", "elongation", "flatness", "log_depth_mm",
                      "height_ratio")
# With a left-right twin (``mtsa fit-head --mirror-twin``, the bundled model's filter): on a full-head scan it drops
# the paired choroid plexus and carotids the filter above keeps, and a lesion another lesion mirrors (model card, v18t).
TWIN_FEATURES = (*COMPONENT_FEATURES, "mirror_partner")
TISSUE_LEVEL = 0.3  # normalised intensity above which a voxel counts as tissue (for the depth below its surface)
SHELL_MM = 3.0  # the surroundings a component is compared with
MIRROR_MM = 5.0  # how near its mirror image another component must come to count as its twin
MIRROR_SIZE_RATIO = 3.0  # and how alike in volume (a small lesion mirrored beside a large one is no twin)


def component_features(probability: np.ndarray, volume: np.ndarray, spacing_zyx: tuple[float, float, float],
                       threshold: float = 0.5, names: tuple[str, ...] = COMPONENT_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """(labels, features): the 26-connected components of ``probability >= threshold`` on the model
    grid and one row of the features ``names`` (of ``MEASURED_FEATURES``) per component (row i is label i + 1).

    ``volume`` is the normalised model-grid volume (intensity / tissue median), so the features do
    not depend on the scanner's units.
    """
    labels, n = label_components(probability >= threshold)
    if n == 0:
        return labels, np.zeros((0, len(names)))
    index = np.arange(1, n + 1)
    spacing = np.asarray(spacing_zyx, dtype=float)
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    volume_ml = counts * spacing.prod() / 1000.0
    mean_intensity = np.asarray(ndimage.mean(volume, labels, index))
    depth = ndimage.distance_transform_edt(volume > TISSUE_LEVEL, sampling=spacing)
    outside, nearest = ndimage.distance_transform_edt(labels == 0, sampling=spacing, return_indices=True)
    nearest_label = labels[tuple(nearest)]
    shell = np.where((outside > 0) & (outside <= SHELL_MM) & (volume > TISSUE_LEVEL), nearest_label, 0)
    with np.errstate(invalid="ignore"):  # a component with no tissue around it: nan, then 1.0
        shell_mean = np.nan_to_num(np.asarray(ndimage.mean(volume, shell, index)), nan=1.0)
    boxes = ndimage.find_objects(labels)
    shape = np.array([_shape(labels[box] == k + 1, spacing) for k, box in enumerate(boxes)])
    heights = np.array([(box[0].stop - box[0].start) * spacing[0] for box in boxes])
    features = np.column_stack([
        np.log(volume_ml),
        _box_max(probability, labels, boxes),
        ndimage.mean(probability, labels, index),
        mean_intensity,
        mean_intensity**2,  # with the linear term: tumour enhancement sits between darker specks and brighter vessels
        _box_max(volume, labels, boxes),
        mean_intensity - shell_mean,
        shape,
        np.log(np.maximum(np.asarray(ndimage.mean(depth, labels, index)), 0.5)),
        heights / np.array([equivalent_diameter_mm(v) for v in volume_ml]),
        _mirror_partner(labels, n, volume > TISSUE_LEVEL, np.where(outside <= MIRROR_MM, nearest_label, 0)),
    ])
    return labels, features[:, [MEASURED_FEATURES.index(name) for name in names]]


def _mirror_partner(labels: np.ndarray, n: int, tissue: np.ndarray, near: np.ndarray) -> np.ndarray:
    """Share of each component's voxels whose left-right mirror image lies within MIRROR_MM of another
    component of a like volume (``near``: the label of the component within MIRROR_MM of each voxel, 0 for none).
    Why: choroid plexus, carotids and cavernous sinuses enhance on both sides alike, a metastasis
    seldom has a twin. Mirrored about the middle of the tissue's columns (model-grid x is left-right);
    a component across the midline is its own mirror image and not its partner."""
    centre = float(np.nonzero(tissue.any(axis=(0, 1)))[0].mean()) if tissue.any() else (labels.shape[2] - 1) / 2
    z, y, x = np.nonzero(labels)
    own = labels[z, y, x]
    mirrored = near[z, y, np.clip(np.round(2 * centre - x).astype(int), 0, labels.shape[2] - 1)]
    counts = np.bincount(own, minlength=n + 1).astype(float)
    ratio = counts[mirrored] / counts[own]
    twin = (mirrored != 0) & (mirrored != own) & (ratio <= MIRROR_SIZE_RATIO) & (ratio >= 1 / MIRROR_SIZE_RATIO)
    return np.bincount(own, weights=twin, minlength=n + 1)[1:] / counts[1:]


def _box_max(values: np.ndarray, labels: np.ndarray, boxes: list) -> np.ndarray:
    """Per-component maximum within each component's box (``ndimage.maximum`` sorts the whole volume: 0.3 s a call)."""
    return np.array([values[box][labels[box] == k + 1].max() for k, box in enumerate(boxes)])


def _shape(component: np.ndarray, spacing: np.ndarray) -> tuple[float, float]:
    """(elongation, flatness): half log-ratios of the principal spreads; 0 for a sphere, large for a tube
    or a sheet. Each voxel adds its own extent (spacing^2 / 12), so a single voxel is not degenerate."""
    points = np.argwhere(component) * spacing
    spread = np.cov(points.T) if len(points) > 1 else np.zeros((3, 3))
    eigen = np.sort(np.linalg.eigvalsh(spread + np.diag(spacing**2 / 12.0)))[::-1]
    return 0.5 * float(np.log(eigen[0] / eigen[1])), 0.5 * float(np.log(eigen[1] / eigen[2]))


@dataclass(frozen=True)
class DroppedComponent:
    """A component the filter removed, and why: its rating and the features that pulled it down most."""

    volume_ml: float
    centroid_zyx: tuple[float, float, float]  # model-grid index
    rating: float  # the component model's probability that it is a lesion
    reasons: dict[str, float]  # feature -> its contribution to the logit, most negative first


def drop_unlikely_components(probability: np.ndarray, volume: np.ndarray, spacing_zyx: tuple[float, float, float],
                             model: LogisticModel, min_probability: float, threshold: float = 0.5,
                             n_reasons: int = 3) -> list[DroppedComponent]:
    """Zero, in place, each component the model gives less than ``min_probability`` of being a
    lesion; returns what was dropped, each with its ``n_reasons`` most damning features."""
    labels, features = component_features(probability, volume, spacing_zyx, threshold, model.features)
    scores = model.probabilities(features)
    unlikely = np.flatnonzero(scores < min_probability)
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    dropped = []
    for i, centroid in zip(unlikely, ndimage.center_of_mass(labels > 0, labels, unlikely + 1)):
        contributions = model.contributions(dict(zip(model.features, features[i])))
        worst = sorted(contributions.items(), key=lambda kv: kv[1])[:n_reasons]
        dropped.append(DroppedComponent(float(np.count_nonzero(labels == i + 1) * voxel_ml), tuple(float(c) for c in centroid),
                                        float(scores[i]), {name: round(value, 3) for name, value in worst}))
    drop_scored_components(probability, labels, scores, min_probability)
    return dropped


def drop_scored_components(probability: np.ndarray, labels: np.ndarray, scores: np.ndarray, min_probability: float) -> int:
    """Zero, in place, the components (``labels``, score i for label i + 1) scored below ``min_probability``."""
    unlikely = np.flatnonzero(scores < min_probability) + 1
    if unlikely.size:
        probability[np.isin(labels, unlikely)] = 0.0
    return int(unlikely.size)
