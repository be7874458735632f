"""Reading the DICOM outputs back with readers that are not the writers: highdicom and pydicom for
the SEG, pydicom and matplotlib's polygon test for the RTSTRUCT. Slices are placed with the source
files' own headers (pydicom) and the volume's geometry, never with the product's reader."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from matplotlib.path import Path as Polygon


def source_headers(folder: Path) -> dict[str, pydicom.Dataset]:
    """SOPInstanceUID -> header of every DICOM file in ``folder``."""
    out = {}
    for file in sorted(folder.iterdir()):
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue
        out[ds.SOPInstanceUID] = ds
    return out


def slice_index(grid: sitk.Image, position) -> int:
    index = grid.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in position))
    assert abs(index[0]) < 1e-3 and abs(index[1]) < 1e-3 and abs(index[2] - round(index[2])) < 1e-3, index
    return int(round(index[2]))


def seg_with_pydicom(path: Path, grid: sitk.Image) -> np.ndarray:
    """The SEG's frames placed by their PlanePositionSequence on ``grid`` ([z, y, x], bool)."""
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    out = np.zeros(sitk.GetArrayViewFromImage(grid).shape, bool)
    for frame, group in zip(frames, ds.PerFrameFunctionalGroupsSequence):
        out[slice_index(grid, group.PlanePositionSequence[0].ImagePositionPatient)] |= frame > 0
    return out


def seg_with_highdicom(path: Path, sources: dict[str, pydicom.Dataset], grid: sitk.Image) -> np.ndarray:
    """The SEG's segment 1 for each source instance (classic series), in the grid's slice order."""
    seg = hd.seg.segread(path)
    uids = sorted(sources, key=lambda uid: slice_index(grid, sources[uid].ImagePositionPatient))
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1])
    return pixels[..., 0] > 0


def rtstruct_filled(path: Path, sources: dict[str, pydicom.Dataset], grid: sitk.Image) -> np.ndarray:
    """Each contour mapped into its referenced slice's pixel frame (from that slice's own header),
    checked to lie in the slice's plane, and filled even-odd (inner contours are holes)."""
    ds = pydicom.dcmread(path)
    out = np.zeros(sitk.GetArrayViewFromImage(grid).shape, bool)
    rows, columns = np.mgrid[0 : out.shape[1], 0 : out.shape[2]]
    centres = np.column_stack([columns.ravel(), rows.ravel()])
    for contour in ds.ROIContourSequence[0].get("ContourSequence", []):
        assert contour.ContourGeometricType == "CLOSED_PLANAR"
        image = sources[contour.ContourImageSequence[0].ReferencedSOPInstanceUID]
        points = np.asarray(contour.ContourData, float).reshape(-1, 3)
        assert len(points) == contour.NumberOfContourPoints
        orientation = np.asarray(image.ImageOrientationPatient, float)
        row_dir, column_dir = orientation[:3], orientation[3:]
        offset = points - np.asarray(image.ImagePositionPatient, float)
        assert np.abs(offset @ np.cross(row_dir, column_dir)).max() < 1e-3  # on the slice's plane
        between_rows, between_columns = (float(v) for v in image.PixelSpacing)
        polygon = np.column_stack([offset @ row_dir / between_columns, offset @ column_dir / between_rows])
        inside = Polygon(polygon).contains_points(centres).reshape(out.shape[1:])
        z = slice_index(grid, image.ImagePositionPatient)
        out[z] ^= inside
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(a, b).sum()) / float(total)
