"""DICOM input that never lies: each defect a real folder can hold is refused saying where, or read
as if it were not there (duplicates, stray files, file names). Tests go through ``read_image`` and the
command line, the paths every caller uses."""

from __future__ import annotations

import shutil
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_helpers import copy_series, mr_volume, oblique_direction, shuffled_names, write_mr_series
from MTSASegmenterLib.cli import main
from MTSASegmenterLib.errors import InputError
from MTSASegmenterLib.io.imageio import read_image
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid


@pytest.fixture
def volume() -> sitk.Image:
    return mr_volume(direction=oblique_direction(20.0))  # oblique, non-square pixels: nothing lines up by luck


@pytest.fixture
def series(tmp_path: Path, volume: sitk.Image) -> list[Path]:
    return write_mr_series(volume, tmp_path / "source")


def assert_same_image(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)
    assert np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b))


def refused(capfd, path: Path, out: Path, *extra: str) -> str:
    """Run ``mtsa predict``; assert exit 2, one ``error:`` line and no output; return the line."""
    code = main(["predict", str(path), "--out", str(out), *extra])
    err = capfd.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err, err
    assert not out.exists() or not any(out.iterdir())
    return err


def test_series_reads_with_its_geometry(series, volume):
    assert_same_image(read_image(series[0].parent), volume)


def test_missing_slice_is_refused_saying_where(series, tmp_path, capfd):
    folder = series[0].parent
    series[10].unlink()
    with pytest.raises(InputError, match=r"not evenly spaced: 4 mm between slice positions .* \(IM0010.dcm, IM0012.dcm\) where the series steps 2 mm"):
        read_image(folder)
    assert "not evenly spaced" in refused(capfd, folder, tmp_path / "out")


def test_duplicate_instance_counts_once(series, volume, tmp_path):
    shutil.copy(series[7], series[0].parent / "copy_of_slice_8")
    assert_same_image(read_image(series[0].parent), volume)


def test_shuffled_names_and_stray_files_change_nothing(series, volume, tmp_path):
    folder = tmp_path / "shuffled"
    copy_series(series, folder, shuffled_names(len(series)))
    (folder / "README.txt").write_text("not DICOM")
    (folder / "DICOMDIR-like.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"broken")
    assert_same_image(read_image(folder), volume)


def test_two_stacks_at_the_same_positions_are_refused(series, volume, tmp_path, capfd):
    again = write_mr_series(volume, tmp_path / "second", prefix="B")  # same positions, other instances
    uid = pydicom.dcmread(series[0]).SeriesInstanceUID
    for path in again:
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = uid
        ds.save_as(series[0].parent / path.name)
    with pytest.raises(InputError, match="lie at the same slice position .* more than one stack"):
        read_image(series[0].parent)


def test_a_second_stack_further_along_is_refused(series, volume, tmp_path):
    shifted = sitk.Image(volume)
    shifted.SetOrigin(volume.TransformIndexToPhysicalPoint((0, 0, volume.GetSize()[2] + 5)))
    uid = pydicom.dcmread(series[0]).SeriesInstanceUID
    for path in write_mr_series(shifted, tmp_path / "later", prefix="L")[:6]:
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = uid
        ds.save_as(series[0].parent / path.name)
    with pytest.raises(InputError, match=r"not evenly spaced: 12 mm between .*\(IM0024.dcm, L0001.dcm\)"):
        read_image(series[0].parent)


def test_mixed_orientations_are_refused(series, capfd, tmp_path):
    ds = pydicom.dcmread(series[5])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]  # axial, among oblique slices
    ds.save_as(series[5])
    with pytest.raises(InputError, match=r"mixed slice orientations: .*IM0006.dcm \(1, 0, 0, 0, 1, 0\)"):
        read_image(series[0].parent)
    refused(capfd, series[0].parent, tmp_path / "out")


def test_several_series_are_listed_and_series_picks_one(series, volume, tmp_path, capfd):
    other = mr_volume(seed=3)
    write_mr_series(other, series[0].parent, description="FLAIR", prefix="F")
    uid = pydicom.dcmread(series[0]).SeriesInstanceUID
    err = refused(capfd, series[0].parent, tmp_path / "out")
    assert "holds 2 DICOM series" in err and uid in err and "'FLAIR'" in err and "24 images" in err and "--series UID" in err
    assert_same_image(read_image(series[0].parent, series_uid=uid), volume)
    with pytest.raises(InputError, match="no series 1.2.3; it holds"):
        read_image(series[0].parent, series_uid="1.2.3")


def test_enhanced_multiframe_reads_like_the_classic_series(series, volume, tmp_path):
    """One Legacy Converted Enhanced MR instance (frames stored in another order than the slices)."""
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage([pydicom.dcmread(p) for p in series], generate_uid(), 10, generate_uid(), 1)
    (tmp_path / "enhanced").mkdir()
    enhanced.save_as(tmp_path / "enhanced" / "volume.dcm")
    assert_same_image(read_image(tmp_path / "enhanced"), volume)
    assert_same_image(read_image(tmp_path / "enhanced" / "volume.dcm"), volume)  # the file alone, too


@pytest.mark.parametrize("syntax", [pydicom.uid.RLELossless, pydicom.uid.JPEGLSLossless])
def test_compressed_series_read_like_uncompressed(volume, tmp_path, syntax):
    assert_same_image(read_image(write_mr_series(volume, tmp_path / "c", transfer_syntax=syntax)[0].parent), volume)


def test_undecodable_transfer_syntax_gets_a_clear_error(series, tmp_path, capfd):
    ds = pydicom.dcmread(series[3])
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.201"  # HTJ2K lossless: GDCM cannot decode it
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 64])
    ds.save_as(series[3], enforce_file_format=True)
    err = refused(capfd, series[0].parent, tmp_path / "out")
    assert "IM0004.dcm: pixel data could not be decoded (transfer syntax High-Throughput JPEG 2000" in err


def test_nan_in_nifti_is_refused_although_simpleitk_reads_it_as_zero(tmp_path, capfd):
    values = sitk.GetArrayFromImage(mr_volume()).astype(np.float32)
    values[5, 6, 7], values[6, 6, 7] = np.nan, np.inf
    image = sitk.GetImageFromArray(values)
    for name in ("scan.nii.gz", "scan.nii"):
        sitk.WriteImage(image, str(tmp_path / name))
        assert np.isfinite(sitk.GetArrayViewFromImage(sitk.ReadImage(str(tmp_path / name)))).all()  # what SimpleITK hides
        with pytest.raises(InputError, match="2 voxels are NaN or infinite"):
            read_image(tmp_path / name)
    nib.save(nib.Nifti1Image(values.T, np.eye(4)), str(tmp_path / "nib.nii.gz"))
    assert "2 voxels are NaN or infinite" in refused(capfd, tmp_path / "nib.nii.gz", tmp_path / "out")
    sitk.WriteImage(image, str(tmp_path / "scan.nrrd"))
    with pytest.raises(InputError, match="2 voxels are NaN or infinite"):
        read_image(tmp_path / "scan.nrrd")


def test_the_real_series_reads_as_gdcm_reads_it(real_data):
    folder = real_data / "vs-seg-001-dicom"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    reference = sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    assert_same_image(read_image(folder), reference)
