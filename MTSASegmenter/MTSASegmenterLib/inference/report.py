"""The report of one prediction: typed, versioned, built once by the pipeline.

``Report.to_dict()`` is the ``<case>.json`` contract (docs/ARCHITECTURE.md "Report", README "The
report"): every key keeps its name and meaning, and ``report_version`` says which layout it is.
Reports written before the key existed have version 1's keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import SimpleITK as sitk

from ..config import ModelInfo, TaskSpec
from ..io.terminology import SegmentTerminology
from ..postprocess.heads import HeadAnswer
from ..postprocess.lesions import Lesion
from .preprocess import ModelGrid

REPORT_VERSION = 1
SLICE_NOTE = "slice indices count the model's axial slices from inferior to superior"
# From this spacing on, lesions of 5-10 mm lie in one or two slices and are lost more often (model card, "A fresh
# external draw": lesion sensitivity by slice spacing).
THICK_SLICE_MM = 4.0


@dataclass(frozen=True)
class InputSummary:
    """The input volume's path and geometry (LPS, as ITK gives it)."""

    path: str
    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    orientation: str  # nearest axis orientation, ITK's 'from' convention (e.g. 'LPS')
    zero: float = 0.0  # the value read as no signal (preprocess.signal_free_level): not 0 for signed or z-scored data
    fill: float | None = None  # a value filling the outside of a mask, read as ``zero``
    tissue_span_mm: tuple[float, float] = (0.0, 0.0)  # in-plane extent of the tissue (ModelGrid.tissue_span_mm)
    field_mm: float = float("inf")  # in-plane width the model predicts (ModelGrid.field_mm)

    @classmethod
    def of(cls, image: sitk.Image, path: str, grid: ModelGrid) -> "InputSummary":
        return cls(path, tuple(image.GetSize()), tuple(float(s) for s in image.GetSpacing()),
                   tuple(float(o) for o in image.GetOrigin()), tuple(float(d) for d in image.GetDirection()),
                   sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection()),
                   grid.stats.zero, grid.stats.fill, grid.tissue_span_mm, grid.field_mm)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": list(self.size), "spacing": list(self.spacing), "origin": list(self.origin),
                "direction": list(self.direction), "orientation": self.orientation}

    def cautions(self) -> list[str]:
        """What about the scan makes its GTV less trustworthy, in words a clinician can act on; empty for a typical scan."""
        cautions = []
        thickest = max(self.spacing)
        if thickest >= THICK_SLICE_MM:
            cautions.append(f"{thickest:.1f} mm slices: lesions under about {2 * thickest:.0f} mm lie in one or two slices and "
                            "are easily missed or under-segmented; radiosurgery is planned on 1-1.5 mm slices")
        if self.zero:
            outside = f", and {self.fill:.4g} outside its mask as the same" if self.fill is not None else ""
            cautions.append(f"not stored as MR magnitudes (signed, offset or z-scored data): {self.zero:.4g} read as no "
                            f"signal{outside}; the model learnt MR magnitudes, so check the GTV with care and predict the "
                            "scanner's own images where you can")
        if max(self.tissue_span_mm) > self.field_mm:
            spacing = " x ".join(f"{s:.3g}" for s in self.spacing)
            cautions.append(f"the tissue spans {self.tissue_span_mm[0]:.0f} x {self.tissue_span_mm[1]:.0f} mm in-plane, "
                            f"wider than the {self.field_mm:.0f} mm the model sees: only the central {self.field_mm:.0f} mm are "
                            f"segmented; if the anatomy is not that wide, the header's voxel spacing ({spacing} mm) is wrong")
        return cautions


@dataclass(frozen=True)
class ModelSummary:
    name: str
    version: str
    sha256: str  # of the checkpoint file
    synthetic_only: bool  # trained only on synthetic phantoms: not for clinical use

    @classmethod
    def of(cls, info: ModelInfo, sha256: str) -> "ModelSummary":
        return cls(info.name, info.version, sha256, info.synthetic_only)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "synthetic_only": self.synthetic_only}


@dataclass(frozen=True)
class DroppedSummary:
    """One component the filter removed: where, how large, its rating and the features against it."""

    volume_ml: float
    centroid_ras: tuple[float, float, float]
    rating: float
    reasons: dict[str, float]  # feature -> contribution to the component model's logit

    def to_dict(self) -> dict[str, Any]:
        return {"volume_ml": round(self.volume_ml, 4), "centroid_ras": [round(c, 2) for c in self.centroid_ras],
                "rating": round(self.rating, 4), "reasons": self.reasons}


@dataclass(frozen=True)
class Postprocessing:
    """The segmentation task's component filter, as applied, and what it removed (and why)."""

    min_peak: float
    min_volume_ml: float
    component_model: bool  # a fitted component model rated the components
    min_component_probability: float
    components_dropped: int
    dropped: tuple[DroppedSummary, ...] = ()  # those the component model rated below its threshold

    @classmethod
    def of(cls, task: TaskSpec, components_dropped: int, dropped: tuple[DroppedSummary, ...] = ()) -> "Postprocessing":
        return cls(task.min_peak, task.min_volume_ml, bool(task.component_model), task.min_component_probability,
                   components_dropped, dropped)

    def to_dict(self) -> dict[str, Any]:
        return {"min_peak": self.min_peak, "min_volume_ml": self.min_volume_ml, "component_model": self.component_model,
                "min_component_probability": self.min_component_probability, "components_dropped": self.components_dropped,
                "dropped": [d.to_dict() for d in self.dropped]}


@dataclass(frozen=True)
class GTVSummary:
    segment: SegmentTerminology
    lesions: list[Lesion]  # on the input's grid, largest first
    postprocessing: Postprocessing | None  # None: the model has no segmentation task

    @property
    def volume_ml(self) -> float:
        return round(sum(lesion.volume_ml for lesion in self.lesions), 4)

    def to_dict(self) -> dict[str, Any]:
        d = {"segment": self.segment.to_report(), "volume_ml": self.volume_ml, "lesions": [les.to_dict() for les in self.lesions]}
        if self.postprocessing is not None:
            d["postprocessing"] = self.postprocessing.to_dict()
        return d


@dataclass(frozen=True)
class SliceSummary:
    count: int  # the model grid's axial slices
    predicted: int  # those the network saw (the others hold no tissue)
    spacing_mm: float

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "predicted": self.predicted, "spacing_mm": self.spacing_mm, "note": SLICE_NOTE}


@dataclass(frozen=True)
class Timing:
    total_s: float  # from the caller's start (e.g. reading the input) to the finished report
    inference_s: float  # the network alone

    def to_dict(self) -> dict[str, float]:
        return {"total_s": round(self.total_s, 3), "inference_s": round(self.inference_s, 3)}


@dataclass(frozen=True)
class Report:
    case: str
    input: InputSummary
    model: ModelSummary
    gtv: GTVSummary
    slices: SliceSummary
    heads: dict[str, HeadAnswer]  # report key (TaskSpec.key) -> answer, in the checkpoint's order
    device: str
    timing: Timing
    version: int = REPORT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: each head's answer under its own key, ``heads`` listing those keys."""
        return {"report_version": self.version, "case": self.case, "input": self.input.to_dict(), "model": self.model.to_dict(),
                "gtv": self.gtv.to_dict(), "slices": self.slices.to_dict(), "heads": list(self.heads),
                **{key: answer.to_dict() for key, answer in self.heads.items()},
                "device": self.device, "timing": self.timing.to_dict(), "cautions": self.input.cautions()}
