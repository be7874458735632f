"""A DICOM series read so that its geometry cannot lie: one series chosen, each instance once,
slices sorted along their normal and refused unless they form one evenly spaced stack.

Radiosurgery plans on this geometry, so a missing slice, a second stack or a mixed orientation is
an error that says where, never a silent resampling (docs/ARCHITECTURE.md, "DICOM series
input"). pydicom reads the headers (which series, where each slice lies); SimpleITK's GDCM decodes
the pixels, so compressed transfer syntaxes read as well as uncompressed ones. Classic
single-frame series and enhanced (multi-frame) instances go through the same checks: every frame
is a slice with its own position.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ..errors import InputError

GDCM_DECODES = {  # the transfer syntaxes SimpleITK's GDCM reads: uncompressed, deflate, JPEG, JPEG-LS, JPEG 2000, RLE
    uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian, uid.ExplicitVRBigEndian, uid.DeflatedExplicitVRLittleEndian,
    uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1, uid.JPEGLSLossless, uid.JPEGLSNearLossless,
    uid.JPEG2000Lossless, uid.JPEG2000, uid.RLELossless,
}
NOT_IMAGES = {"SEG", "RTSTRUCT", "RTPLAN", "RTRECORD", "SR", "PR", "KO", "REG", "DOC"}
ORIENTATION_TOLERANCE = 1e-4  # direction cosines
IN_PLANE_TOLERANCE = 0.1  # share of a pixel a slice may sit off its stack's axis
SPACING_TOLERANCE = 0.01  # share of the slice step the gaps may differ by


@dataclass(frozen=True)
class Frame:
    """One slice of the source: its instance's header, file, 1-based frame number (multi-frame) and plane."""

    dataset: Dataset
    path: Path
    number: int | None
    position: np.ndarray  # ImagePositionPatient (LPS, mm)
    orientation: np.ndarray  # ImageOrientationPatient: row direction, column direction
    pixel_spacing: tuple[float, float]  # (between rows, between columns), mm

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.orientation[:3], self.orientation[3:])

    def where(self) -> str:
        return self.path.name + (f" frame {self.number}" if self.number else "")


@dataclass
class DicomSeries:
    """The volume and the source slices in its z order (what the DICOM writers reference)."""

    folder: Path
    image: sitk.Image
    frames: list[Frame]

    @property
    def reference(self) -> Dataset:
        return self.frames[0].dataset

    @property
    def instances(self) -> list[Dataset]:
        """Each source instance once, in the order its first slice appears."""
        seen: dict[str, Dataset] = {}
        for frame in self.frames:
            seen.setdefault(frame.dataset.SOPInstanceUID, frame.dataset)
        return list(seen.values())


def is_dicom_input(path: str | Path) -> bool:
    """A folder (read as a DICOM series) or a file that is DICOM (an enhanced multi-frame instance)."""
    path = Path(path)
    if path.is_dir():
        return True
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def read_dicom(path: str | Path, series_uid: str | None = None) -> DicomSeries:
    """Read the one (or the chosen) image series of a folder, or one DICOM file, checked as a stack."""
    path = Path(path)
    by_series = scan(path)
    instances = choose_series(path, by_series, series_uid)
    frames = sort_and_check(path, [f for p, ds in instances for f in frames_of(p, ds)])
    return DicomSeries(path, _read_pixels(path, frames), frames)


def scan(path: Path) -> dict[str, list[tuple[Path, Dataset]]]:
    """Image instances by SeriesInstanceUID, each SOPInstanceUID once; files that are not DICOM are skipped."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    by_series: dict[str, list[tuple[Path, Dataset]]] = {}
    seen: set[str] = set()
    for file in files:
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, AttributeError):
            continue
        instance = str(ds.get("SOPInstanceUID", ""))
        if not instance or instance in seen or str(ds.get("Modality", "")) in NOT_IMAGES or "Rows" not in ds:
            continue
        seen.add(instance)
        by_series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((file, ds))
    return by_series


def choose_series(path: Path, by_series: dict[str, list[tuple[Path, Dataset]]], series_uid: str | None) -> list[tuple[Path, Dataset]]:
    if not by_series:
        raise InputError(f"{path}: holds no DICOM image series")
    if series_uid is not None and series_uid in by_series:
        return by_series[series_uid]
    listing = "; ".join(f"{series} ({_description(items)}, {_count(items)} images)" for series, items in by_series.items())
    if series_uid is not None:
        raise InputError(f"{path}: no series {series_uid}; it holds {listing}")
    if len(by_series) > 1:
        raise InputError(f"{path}: holds {len(by_series)} DICOM series: {listing}; pick one with --series UID")
    return next(iter(by_series.values()))


def _description(items: list[tuple[Path, Dataset]]) -> str:
    ds = items[0][1]
    return repr(str(ds.get("SeriesDescription", "")) or f"{ds.get('Modality', '?')} series {ds.get('SeriesNumber', '?')}")


def _count(items: list[tuple[Path, Dataset]]) -> int:
    return sum(int(ds.get("NumberOfFrames", 1) or 1) for _, ds in items)


def frames_of(path: Path, ds: Dataset) -> list[Frame]:
    """The slices of one instance: itself, or each frame of a multi-frame instance."""
    if "PerFrameFunctionalGroupsSequence" not in ds:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise InputError(f"{path}: multi-frame image without per-frame positions; its slices cannot be placed")
        return [_frame(path, ds, None, ds)]
    shared = ds.get("SharedFunctionalGroupsSequence", [Dataset()])[0]
    frames = []
    for number, group in enumerate(ds.PerFrameFunctionalGroupsSequence, start=1):
        plane = Dataset()
        for sequence, keyword in (("PlanePositionSequence", "ImagePositionPatient"),
                                  ("PlaneOrientationSequence", "ImageOrientationPatient"),
                                  ("PixelMeasuresSequence", "PixelSpacing")):
            item = group.get(sequence) or shared.get(sequence)
            if item and keyword in item[0]:
                setattr(plane, keyword, item[0][keyword].value)
        frames.append(_frame(path, ds, number, plane))
    return frames


def _frame(path: Path, ds: Dataset, number: int | None, plane: Dataset) -> Frame:
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        if keyword not in plane or plane[keyword].value in (None, ""):
            raise InputError(f"{path}: {f'frame {number} ' if number else ''}has no {keyword}; its slice cannot be placed")
    return Frame(ds, path, number, np.asarray(plane.ImagePositionPatient, float), np.asarray(plane.ImageOrientationPatient, float),
                 (float(plane.PixelSpacing[0]), float(plane.PixelSpacing[1])))


def sort_and_check(path: Path, frames: list[Frame]) -> list[Frame]:
    """Frames sorted along the slice normal; refused unless one evenly spaced stack of equal slices."""
    first = frames[0]
    for frame in frames[1:]:
        if not np.allclose(frame.orientation, first.orientation, atol=ORIENTATION_TOLERANCE):
            raise InputError(f"{path}: mixed slice orientations: {first.where()} {_fmt(first.orientation)}, "
                             f"{frame.where()} {_fmt(frame.orientation)}; one stack of parallel slices is needed")
        shape, other = (first.dataset.Rows, first.dataset.Columns), (frame.dataset.Rows, frame.dataset.Columns)
        if shape != other or not np.allclose(frame.pixel_spacing, first.pixel_spacing, rtol=1e-4):
            raise InputError(f"{path}: slices differ in size or pixel spacing: {first.where()} {shape} at {first.pixel_spacing} mm, "
                             f"{frame.where()} {other} at {frame.pixel_spacing} mm")
    normal = first.normal
    frames = sorted(frames, key=lambda f: float(normal @ f.position))
    along = np.array([normal @ f.position for f in frames])
    off_axis = [np.linalg.norm(f.position - frames[0].position - normal * (a - along[0])) for f, a in zip(frames, along)]
    worst = int(np.argmax(off_axis))
    if off_axis[worst] > IN_PLANE_TOLERANCE * min(first.pixel_spacing):
        raise InputError(f"{path}: slices are not stacked along their normal: {frames[worst].where()} lies {off_axis[worst]:.2f} mm "
                         f"beside the axis through {frames[0].where()} (gantry tilt or shifted stacks)")
    if len(frames) < 2:
        return frames
    gaps = np.diff(along)
    same = np.flatnonzero(gaps < 1e-3)
    if same.size:
        i = int(same[0])
        raise InputError(f"{path}: {frames[i].where()} and {frames[i + 1].where()} lie at the same slice position "
                         f"{along[i]:.2f} mm: the series holds more than one stack (echoes, phases or repeats)")
    step = float(np.median(gaps))
    uneven = np.flatnonzero(np.abs(gaps - step) > max(SPACING_TOLERANCE * step, 1e-3))
    if uneven.size:
        i = int(uneven[0])
        more = f" (and {uneven.size - 1} more uneven gap(s))" if uneven.size > 1 else ""
        raise InputError(f"{path}: slices are not evenly spaced: {gaps[i]:.3g} mm between slice positions {along[i]:.2f} and "
                         f"{along[i + 1]:.2f} mm ({frames[i].where()}, {frames[i + 1].where()}) where the series steps {step:.3g} mm"
                         f"{more}; a missing slice or two stacks")
    return frames


def _fmt(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values) + ")"


def _read_pixels(path: Path, frames: list[Frame]) -> sitk.Image:
    """Decode each file once (GDCM: compressed syntaxes included), stack the frames in sorted order, set the checked geometry."""
    decoded: dict[Path, np.ndarray] = {}
    for file, ds in {f.path: f.dataset for f in frames}.items():
        syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID", uid.ImplicitVRLittleEndian)
        try:
            if syntax not in GDCM_DECODES:  # asked anyway, GDCM's codecs print to the terminal before failing
                raise RuntimeError(syntax)
            decoded[file] = sitk.GetArrayFromImage(sitk.ReadImage(str(file)))
        except RuntimeError:
            raise InputError(f"{path}: {file.name}: pixel data could not be decoded (transfer syntax {getattr(syntax, 'name', syntax)}); "
                             "convert the series to an uncompressed syntax first (e.g. gdcmconv --raw)") from None
    planes = [decoded[f.path][(f.number or 1) - 1] for f in frames]
    dtype = np.result_type(*{p.dtype for p in planes})
    image = sitk.GetImageFromArray(np.stack(planes).astype(dtype, copy=False))
    first = frames[0]
    row, column = first.orientation[:3], first.orientation[3:]
    steps = np.diff([first.normal @ f.position for f in frames])
    image.SetSpacing((first.pixel_spacing[1], first.pixel_spacing[0], float(np.mean(steps)) if steps.size else _thickness(first)))
    image.SetOrigin(tuple(float(v) for v in first.position))
    image.SetDirection(tuple(np.column_stack([row, column, first.normal]).ravel()))
    return image


def _thickness(frame: Frame) -> float:
    value = frame.dataset.get("SpacingBetweenSlices") or frame.dataset.get("SliceThickness") or 1.0
    return float(value)
