"""Output files: Slicer's segmentation format (read back by slicerio and SimpleITK), atomic and never clobbering."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import lesion_volume
from MTSASegmenterLib.errors import OutputError
from MTSASegmenterLib.io import terminology
from MTSASegmenterLib.io.outputs import (
    atomic_outputs,
    check_writable,
    write_segmentation,
)

slicerio = pytest.importorskip("slicerio")


def oblique_mask() -> sitk.Image:
    _, mask = lesion_volume()
    mask = sitk.PermuteAxes(mask, [2, 0, 1])
    direction = np.array(mask.GetDirection()).reshape(3, 3)
    c, s = np.cos(0.2), np.sin(0.2)
    mask.SetDirection((np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ direction).ravel().tolist())
    return mask


def test_seg_nrrd_is_read_back_by_slicerio_with_terminology_and_geometry(tmp_path):
    mask = oblique_mask()
    path = tmp_path / "case.seg.nrrd"
    write_segmentation(mask, path)
    seg = slicerio.read_segmentation(str(path))
    (segment,) = seg["segments"]
    assert segment["name"] == "GTV" and segment["labelValue"] == 1
    term = segment["terminology"]
    assert tuple(term["category"]) == terminology.GTV.category
    assert tuple(term["type"]) == terminology.GTV.type
    assert tuple(term["anatomicRegion"]) == terminology.GTV.region
    direction = np.array(mask.GetDirection()).reshape(3, 3)
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = direction @ np.diag(mask.GetSpacing())
    ijk_to_lps[:3, 3] = mask.GetOrigin()
    assert np.allclose(seg["ijkToLPS"], ijk_to_lps, atol=1e-6)
    # slicerio gives voxels in IJK order; SimpleITK's array is [k, j, i]
    assert np.array_equal(seg["voxels"], sitk.GetArrayFromImage(mask).transpose(2, 1, 0))
    back = sitk.ReadImage(str(path))
    assert back.GetSize() == mask.GetSize() and np.allclose(back.GetDirection(), mask.GetDirection())
    assert np.allclose(back.GetOrigin(), mask.GetOrigin()) and np.allclose(back.GetSpacing(), mask.GetSpacing())


def test_empty_segmentation_is_still_a_valid_file(tmp_path):
    mask = sitk.Image([10, 12, 14], sitk.sitkUInt8)
    write_segmentation(mask, tmp_path / "empty.seg.nrrd")
    seg = slicerio.read_segmentation(str(tmp_path / "empty.seg.nrrd"))
    assert seg["segments"][0]["name"] == "GTV" and seg["voxels"].max() == 0


def test_existing_files_are_not_overwritten_without_consent(tmp_path):
    target = tmp_path / "case.json"
    target.write_text("mine")
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        check_writable([target], overwrite=False)
    check_writable([target], overwrite=True)


def test_an_output_folder_under_a_file_is_refused(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        check_writable([blocker / "out" / "case.json"], overwrite=False)


def test_failed_case_leaves_no_file_and_keeps_the_old_one(tmp_path):
    targets = [tmp_path / "case.seg.nrrd", tmp_path / "case.json"]
    targets[1].write_text("previous report")
    with pytest.raises(RuntimeError):
        with atomic_outputs(targets) as temps:
            temps[0].write_text("half")
            raise RuntimeError("crash while writing the report")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.json"]
    assert targets[1].read_text() == "previous report"
