"""DICOM SEG and RTSTRUCT of a DICOM input, read back by independent readers: pixels, contours,
codes and every reference (study, series, frame of reference, source instances)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_helpers import PATIENT, mr_volume, oblique_direction, write_mr_series
from dicom_readback import dice, rtstruct_filled, seg_with_highdicom, seg_with_pydicom, slice_index, source_headers
from MTSASegmenterLib.errors import OutputError
from MTSASegmenterLib.io import terminology
from MTSASegmenterLib.io.dicom_common import Algorithm, DicomSource
from MTSASegmenterLib.io.dicom_series import read_dicom
from MTSASegmenterLib.io.outputs import write_prediction_files
from pydicom.uid import generate_uid

ALGORITHM = Algorithm("MTSA-Net (test)", "1.2.3", "0123456789abcdef" * 4)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, sitk.Image]:
    """An oblique series with non-square pixels (1.1 x 0.9 mm): a swapped spacing or axis would show."""
    volume = mr_volume(size=(64, 56, 30), spacing=(0.9, 1.1, 2.0), direction=oblique_direction(25.0))
    folder = tmp_path_factory.mktemp("dicom") / "series"
    write_mr_series(volume, folder)
    return folder, volume


def lesions(grid: sitk.Image) -> sitk.Image:
    """Three lesions of different sizes, one with a hole, one touching the field's edge."""
    z, y, x = np.meshgrid(*(np.arange(n) for n in grid.GetSize()[::-1]), indexing="ij")
    spacing = grid.GetSpacing()
    mask = np.zeros(z.shape, bool)
    for (cz, cy, cx), r in (((12, 20, 20), 7.0), ((20, 40, 45), 4.0), ((6, 10, 62), 5.0)):
        mask |= ((z - cz) * spacing[2]) ** 2 + ((y - cy) * spacing[1]) ** 2 + ((x - cx) * spacing[0]) ** 2 <= r**2
    mask[12, 19:22, 19:22] = False  # a cavity: inner contours on that slice
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(grid)
    return image


def write(folder: Path, mask_of, out: Path, formats=(".seg.nrrd", ".seg.dcm", ".rtstruct.dcm")):
    series = read_dicom(folder)
    mask = mask_of(series.image)
    targets = [out / f"case{suffix}" for suffix in formats]
    write_prediction_files(targets, mask, {"case": "case"}, segment=terminology.GTV, dicom=DicomSource(series, ALGORITHM))
    return mask, targets


def test_seg_pixels_and_references(source, tmp_path):
    folder, volume = source
    mask, (nrrd, seg_path, _) = write(folder, lesions, tmp_path)
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(nrrd))) > 0
    assert np.array_equal(truth, sitk.GetArrayFromImage(mask) > 0)
    sources = source_headers(folder)
    assert dice(seg_with_pydicom(seg_path, volume), truth) >= 0.99
    assert dice(seg_with_highdicom(seg_path, sources, volume), truth) >= 0.99
    assert np.array_equal(seg_with_pydicom(seg_path, volume), truth)  # lossless, in fact

    ds, first = pydicom.dcmread(seg_path), next(iter(sources.values()))
    assert ds.PatientID == PATIENT["PatientID"] and ds.PatientName == PATIENT["PatientName"]
    assert ds.StudyInstanceUID == first.StudyInstanceUID and ds.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert ds.SeriesInstanceUID != first.SeriesInstanceUID and ds.SegmentationType == "BINARY"
    referenced = ds.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == first.SeriesInstanceUID
    assert {r.ReferencedSOPInstanceUID for r in referenced.ReferencedInstanceSequence} <= set(sources)
    for group in ds.PerFrameFunctionalGroupsSequence:
        assert group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID in sources

    segment = hd.seg.segread(seg_path).get_segment_description(1)
    gtv = terminology.GTV
    assert segment.segment_label == "GTV"
    assert (segment.segmented_property_type.value, segment.segmented_property_type.scheme_designator) == gtv.type[1::-1]
    assert (segment.segmented_property_category.value, segment.segmented_property_category.meaning) == gtv.category[1:]
    assert segment.anatomic_regions[0].value == gtv.region[1]
    algorithm = segment.algorithm_identification[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == (ALGORITHM.name, ALGORITHM.version)
    assert ALGORITHM.sha256 in algorithm.AlgorithmParameters


def test_rtstruct_contours_fill_back_to_the_mask(source, tmp_path):
    folder, volume = source
    mask, (_, _, rt_path) = write(folder, lesions, tmp_path)
    truth = sitk.GetArrayFromImage(mask) > 0
    sources = source_headers(folder)
    filled = rtstruct_filled(rt_path, sources, volume)
    assert dice(filled, truth) >= 0.85  # the contract; marching squares at 0.5 in fact gives the mask back
    assert dice(filled, truth) >= 0.99

    ds, first = pydicom.dcmread(rt_path), next(iter(sources.values()))
    assert ds.Modality == "RTSTRUCT" and ds.StudyInstanceUID == first.StudyInstanceUID and ds.PatientID == first.PatientID
    assert ds.SeriesInstanceUID != first.SeriesInstanceUID
    (roi,), (observation,) = ds.StructureSetROISequence, ds.RTROIObservationsSequence
    assert roi.ROIName == "GTV" and roi.ROIGenerationAlgorithm == "AUTOMATIC" and ALGORITHM.name in roi.ROIGenerationDescription
    assert observation.RTROIInterpretedType == "GTV" and observation.ReferencedROINumber == roi.ROINumber
    assert roi.ReferencedFrameOfReferenceUID == first.FrameOfReferenceUID
    frame_of_reference = ds.ReferencedFrameOfReferenceSequence[0]
    assert frame_of_reference.FrameOfReferenceUID == first.FrameOfReferenceUID
    referenced = frame_of_reference.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == first.SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in referenced.ContourImageSequence} == set(sources)
    on_slice_12 = [c for c in ds.ROIContourSequence[0].ContourSequence
                   if slice_index(volume, sources[c.ContourImageSequence[0].ReferencedSOPInstanceUID].ImagePositionPatient) == 12]
    assert len(on_slice_12) == 2  # the lesion's outer contour and its cavity


def test_enhanced_source_is_referenced_frame_by_frame(source, tmp_path):
    folder, volume = source
    files = sorted(folder.iterdir())
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage([pydicom.dcmread(p) for p in files], generate_uid(), 10, generate_uid(), 1)
    (tmp_path / "enhanced").mkdir()
    enhanced.save_as(tmp_path / "enhanced" / "volume.dcm")
    mask, (_, seg_path, rt_path) = write(tmp_path / "enhanced", lesions, tmp_path / "out")
    truth = sitk.GetArrayFromImage(mask) > 0
    assert np.array_equal(seg_with_pydicom(seg_path, volume), truth)
    positions = [np.asarray(g.PlanePositionSequence[0].ImagePositionPatient, float) for g in enhanced.PerFrameFunctionalGroupsSequence]
    ds = pydicom.dcmread(rt_path)
    for contour in ds.ROIContourSequence[0].ContourSequence:
        reference = contour.ContourImageSequence[0]
        assert reference.ReferencedSOPInstanceUID == enhanced.SOPInstanceUID
        normal = np.cross(*np.asarray(enhanced.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient, float).reshape(2, 3))
        offset = np.asarray(contour.ContourData, float).reshape(-1, 3) - positions[reference.ReferencedFrameNumber - 1]
        assert np.abs(offset @ normal).max() < 1e-3  # on the frame it names


def test_empty_gtv_gives_valid_empty_outputs(source, tmp_path):
    folder, volume = source

    def empty(grid):
        image = sitk.Image(grid.GetSize(), sitk.sitkUInt8)
        image.CopyInformation(grid)
        return image

    _, (_, seg_path, rt_path) = write(folder, empty, tmp_path)
    assert not seg_with_pydicom(seg_path, volume).any()
    assert "ContourSequence" not in pydicom.dcmread(rt_path).ROIContourSequence[0]
    validate_if_possible(seg_path, rt_path)


def test_outputs_pass_dciodvfy(source, tmp_path):
    folder, _ = source
    _, (_, seg_path, rt_path) = write(folder, lesions, tmp_path)
    validate_if_possible(seg_path, rt_path, required=True)


def validate_if_possible(*paths: Path, required: bool = False) -> None:
    """dicom3tools' dciodvfy (Debian: apt-get install dicom3tools) where installed; CI does not depend on it."""
    if shutil.which("dciodvfy") is None:
        if required:
            pytest.skip("dciodvfy (Debian package dicom3tools) not installed")
        return
    for path in paths:
        run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        report = run.stdout + run.stderr
        assert "Error" not in report, report


def test_writes_stay_all_or_nothing(source, tmp_path, monkeypatch):
    import MTSASegmenterLib.io.rtstruct as rtstruct

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rtstruct, "write_rtstruct", fail)  # a disk that fills up on the last file
    with pytest.raises(OutputError, match="No space left on device"):
        write(source[0], lesions, tmp_path / "out")
    assert not any((tmp_path / "out").iterdir())


def test_real_series_round_trip(real_data, tmp_path):
    """Known lesions on the real 512 x 512 x 120 planning series: both outputs give them back."""
    folder = real_data / "vs-seg-001-dicom"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    mask, (_, seg_path, rt_path) = write(folder, lesions, tmp_path)
    truth, grid = sitk.GetArrayFromImage(mask) > 0, mask
    assert truth.sum() > 1000
    sources = source_headers(folder)
    assert dice(seg_with_highdicom(seg_path, sources, grid), truth) >= 0.99
    assert dice(rtstruct_filled(rt_path, sources, grid), truth) >= 0.85
    validate_if_possible(seg_path, rt_path)
