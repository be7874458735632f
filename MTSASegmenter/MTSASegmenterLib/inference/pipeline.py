"""One prediction, end to end: volume in, GTV mask on the volume's own grid and the report out.

Used by the command line, the Slicer module and the evaluator alike, so all three give the same
answer for the same volume and model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..config import TaskSpec
from ..io import terminology
from ..model.checkpoint import LoadedModel
from ..postprocess.aggregation import LESION_LOGISTIC
from ..postprocess.component_filter import drop_unlikely_components
from ..postprocess.heads import HeadAnswer, head_answer, slice_values
from ..postprocess.lesion_features import measure_lesions
from ..postprocess.lesions import drop_weak_components, find_lesions
from ..postprocess.patient_model import LogisticModel
from ..progress import Progress, ShouldCancel
from .predictor import SliceOutputs, default_batch_size, predict_slices, select_device
from .preprocess import ModelGrid
from .report import DroppedSummary, GTVSummary, InputSummary, ModelSummary, Postprocessing, Report, SliceSummary, Timing


@dataclass
class Prediction:
    mask: sitk.Image  # uint8 GTV mask on the input's own grid
    report: Report
    grid: ModelGrid
    slices: SliceOutputs
    volume: np.ndarray  # the normalised input on the model grid [z, y, x]
    removed: np.ndarray  # model-grid voxels the network marked and postprocessing removed (why: the report)
    segment: terminology.SegmentTerminology = terminology.GTV  # name and DICOM terminology of the mask


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
    started: float | None = None,
) -> Prediction:
    """Preprocess, predict the slices that hold tissue, map the GTV back and build the report.

    ``started`` is the ``time.perf_counter()`` at which the caller's work on this case began
    (e.g. before reading the input), so that the report's total time includes it; default: now.
    """
    started = time.perf_counter() if started is None else started
    torch_device = select_device(device)
    report_progress = progress or (lambda fraction, message: None)
    report_progress(0.0, "preprocessing")
    grid = ModelGrid.for_image(image, model.preprocess)
    volume = grid.image_to_grid(image)
    t_net = time.perf_counter()
    outputs = predict_slices(
        model.net, volume, grid.tissue_slices(volume), model.preprocess.context_slices, torch_device,
        batch_size or default_batch_size(torch_device, model.net_config),
        lambda fraction, message: report_progress(0.05 + 0.85 * fraction, message), should_cancel,
        flip=model.preprocess.flip_average, gammas=model.preprocess.gamma_views, clip_max=model.preprocess.clip_max,
    )
    inference_s = time.perf_counter() - t_net
    segmentation = model.task("segmentation")
    marked = outputs.gtv_probability >= 0.5
    postprocessing = filter_components(outputs, volume, grid, segmentation)
    report_progress(0.92, "mapping the GTV back to the input grid")
    mask = sitk.Cast(grid.grid_to_image(outputs.gtv_probability, image) >= 0.5, sitk.sitkUInt8)
    mask.CopyInformation(image)
    segment = terminology.for_task(segmentation)
    report = Report(
        case=case,
        input=InputSummary.of(image, source, grid),
        model=ModelSummary.of(model.info, model.sha256),
        gtv=GTVSummary(segment, find_lesions(mask), postprocessing),
        slices=SliceSummary(grid.n_slices, int(len(outputs.predicted)), float(grid.reference.GetSpacing()[2])),
        heads=answer_heads(model, grid, outputs, volume),
        device=str(torch_device),
        timing=Timing(time.perf_counter() - started, inference_s),
    )
    report_progress(1.0, "done")
    return Prediction(mask=mask, report=report, grid=grid, slices=outputs, volume=volume,
                      removed=marked & (outputs.gtv_probability < 0.5), segment=segment)


def filter_components(outputs: SliceOutputs, volume: np.ndarray, grid: ModelGrid, task: TaskSpec | None) -> Postprocessing | None:
    """Drop the GTV components the segmentation task's filter rejects (in place); what was done and why."""
    if task is None:
        return None
    probability = outputs.gtv_probability
    weak = drop_weak_components(probability, task.min_peak, task.min_volume_ml, grid.spacing_zyx)
    if not task.component_model:
        return Postprocessing.of(task, weak)
    dropped = drop_unlikely_components(probability, volume, grid.spacing_zyx, LogisticModel.from_dict(task.component_model),
                                       task.min_component_probability)
    summaries = tuple(DroppedSummary(d.volume_ml, grid.index_to_ras(d.centroid_zyx), d.rating, d.reasons) for d in dropped)
    return Postprocessing.of(task, weak + len(dropped), summaries)


def answer_heads(model: LoadedModel, grid: ModelGrid, outputs: SliceOutputs, volume: np.ndarray) -> dict[str, HeadAnswer]:
    """Every head's patient-level answer, under its report key; ``volume`` is the normalised
    model-grid volume that lesion-feature heads measure."""
    pixel_mm2 = model.preprocess.spacing_mm**2
    areas = {int(z): float((outputs.gtv_probability[z] >= 0.5).sum() * pixel_mm2) for z in outputs.class_logits}
    values = slice_values(model.tasks, outputs.class_logits)
    lesions = None
    if any(t.aggregation == LESION_LOGISTIC for t in model.heads):
        lesions = measure_lesions(volume, outputs.gtv_probability >= 0.5, grid.spacing_zyx, slice_step=grid.slice_step)
    return {task.key: head_answer(task, values[task.name], areas, grid.slice_positions_mm, lesions) for task in model.heads}


def case_name(path: str | Path) -> str:
    """``scan.nii.gz`` -> ``scan``; a DICOM folder -> its folder name."""
    name = Path(path).name
    for suffix in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem if Path(path).is_file() else name
