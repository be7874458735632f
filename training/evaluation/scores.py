"""One patient's scores: the GTV against the truth, every head's answer beside the patient's label,
and the lesion features inside the truth mask (the image oracle's input, see ``oracle``).

Each patient's whole volume goes through ``predict_volume``, so the numbers describe what a user
gets. GTV metrics of the paper (Zhou et al. 2023, Table 3: Dice, HD95 (mm), pixel precision and
recall) are taken on the *tumour slices* (the model grid's axial slices where the truth, mapped
with ``ModelGrid.mask_to_grid``, has GTV; the prediction elsewhere is ignored, as in a slice-wise
evaluation); a whole-volume tool also needs volume Dice on the input grid, lesion-wise sensitivity
for truth lesions >= 5 mm and false-positive lesions (``lesion_detection``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from MTSASegmenterLib.config import TaskSpec, head_tasks
from MTSASegmenterLib.inference.pipeline import Prediction, predict_volume
from MTSASegmenterLib.io.imageio import read_image
from MTSASegmenterLib.io.overlay import write_overlay
from MTSASegmenterLib.metrics import dice, hd95, pixel_precision_recall
from MTSASegmenterLib.model.checkpoint import LoadedModel
from MTSASegmenterLib.postprocess.heads import INDETERMINATE, slice_values
from MTSASegmenterLib.postprocess.lesions import label_components, lesion_detection, measure_labels

from ..data.cohort import Case, egfr_head
from ..data.slices import read_mask
from ..train.fit_head import lesion_feature_row

MIN_LESION_MM = 5.0
NETWORK, POSTPROCESSING = "network", "postprocessing"  # which step lost a missed lesion


@dataclass(frozen=True)
class SegmentationScores:
    """One patient's GTV scores; tumour-slice metrics are NaN when the truth has no GTV."""

    dice: float
    hd95_mm: float
    precision: float
    recall: float
    tumour_slices: int
    volume_dice: float
    truth_lesions_evaluated: int
    detected: int
    lesion_sensitivity: float
    false_positive_lesions: int
    truth_volume_ml: float
    predicted_volume_ml: float
    slice_mm: float  # the input's thickest spacing (its slices', as the report's caution): thick slices hide small lesions
    lesions: tuple[tuple[float, bool], ...] = ()  # (max diameter mm, detected) per evaluated truth lesion; not a CSV column


def segmentation_scores(
    pred_grid: np.ndarray,
    truth_grid: np.ndarray,
    grid_spacing: Sequence[float],
    pred_volume: np.ndarray,
    truth_volume: np.ndarray,
    volume_spacing: Sequence[float],
) -> SegmentationScores:
    """Scores from boolean ``[z, y, x]`` masks on the model grid and on the input grid (spacings in array order)."""
    pred_grid, truth_grid = np.asarray(pred_grid, bool), np.asarray(truth_grid, bool)
    pred_volume, truth_volume = np.asarray(pred_volume, bool), np.asarray(truth_volume, bool)
    tumour = truth_grid.any(axis=(1, 2))
    if tumour.any():
        pred_on = pred_grid & tumour[:, None, None]  # full array kept, so HD95 sees the true geometry
        precision, recall = pixel_precision_recall(pred_on, truth_grid)
        slice_scores = (dice(pred_on, truth_grid), hd95(pred_on, truth_grid, grid_spacing), precision, recall)
    else:
        slice_scores = (math.nan,) * 4
    detection = lesion_detection(pred_volume, truth_volume, volume_spacing, min_diameter_mm=MIN_LESION_MM)
    voxel_ml = float(np.prod(volume_spacing)) / 1000.0
    return SegmentationScores(
        *slice_scores,
        tumour_slices=int(tumour.sum()),
        volume_dice=dice(pred_volume, truth_volume),
        truth_lesions_evaluated=int(detection["n_truth_lesions_evaluated"]),
        detected=int(detection["n_detected"]),
        lesion_sensitivity=float(detection["lesion_sensitivity"]),
        false_positive_lesions=int(detection["n_false_positive_lesions"]),
        truth_volume_ml=float(truth_volume.sum()) * voxel_ml,
        predicted_volume_ml=float(pred_volume.sum()) * voxel_ml,
        slice_mm=float(max(volume_spacing)),
        lesions=tuple(detection["evaluated_lesions"]),
    )


@dataclass(frozen=True)
class MissedLesion:
    """A truth lesion (>= MIN_LESION_MM) the GTV does not touch, and which step lost it: ``postprocessing``
    (the network marked it, the component filter or peak rule removed it) or ``network`` (never marked)."""

    volume_ml: float
    diameter_mm: float
    cause: str
    network_peak: float  # the network's highest probability inside it (the filter zeroes what it removes: NaN then)
    centroid_ras: tuple[float, float, float]  # mm, as the report's lesions: where to look in Slicer


def missed_lesions(pred: np.ndarray, truth: np.ndarray, geometry: sitk.Image,
                   removals: Callable[[], tuple[np.ndarray, np.ndarray]]) -> list[MissedLesion]:
    """The truth lesions ``lesion_detection`` counts as missed, on the input grid ([z, y, x] arrays on
    ``geometry``'s grid). ``removals`` gives postprocessing's removals and the network's GTV
    probability there; it is called only when a lesion was missed, as mapping them to the input grid
    costs about a second. Why: a miss is fixed in the network or in the filter, and its place says
    which kind of miss it is (beside the midline, in the posterior fossa)."""
    labels, n = label_components(np.asarray(truth, bool))
    untouched = np.setdiff1d(np.arange(1, n + 1), labels[np.asarray(pred, bool)])
    if not len(untouched):  # every lesion marked: nothing to measure
        return []
    relabel = np.zeros(n + 1, dtype=labels.dtype)
    relabel[untouched] = np.arange(1, len(untouched) + 1)
    measured = measure_labels(relabel[labels], len(untouched), geometry.GetSpacing(), geometry.GetOrigin(), geometry.GetDirection())
    unmarked = [(k, lesion) for k, lesion in zip(untouched, measured) if lesion.max_diameter_mm >= MIN_LESION_MM]
    if not unmarked:
        return []
    removed, probability = removals()
    missed = []
    for k, lesion in unmarked:
        inside = labels == k
        cut = bool(removed[inside].any())
        missed.append(MissedLesion(lesion.volume_ml, lesion.max_diameter_mm, POSTPROCESSING if cut else NETWORK,
                                   math.nan if cut else float(probability[inside].max()), lesion.centroid_ras))
    return missed


def missed_by_prediction(prediction: Prediction, image: sitk.Image, pred: np.ndarray, truth: np.ndarray) -> list[MissedLesion]:
    """``missed_lesions`` of one ``predict_volume`` result: its removals and probability mapped to ``image``'s grid."""

    def removals() -> tuple[np.ndarray, np.ndarray]:
        to_input = prediction.grid.grid_to_image
        return (sitk.GetArrayFromImage(to_input(prediction.removed, image)) >= 0.5,
                sitk.GetArrayFromImage(to_input(prediction.slices.gtv_probability, image)))

    return missed_lesions(pred, truth, image, removals)


def head_answer(prediction: Prediction, model: LoadedModel, task: TaskSpec) -> dict[str, Any]:
    """The head's patient-level answer: the report's; a classification-only model has no GTV to rank
    slices by, so there it is the mean over every tissue slice the network saw (``summary.RULES``)."""
    if model.task("segmentation") is not None:
        return prediction.report.heads[task.key].to_dict()
    values = slice_values(model.tasks, prediction.slices.class_logits)[task.name]
    slices = sorted(values)
    answer: dict[str, Any] = {"name": task.name, "kind": task.kind, "slices_used": slices}
    mean = np.mean([values[z] for z in slices], axis=0) if slices else None
    if task.kind == "regression":
        return {**answer, "value": None if mean is None else float(mean[0]), "unit": task.unit}
    answer["classes"] = list(task.classes)
    if task.kind == "multiclass":
        if mean is None:
            return {**answer, "probabilities": None, "call": INDETERMINATE}
        return {**answer, "probabilities": dict(zip(task.classes, map(float, mean))), "call": task.classes[int(np.argmax(mean))]}
    probability = None if mean is None else float(mean[-1])
    call = INDETERMINATE if probability is None else task.classes[int(probability > task.threshold)]
    return {**answer, "probability": probability, "call": call, "threshold": task.threshold}


def answer_columns(task: TaskSpec, answer: dict[str, Any], truth: str) -> dict[str, Any]:
    """The head's cells of per_patient.csv: ``<head>_true``, ``_call``, ``_probability`` (binary) and
    ``_correct``, or ``_value`` and ``_error`` for a regression head."""
    key = task.key
    row: dict[str, Any] = {f"{key}_true": truth}
    if task.kind == "regression":
        value = answer.get("value")
        error = "" if value is None or not truth else abs(value - float(truth))
        return {**row, f"{key}_value": "" if value is None else value, f"{key}_error": error}
    row[f"{key}_call"] = answer.get("call")
    if task.kind == "binary":
        row[f"{key}_probability"] = answer.get("probability")
    return {**row, f"{key}_correct": "" if not truth else int(answer.get("call") == truth)}


@dataclass(frozen=True)
class PatientResult:
    case: str
    seg: SegmentationScores | None
    seconds: float
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)  # every head's answer, by report key
    labels: dict[str, str] = field(default_factory=dict)  # the patient's cases.csv cells
    truth_features: dict[str, float] | None = None  # lesion features inside the truth mask (image oracle)
    tasks: tuple[TaskSpec, ...] = ()  # the model's heads, in order
    missed: tuple[MissedLesion, ...] = ()  # truth lesions the GTV does not touch, and why

    def label(self, task: TaskSpec) -> str:
        return self.labels.get(task.label_column, "").strip()

    def row(self) -> dict[str, Any]:
        """Flat row for per_patient.csv (no cells for outputs the model does not have)."""
        row: dict[str, Any] = {"case": self.case}
        for task in self.tasks:
            row.update(answer_columns(task, self.heads[task.key], self.label(task)))
        if self.seg is not None:
            row.update({k: v for k, v in asdict(self.seg).items() if k != "lesions"})
        row["seconds"] = round(self.seconds, 3)
        return row


def _spacing_zyx(image: sitk.Image) -> tuple[float, float, float]:
    return tuple(float(s) for s in image.GetSpacing()[::-1])  # type: ignore[return-value]


def evaluate_case(case: Case, model: LoadedModel, device: str, pictures: Path | None,
                  oracle_columns: Sequence[str] = ()) -> PatientResult:
    """Predict one patient's whole volume and score it; writes its pictures when ``pictures`` is a
    folder; measures the truth's lesion features when the patient has a label in ``oracle_columns``."""
    start = time.perf_counter()
    image = read_image(case.image)
    truth = read_mask(case, image)
    prediction = predict_volume(image, model, device=device, case=case.case_id, source=str(case.image))
    truth_grid = prediction.grid.mask_to_grid(truth) > 0
    seg, missed = None, []
    if model.task("segmentation") is not None:
        pred_volume, truth_volume = sitk.GetArrayViewFromImage(prediction.mask) != 0, sitk.GetArrayViewFromImage(truth) != 0
        seg = segmentation_scores(prediction.slices.gtv_probability >= 0.5, truth_grid, prediction.grid.spacing_zyx,
                                  pred_volume, truth_volume, _spacing_zyx(image))
        missed = missed_by_prediction(prediction, image, pred_volume, truth_volume)
    heads = head_tasks(model.tasks)
    answers = {t.key: head_answer(prediction, model, t) for t in heads}
    features = None
    if any(case.labels.get(column, "").strip() for column in oracle_columns):
        features = lesion_feature_row(prediction.volume, truth_grid, prediction.grid.spacing_zyx, prediction.grid.slice_step)
    if pictures is not None:
        write_overlay(pictures / f"{case.case_id}_overlay.png", prediction.grid, prediction.volume, prediction.mask, truth)
        task = egfr_head(heads)
        if task is not None:
            from .plots import write_slice_picture

            write_slice_picture(pictures / f"{case.case_id}_slices.png", case.case_id, case.labels.get(task.label_column, ""),
                                prediction, model, task, answers[task.key])
    return PatientResult(case.case_id, seg, time.perf_counter() - start, answers, dict(case.labels), features, tuple(heads),
                         tuple(missed))
