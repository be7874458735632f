"""lesions.py: geometry (spacing, oblique direction, RAS sign), component counting and detection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from MTSASegmenterLib.postprocess.lesions import (
    Lesion,
    find_lesions,
    find_lesions_array,
    label_components,
    lesion_detection,
    max_diameters_mm,
    measure_labels,
)

SPACING = (0.6, 0.8, 2.0)  # sitk order (x, y, z): anisotropic, thick slices
SIZE = (44, 36, 16)  # sitk order (x, y, z)


def _oblique_direction() -> np.ndarray:
    """A proper rotation about a tilted axis (not axis-aligned, so a missed D shows)."""
    axis = np.array([0.3, -0.5, 0.8])
    axis /= np.linalg.norm(axis)
    angle = math.radians(25)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def _sphere_image(centre_lps: np.ndarray, radius: float) -> sitk.Image:
    """Mask of a physical sphere, voxelised with sitk's own index->physical mapping (independent)."""
    direction = _oblique_direction()
    # Put the centre off the voxel grid (fractional index) so sampling is not symmetric.
    centre_idx = np.array(SIZE) / 2.0 + np.array([0.3, 0.2, 0.4])
    origin = centre_lps - direction @ (np.array(SPACING) * centre_idx)
    points = sitk.PhysicalPointSource(
        sitk.sitkVectorFloat64, SIZE, origin.tolist(), SPACING, direction.ravel().tolist()
    )
    xyz = sitk.GetArrayFromImage(points)  # [z, y, x, 3] LPS
    mask = (np.linalg.norm(xyz - centre_lps, axis=-1) <= radius).astype(np.uint8)
    img = sitk.GetImageFromArray(mask)
    img.CopyInformation(points)
    return img


def test_sphere_volume_diameter_centroid_in_oblique_anisotropic_image():
    centre_lps = np.array([12.5, -30.0, 45.0])
    r = 8.0
    img = _sphere_image(centre_lps, r)
    lesions = find_lesions(img)
    assert len(lesions) == 1
    les = lesions[0]
    assert les.id == 1
    true_ml = 4.0 / 3.0 * math.pi * r**3 / 1000.0
    assert les.volume_ml == pytest.approx(true_ml, rel=0.03)
    assert les.voxel_count == int(sitk.GetArrayViewFromImage(img).sum())
    # Voxel-centre diameter: below 2r by less than one voxel (the largest spacing).
    assert 2 * r - max(SPACING) <= les.max_diameter_mm <= 2 * r
    # RAS = (-L, -P, S) of the LPS centre; discretisation moves it by a fraction of a voxel.
    expected_ras = np.array([-centre_lps[0], -centre_lps[1], centre_lps[2]])
    assert np.allclose(les.centroid_ras, expected_ras, atol=0.25)

    # Against ITK's own shape statistics (independent of our index->physical code).
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.ComputeFeretDiameterOn()
    stats.Execute(img)
    cx, cy, cz = stats.GetCentroid(1)
    assert np.allclose(les.centroid_ras, (-cx, -cy, cz), atol=1e-6)
    assert les.volume_ml == pytest.approx(stats.GetPhysicalSize(1) / 1000.0, rel=1e-9)
    assert les.max_diameter_mm == pytest.approx(stats.GetFeretDiameter(1), abs=1e-6)

    d = les.to_dict()
    assert {"id", "volume_ml", "max_diameter_mm", "centroid_ras"} <= set(d)
    assert isinstance(d["centroid_ras"], list) and len(d["centroid_ras"]) == 3


def test_two_blobs_sorted_by_volume_and_connectivity():
    a = np.zeros((8, 20, 20), bool)
    a[1:3, 2:4, 2:4] = True  # 8 voxels
    a[4:7, 10:15, 10:15] = True  # 75 voxels
    lesions = find_lesions_array(a, spacing=(0.5, 0.5, 2.0))
    assert [les.id for les in lesions] == [1, 2]
    assert [les.voxel_count for les in lesions] == [75, 8]
    assert lesions[0].volume_ml == pytest.approx(75 * 0.5 * 0.5 * 2.0 / 1000)
    assert lesions[0].bbox == (4, 10, 10, 7, 15, 15)
    # Box 75: farthest voxel centres are opposite corners: (4*0.5, 4*0.5, 2*2.0) mm apart.
    assert lesions[0].max_diameter_mm == pytest.approx(math.sqrt(2.0**2 + 2.0**2 + 4.0**2))
    # Corner-touching voxels: one lesion with 26-connectivity, two with 6.
    b = np.zeros((3, 3, 3), bool)
    b[0, 0, 0] = b[1, 1, 1] = True
    assert len(find_lesions_array(b, (1.0, 1.0, 1.0))) == 1
    assert len(find_lesions_array(b, (1.0, 1.0, 1.0), connectivity=6)) == 2
    assert find_lesions_array(np.zeros((3, 3, 3), bool), (1.0, 1.0, 1.0)) == []
    # measure_labels keeps the label order and numbers (evaluate measures a missed lesion by its label).
    labels, n = label_components(a)
    by_label = measure_labels(labels, n, (0.5, 0.5, 2.0))
    assert [les.id for les in by_label] == [1, 2] and [les.voxel_count for les in by_label] == [8, 75]
    assert list(max_diameters_mm(labels, n, (2.0, 0.5, 0.5))) == [les.max_diameter_mm for les in by_label]
    assert sorted(by_label, key=lambda les: -les.voxel_count)[0].max_diameter_mm == lesions[0].max_diameter_mm


def test_large_flat_lesion_uses_hull_path_exactly():
    # A single-slice disc with > 1500 surface points: coplanar, so the hull needs joggling.
    yy, xx = np.mgrid[:120, :120]
    disc = ((yy - 60) ** 2 + (xx - 60) ** 2) <= 55**2
    a = np.zeros((3, 120, 120), bool)
    a[1] = disc
    les = find_lesions_array(a, spacing=(0.5, 0.5, 3.0))[0]
    pts = np.argwhere(disc)[:, ::-1] * 0.5
    ref = max(np.linalg.norm(pts - p, axis=1).max() for p in pts[np.linalg.norm(pts - 30, axis=1) > 26])
    assert les.max_diameter_mm == pytest.approx(ref, abs=1e-9)


def _box(a: np.ndarray, z: slice, y: slice, x: slice) -> None:
    a[z, y, x] = True


def test_lesion_detection_counts():
    spacing = (2.0, 1.0, 1.0)  # (sz, sy, sx)
    truth = np.zeros((10, 40, 40), bool)
    pred = np.zeros_like(truth)
    _box(truth, slice(1, 4), slice(2, 10), slice(2, 10))  # A: large, hit
    _box(truth, slice(5, 8), slice(20, 30), slice(20, 30))  # B: large, missed
    _box(truth, slice(1, 2), slice(30, 32), slice(2, 4))  # C: ~1.4 mm, below 5 mm
    _box(pred, slice(2, 3), slice(8, 12), slice(8, 12))  # overlaps A by a few voxels
    _box(pred, slice(1, 2), slice(30, 31), slice(3, 5))  # touches C: not a false positive
    _box(pred, slice(7, 9), slice(2, 6), slice(30, 36))  # touches nothing: false positive
    res = lesion_detection(pred, truth, spacing, min_diameter_mm=5.0)
    assert res == {
        "n_truth_lesions": 3,
        "n_truth_lesions_evaluated": 2,
        "n_detected": 1,
        "lesion_sensitivity": 0.5,
        "n_pred_lesions": 3,
        "n_false_positive_lesions": 1,
        "evaluated_lesions": [(pytest.approx(np.sqrt(4**2 + 7**2 + 7**2)), True), (pytest.approx(np.sqrt(4**2 + 9**2 + 9**2)), False)],
    }
    # Lowering the threshold brings C in (it is hit).
    assert lesion_detection(pred, truth, spacing, min_diameter_mm=0.0)["n_detected"] == 2

    empty = lesion_detection(pred, np.zeros_like(truth), spacing)
    assert math.isnan(empty["lesion_sensitivity"]) and empty["n_false_positive_lesions"] == 3
    none = lesion_detection(np.zeros_like(truth), truth, spacing)
    assert none["lesion_sensitivity"] == 0.0 and none["n_pred_lesions"] == 0


def test_lesion_is_frozen_dataclass():
    les = Lesion(1, 0.5, 10.0, (1.0, 2.0, 3.0), 5, (0, 0, 0, 1, 1, 1))
    with pytest.raises(AttributeError):
        les.id = 2  # type: ignore[misc]
