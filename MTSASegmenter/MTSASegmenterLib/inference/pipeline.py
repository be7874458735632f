"""One prediction, end to end: volume in, GTV mask on the volume's own grid and the report out.

Used by the command line, the Slicer module and the evaluator alike, so all three give the same
answer for the same volume and model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..io import terminology
from ..model.checkpoint import LoadedModel
from ..postprocess.component_filter import drop_unlikely_components
from ..postprocess.heads import head_answer, slice_values
from ..postprocess.lesion_features import measure_lesions
from ..postprocess.lesions import drop_weak_components, find_lesions
from ..postprocess.patient_model import LogisticModel
from .predictor import (
    Progress,
    ShouldCancel,
    SliceOutputs,
    default_batch_size,
    predict_slices,
    select_device,
)
from .preprocess import ModelGrid


@dataclass
class Prediction:
    mask: sitk.Image  # uint8 GTV mask on the input's own grid
    report: dict[str, Any]
    grid: ModelGrid
    slices: SliceOutputs
    volume: np.ndarray  # the normalised input on the model grid [z, y, x]
    segment: terminology.SegmentTerminology = terminology.GTV  # name and DICOM terminology of the mask


def orientation_code(image: sitk.Image) -> str:
    """Three-letter code of the nearest axis orientation (ITK's 'from' convention, e.g. 'LPS')."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())


def predict_volume(
    image: sitk.Image,
    model: LoadedModel,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    progress: Progress | None = None,
    should_cancel: ShouldCancel | None = None,
    case: str = "",
    source: str = "",
) -> Prediction:
    """Preprocess, predict the slices that hold tissue, map the GTV back and build the report."""
    start = time.perf_counter()
    torch_device = select_device(device)
    report_progress = progress or (lambda fraction, message: None)
    report_progress(0.0, "preprocessing")
    grid = ModelGrid.for_image(image, model.preprocess)
    volume = grid.image_to_grid(image)
    slices = grid.tissue_slices(volume)

    def network_progress(fraction: float, message: str) -> None:
        report_progress(0.05 + 0.85 * fraction, message)

    t_net = time.perf_counter()
    outputs = predict_slices(
        model.net,
        volume,
        slices,
        model.preprocess.context_slices,
        torch_device,
        batch_size or default_batch_size(torch_device, model.net_config),
        network_progress,
        should_cancel,
    )
    inference_s = time.perf_counter() - t_net
    segmentation = model.task("segmentation")
    dropped = 0
    if segmentation is not None:
        dropped = drop_weak_components(outputs.gtv_probability, segmentation.min_peak, segmentation.min_volume_ml, grid.spacing_zyx)
        if segmentation.component_model:
            dropped += drop_unlikely_components(outputs.gtv_probability, volume, grid.spacing_zyx,
                                                LogisticModel.from_dict(segmentation.component_model),
                                                segmentation.min_component_probability)
    report_progress(0.92, "mapping the GTV back to the input grid")
    probability = grid.grid_to_image(outputs.gtv_probability, image)
    mask = sitk.Cast(probability >= 0.5, sitk.sitkUInt8)
    mask.CopyInformation(image)
    report = build_report(image, mask, grid, outputs, model, case=case, source=source, volume=volume)
    if segmentation is not None:
        report["gtv"]["postprocessing"] = {"min_peak": segmentation.min_peak, "min_volume_ml": segmentation.min_volume_ml,
                                           "component_model": bool(segmentation.component_model),
                                           "min_component_probability": segmentation.min_component_probability,
                                           "components_dropped": dropped}
    report["device"] = str(torch_device)
    report["timing"] = {"total_s": round(time.perf_counter() - start, 3), "inference_s": round(inference_s, 3)}
    report_progress(1.0, "done")
    return Prediction(mask=mask, report=report, grid=grid, slices=outputs, volume=volume, segment=terminology.for_task(segmentation))


def build_report(
    image: sitk.Image,
    mask: sitk.Image,
    grid: ModelGrid,
    outputs: SliceOutputs,
    model: LoadedModel,
    *,
    case: str,
    source: str,
    volume: np.ndarray | None = None,
) -> dict[str, Any]:
    """The report; ``volume`` (the normalised model-grid volume) is needed by lesion-feature heads."""
    pixel_mm2 = model.preprocess.spacing_mm**2
    areas = {int(z): float((outputs.gtv_probability[z] >= 0.5).sum() * pixel_mm2) for z in outputs.class_logits}
    positions = grid.slice_positions_mm
    lesions = find_lesions(mask)
    report: dict[str, Any] = {
        "case": case,
        "input": {
            "path": source,
            "size": list(image.GetSize()),
            "spacing": [float(s) for s in image.GetSpacing()],
            "origin": [float(o) for o in image.GetOrigin()],
            "direction": [float(d) for d in image.GetDirection()],
            "orientation": orientation_code(image),
        },
        "model": {
            "name": model.info.name,
            "version": model.info.version,
            "sha256": model.sha256,
            "synthetic_only": model.info.synthetic_only,
        },
        "gtv": {
            "segment": terminology.for_task(model.task("segmentation")).to_report(),
            "volume_ml": round(sum(lesion.volume_ml for lesion in lesions), 4),
            "lesions": [lesion.to_dict() for lesion in lesions],
        },
        "slices": {
            "count": grid.n_slices,
            "predicted": int(len(outputs.predicted)),
            "spacing_mm": float(grid.reference.GetSpacing()[2]),
            "note": "slice indices count the model's axial slices from inferior to superior",
        },
    }
    values = slice_values(model.tasks, outputs.class_logits)
    needs_features = any(t.aggregation == "lesion_logistic" for t in model.tasks)
    if needs_features and volume is None:
        raise ValueError("a lesion-feature head needs the model-grid volume: pass volume to build_report")
    measured = None
    if needs_features:
        measured = measure_lesions(volume, outputs.gtv_probability >= 0.5, grid.spacing_zyx)
    report["heads"] = []
    for task in model.tasks:
        if not task.is_head:
            continue
        report[task.key] = head_answer(task, values[task.name], areas, positions, measured).to_dict()
        report["heads"].append(task.key)
    return report


def case_name(path: str | Path) -> str:
    """``scan.nii.gz`` -> ``scan``; a DICOM folder -> its folder name."""
    name = Path(path).name
    for suffix in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem if Path(path).is_file() else name
