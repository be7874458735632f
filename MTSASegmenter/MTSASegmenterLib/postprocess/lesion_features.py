"""Per-lesion image features on the model grid: the evidence a patient-level classifier reads.

A slice classifier never sees how many metastases a patient has, nor compares them; the patient's
genotype shows in exactly that (number, size, necrosis, oedema, enhancement texture of every
lesion). These features are measured on the normalised model-grid volume (intensity / tissue
median) inside and around the predicted GTV, so they do not depend on the scanner's units or grid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from .lesions import label_components

NECROSIS_MIN_DIAMETER_MM = 10.0  # a necrotic core needs room inside a rim
CORE_LEVEL = 0.8  # interior voxels darker than this (x tissue median) count as necrotic core
NECROTIC_SHARE = 0.1  # a lesion whose interior holds this share of core voxels is necrotic


@dataclass(frozen=True)
class LesionFeatures:
    """One predicted lesion. ``oedema`` is how dark the tissue just outside is, relative to farther out."""

    diameter_mm: float  # equivalent-sphere diameter, robust to irregular outlines
    necrotic_share: float  # share of the interior darker than CORE_LEVEL
    oedema: float  # 1 - mean(near shell) / mean(far shell); larger = more (or wider) oedema
    texture: float  # std / mean of the enhancing interior

    @property
    def necrotic(self) -> bool:
        return self.diameter_mm >= NECROSIS_MIN_DIAMETER_MM and self.necrotic_share >= NECROTIC_SHARE

    def to_dict(self) -> dict[str, float | bool]:
        return {**{k: round(v, 4) for k, v in asdict(self).items()}, "necrotic": self.necrotic}


def equivalent_diameter_mm(volume_ml: float) -> float:
    """Diameter of the sphere of that volume: a size that irregular outlines do not inflate."""
    return float((6.0 * volume_ml * 1000.0 / np.pi) ** (1.0 / 3.0))


def measure_lesions(volume: np.ndarray, mask: np.ndarray, spacing_zyx: tuple[float, float, float],
                    min_volume_ml: float = 0.02, slice_step: int = 1) -> list[LesionFeatures]:
    """Features of each 26-connected component of ``mask`` of at least ``min_volume_ml``, largest first,
    measured on every ``slice_step``-th slice: on a grid that interpolates thick slices (``ModelGrid.slice_step``)
    those are the scanner's own, and interior, necrosis and texture are read from what was acquired."""
    if slice_step > 1:
        volume, mask = volume[::slice_step], mask[::slice_step]
        spacing_zyx = (spacing_zyx[0] * slice_step, spacing_zyx[1], spacing_zyx[2])
    labels, n = label_components(mask)
    if n == 0:
        return []
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    boxes = ndimage.find_objects(labels)
    out = []
    for lab in np.argsort(-counts[1:], kind="stable") + 1:
        volume_ml = counts[lab] * voxel_ml
        if volume_ml < min_volume_ml:
            continue
        diameter = equivalent_diameter_mm(volume_ml)
        margin = [int(np.ceil((1.5 * diameter + 4.0) / s)) for s in spacing_zyx]
        box = tuple(slice(max(b.start - m, 0), b.stop + m) for b, m in zip(boxes[lab - 1], margin))
        comp, vol, gtv = labels[box] == lab, volume[box], mask[box] > 0
        out.append(_features(comp, vol, gtv, spacing_zyx, diameter))
    return out


def _features(comp: np.ndarray, vol: np.ndarray, gtv: np.ndarray, spacing_zyx: tuple[float, float, float],
              diameter: float) -> LesionFeatures:
    interior = ndimage.binary_erosion(comp, structure=ndimage.generate_binary_structure(3, 1))
    if not interior.any():
        interior = comp
    values = vol[interior]
    necrotic_share = float((values < CORE_LEVEL).mean())
    enhancing = values[values >= CORE_LEVEL]
    texture = float(enhancing.std() / enhancing.mean()) if enhancing.size > 1 else 0.0
    outside = ndimage.distance_transform_edt(~comp, sampling=spacing_zyx)
    tissue = (vol > 0.3) & ~gtv
    radius = diameter / 2.0
    near = tissue & (outside > 1.5) & (outside <= 1.5 + 0.6 * radius)
    far = tissue & (outside > 1.5 + 1.2 * radius) & (outside <= 1.5 + 2.0 * radius)
    oedema = float(1.0 - vol[near].mean() / vol[far].mean()) if near.any() and far.any() else 0.0
    return LesionFeatures(diameter, necrotic_share, oedema, texture)


PATIENT_FEATURES = ("lesion_count", "log_diameter_sum", "large_count", "necrotic_count",
                    "oedema_sum", "oedema_min", "oedema_max", "texture_sum", "texture_min", "texture_max")


def patient_features(lesions: list[LesionFeatures]) -> dict[str, float]:
    """Patient-level summary. Sums carry evidence that grows with the number of lesions; minima and
    maxima carry the lesion that is least like the other class."""
    if not lesions:
        return {name: 0.0 for name in PATIENT_FEATURES}
    oedema = np.array([les.oedema for les in lesions])
    texture = np.array([les.texture for les in lesions])
    return {
        "lesion_count": float(len(lesions)),
        "log_diameter_sum": float(sum(np.log(les.diameter_mm) for les in lesions)),
        "large_count": float(sum(les.diameter_mm >= NECROSIS_MIN_DIAMETER_MM for les in lesions)),
        "necrotic_count": float(sum(les.necrotic for les in lesions)),
        "oedema_sum": float(oedema.sum()), "oedema_min": float(oedema.min()), "oedema_max": float(oedema.max()),
        "texture_sum": float(texture.sum()), "texture_min": float(texture.min()), "texture_max": float(texture.max()),
    }
