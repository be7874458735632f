"""The GTV as an RT Structure Set (``<case>.rtstruct.dcm``) that a radiosurgery planning system imports.

One ROI (observation type GTV) whose closed planar contours lie on the source slices, each
referencing its slice, in the source's frame of reference and study, as a new series.

Written with pydicom rather than rt-utils (the kept library for this IOD): rt-utils 1.2.7 scales
the column index by the row spacing, so on a scan with non-square pixels every contour lands in
the wrong place, and it pulls in the GUI build of OpenCV beside our headless one. highdicom has
no RTSTRUCT writer.

Contours are marching squares at 0.5 (scikit-image) around each slice's mask: they run half a
pixel outside the border pixels' centres, so a rasteriser that fills pixels whose centres lie
inside gives the mask back; holes are inner contours (even-odd fill, as planning systems read them).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid
from skimage.measure import approximate_polygon, find_contours

from .. import __version__
from .dicom_common import MANUFACTURER, RTSTRUCT_SERIES_NUMBER, DicomSource
from .dicom_series import Frame
from .terminology import SegmentTerminology

PATIENT_KEYWORDS = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "PatientAge")
STUDY_KEYWORDS = ("StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
                  "StudyDescription")
TYPE_2 = {"PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "ReferringPhysicianName",
          "StudyID", "AccessionNumber"}
ROI_NUMBER = 1


def write_rtstruct(mask: sitk.Image, source: DicomSource, segment: SegmentTerminology, path: Path) -> None:
    """``mask`` lies on ``source.series.image``'s grid (z in the series' sorted slice order)."""
    ds = _structure_set(source, segment)
    array = sitk.GetArrayViewFromImage(mask) > 0
    contours = Sequence()
    for z, frame in enumerate(source.series.frames):
        for points in slice_contours(array[z], frame):
            item = Dataset()
            item.ContourImageSequence = Sequence([_image_reference(frame)])
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(points)
            item.ContourNumber = len(contours) + 1
            item.ContourData = [f"{v:.4f}" for v in points.ravel()]
            contours.append(item)
    roi = Dataset()
    roi.ReferencedROINumber = ROI_NUMBER
    roi.ROIDisplayColor = [int(round(255 * c)) for c in segment.color]
    if contours:
        roi.ContourSequence = contours
    ds.ROIContourSequence = Sequence([roi])
    ds.save_as(path, enforce_file_format=True)


def slice_contours(mask: np.ndarray, frame: Frame) -> list[np.ndarray]:
    """Closed contours of one slice's mask as [n, 3] patient coordinates (LPS, mm), last point not repeated."""
    if not mask.any():
        return []
    padded = np.pad(mask.astype(np.float32), 1)
    row_direction, column_direction = frame.orientation[:3], frame.orientation[3:]
    between_rows, between_columns = frame.pixel_spacing
    out = []
    for contour in find_contours(padded, 0.5):
        contour = approximate_polygon(contour - 1.0, tolerance=0.01)[:-1]  # (row, column); closed, so drop the repeat
        if len(contour) < 3:
            continue
        rows, columns = contour[:, :1], contour[:, 1:]
        out.append(frame.position + columns * between_columns * row_direction + rows * between_rows * column_direction)
    return out


def _image_reference(frame: Frame) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = frame.dataset.SOPClassUID
    ref.ReferencedSOPInstanceUID = frame.dataset.SOPInstanceUID
    if frame.number is not None:
        ref.ReferencedFrameNumber = frame.number
    return ref


def _structure_set(source: DicomSource, segment: SegmentTerminology) -> FileDataset:
    """Patient, study, RT series, equipment, structure set, ROI and observation modules; contours come after."""
    series, reference = source.series, source.series.reference
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = RTStructureSetStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    now = datetime.now()
    ds.SpecificCharacterSet = reference.get("SpecificCharacterSet", "ISO_IR 100")
    ds.SOPClassUID, ds.SOPInstanceUID = RTStructureSetStorage, meta.MediaStorageSOPInstanceUID
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    for keyword in PATIENT_KEYWORDS + STUDY_KEYWORDS:
        if keyword in reference:
            ds[keyword] = reference[keyword]
        elif keyword in TYPE_2:
            setattr(ds, keyword, "")
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "RTSTRUCT", generate_uid(), RTSTRUCT_SERIES_NUMBER
    ds.SeriesDescription = f"{segment.name} ({source.algorithm.name})"[:64]
    ds.SeriesDate, ds.SeriesTime, ds.OperatorsName, ds.InstanceNumber = ds.InstanceCreationDate, ds.InstanceCreationTime, "", 1
    ds.FrameOfReferenceUID = reference.FrameOfReferenceUID
    ds.PositionReferenceIndicator = reference.get("PositionReferenceIndicator", "")
    ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions = MANUFACTURER, source.algorithm.name[:64], __version__
    ds.StructureSetLabel, ds.StructureSetName = segment.name[:16], f"{segment.name} {source.algorithm.name}"[:64]
    ds.StructureSetDate, ds.StructureSetTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    ds.ApprovalStatus = "UNAPPROVED"  # drawn by a model: a person approves it in the planning system

    referenced_series = Dataset()
    referenced_series.SeriesInstanceUID = reference.SeriesInstanceUID
    referenced_series.ContourImageSequence = Sequence([_image_reference(f) for f in series.frames])
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management: what readers expect here
    study.ReferencedSOPInstanceUID = reference.StudyInstanceUID
    study.RTReferencedSeriesSequence = Sequence([referenced_series])
    frame_of_reference = Dataset()
    frame_of_reference.FrameOfReferenceUID = reference.FrameOfReferenceUID
    frame_of_reference.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame_of_reference])

    roi = Dataset()
    roi.ROINumber, roi.ReferencedFrameOfReferenceUID, roi.ROIName = ROI_NUMBER, reference.FrameOfReferenceUID, segment.name
    roi.ROIGenerationAlgorithm, roi.ROIGenerationDescription = "AUTOMATIC", source.algorithm.description()[:64]
    ds.StructureSetROISequence = Sequence([roi])
    observation = Dataset()
    observation.ObservationNumber, observation.ReferencedROINumber = 1, ROI_NUMBER
    observation.RTROIInterpretedType, observation.ROIInterpreter = "GTV", ""
    identification = Dataset()
    identification.CodingSchemeDesignator, identification.CodeValue, identification.CodeMeaning = segment.type
    observation.RTROIIdentificationCodeSequence = Sequence([identification])
    ds.RTROIObservationsSequence = Sequence([observation])
    return ds
