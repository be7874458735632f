"""What the two DICOM outputs (SEG and RTSTRUCT) share: the source series they reference, the model
that drew the GTV, and the check, made before any work, that the source can be referenced."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from .dicom_series import DicomSeries

MANUFACTURER = "MTSASegmenter"
SEG_SERIES_NUMBER = 901  # the outputs are new series of the source study
RTSTRUCT_SERIES_NUMBER = 902
REQUIRED_REFERENCES = ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "SOPClassUID")


@dataclass(frozen=True)
class Algorithm:
    """The model that drew the segment, as the DICOM outputs identify it."""

    name: str
    version: str
    sha256: str

    def description(self) -> str:
        return f"{self.name} {self.version} (sha256 {self.sha256[:16]})"


@dataclass(frozen=True)
class DicomSource:
    """What a DICOM output needs beyond the mask: the source series and the algorithm."""

    series: DicomSeries
    algorithm: Algorithm


def require_references(series: DicomSeries) -> None:
    """Refuse a source whose outputs could not point back at it (a missing study or frame of reference)."""
    for keyword in REQUIRED_REFERENCES:
        if not str(series.reference.get(keyword, "")).strip():
            raise InputError(f"{series.folder}: the series has no {keyword}; DICOM outputs could not reference it")
