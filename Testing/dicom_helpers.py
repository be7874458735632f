"""DICOM test series made from synthetic volumes: classic MR slices written with pydicom, and the
defects a real folder can hold (a missing slice, a duplicate instance, a second series, a stray file)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import MRImageStorage, generate_uid

PATIENT = {"PatientName": "Synthetic^Patient", "PatientID": "SYN-001", "PatientBirthDate": "19600101", "PatientSex": "F"}


def write_mr_series(
    image: sitk.Image,
    folder: Path,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    description: str = "T1 post-contrast",
    series_number: int = 3,
    transfer_syntax: str = pydicom.uid.ExplicitVRLittleEndian,
    prefix: str = "IM",
) -> list[Path]:
    """One classic MR file per slice of ``image`` (its geometry in ImagePositionPatient and
    ImageOrientationPatient, int16 pixels); returns the files in slice order."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid = study_uid or generate_uid(), series_uid or generate_uid()
    frame_of_reference_uid = frame_of_reference_uid or generate_uid()
    array = np.rint(sitk.GetArrayFromImage(image)).astype(np.int16)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    spacing = image.GetSpacing()
    paths = []
    for z in range(array.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        for key, value in PATIENT.items():
            setattr(ds, key, value)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_of_reference_uid
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "20230401", "101500", "1", "A1", ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = "MR", series_number, z + 1, description
        ds.Manufacturer, ds.PositionReferenceIndicator = "Synthetic", ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "GR", "SP", "", "3D"
        ds.EchoTime, ds.RepetitionTime, ds.EchoTrainLength, ds.MagneticFieldStrength = 3.0, 8.0, 1, 3.0
        ds.SliceThickness = spacing[2]
        ds.ImagePositionPatient = [round(float(v), 6) for v in image.TransformIndexToPhysicalPoint((0, 0, z))]
        ds.ImageOrientationPatient = [round(float(v), 8) for v in (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [spacing[1], spacing[0]]  # row spacing (between rows), column spacing
        ds.Rows, ds.Columns = array.shape[1], array.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
        ds.PixelData = array[z].tobytes()
        if transfer_syntax != pydicom.uid.ExplicitVRLittleEndian:
            ds.compress(transfer_syntax)
        path = folder / f"{prefix}{z + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def copy_series(files: list[Path], folder: Path, names: list[str] | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f.name for f in files]
    return [Path(shutil.copy(f, folder / n)) for f, n in zip(files, names)]


def shuffled_names(n: int, seed: int = 0) -> list[str]:
    """File names that say nothing about the slice order."""
    order = np.random.default_rng(seed).permutation(n)
    return [f"x{int(i) * 7919 % 10007:05d}" for i in order]


def mr_volume(size=(48, 40, 24), spacing=(0.9, 1.1, 2.0), direction=None, seed: int = 0) -> sitk.Image:
    """A small int16 MR-like volume with varying values (tissue ellipsoid, noise)."""
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in size[::-1]), indexing="ij")
    rng = np.random.default_rng(seed)
    values = np.where(x**2 + y**2 + z**2 < 0.8, 800.0, 20.0) + 30 * rng.standard_normal(x.shape)
    image = sitk.GetImageFromArray(values.astype(np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin((-20.0, -25.0, -30.0))
    if direction is not None:
        image.SetDirection(direction)
    return image


def oblique_direction(degrees: float = 20.0) -> tuple[float, ...]:
    """Axial tilted about the L axis: a rotation whose slices are not axial."""
    a = np.deg2rad(degrees)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    return tuple(rot.ravel())
