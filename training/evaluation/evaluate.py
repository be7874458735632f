"""``mtsa evaluate``: score a checkpoint on a cohort folder through the same pipeline as ``mtsa predict``.

Each patient's whole volume goes through ``predict_volume``, so the numbers describe what a user
gets. Metrics:

- the paper's (Zhou et al. 2023, Table 3): GTV Dice, HD95 (mm), pixel precision and recall on the
  *tumour slices* (the model grid's axial slices where the truth, mapped with
  ``ModelGrid.mask_to_grid``, has GTV; the prediction elsewhere is ignored, as in a slice-wise
  evaluation), per patient then averaged; patient-level EGFR accuracy, precision, recall and F1,
  and the AUC, all with 95% percentile-bootstrap intervals over patients;
- what a whole-volume tool needs: volume Dice on the input grid, lesion-wise sensitivity for
  truth lesions >= 5 mm and false-positive lesions per patient (``lesion_detection``).

Rules, so that no patient silently drops out, are listed in ``RULES`` (also written to metrics.json).

On a synthetic cohort the best possible EGFR accuracy (the Bayes limit of the phantom's biology)
is reported beside every accuracy: synthetic results are not clinical validation.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from MTSASegmenterLib.config import TaskSpec, head_tasks
from MTSASegmenterLib.errors import InputError, MTSAError
from MTSASegmenterLib.inference.pipeline import Prediction, predict_volume
from MTSASegmenterLib.io.imageio import read_image
from MTSASegmenterLib.io.overlay import write_overlay
from MTSASegmenterLib.metrics import (
    classification_metrics,
    dice,
    hd95,
    pixel_precision_recall,
)
from MTSASegmenterLib.model.checkpoint import LoadedModel, load_checkpoint
from MTSASegmenterLib.postprocess.heads import slice_values
from MTSASegmenterLib.postprocess.lesions import lesion_detection
from tqdm import tqdm

from ..data.cohort import Case, cohort_fingerprint, read_cohort
from ..data.formats import add_cohort_options, detect_format
from ..data.slices import read_mask

MIN_LESION_MM = 5.0
NOT_CLINICAL = (
    "Synthetic results are not clinical validation: the cohort is the project's phantom "
    "(docs/PHANTOM.md), and no accuracy on it says anything about patients."
)
DASH = "—"
RULES: tuple[str, ...] = (
    ("An indeterminate EGFR call (no GTV predicted) counts as probability 0.5 for the AUC and as a wrong call "
    "for accuracy, precision, recall and F1: a tool that gives no answer must not score as if it had guessed."),
    ("A classification-only model has no GTV to rank slices by: its patient probability is the mean mutation "
    "probability over all tissue slices the network saw."),
    "A segmentation-only model has no EGFR metrics, a classification-only one no GTV metrics.",
    ("HD95 with an empty prediction on the tumour slices, and per-patient lesion sensitivity without a truth "
    "lesion >= 5 mm, are undefined: left out of the means and counted as 'undefined'."),
    "Patients without any truth GTV get no tumour-slice metrics; patients of unknown EGFR status get no EGFR metrics.",
)


# --------------------------------------------------------------------------- per patient


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
    )


@dataclass(frozen=True)
class EgfrCall:
    """A patient-level EGFR answer and the slices it rests on (model-grid indices)."""

    call: str  # mutant | wild-type | indeterminate
    probability: float | None
    threshold: float
    slices_used: tuple[int, ...]


def patient_egfr(prediction: Prediction, model: LoadedModel) -> EgfrCall | None:
    """The report's call; for a classification-only model the mean over tissue slices (see module doc)."""
    task = model.head("egfr")
    if task is None:
        return None
    if model.task("segmentation") is not None:
        head = prediction.report.heads[task.key]
        return EgfrCall(head.call, head.probability, task.threshold, tuple(head.slices_used))
    values = slice_values(model.tasks, prediction.slices.class_logits)[task.name]
    slices = sorted(values)
    if not slices:
        return EgfrCall("indeterminate", None, task.threshold, ())
    probability = float(np.mean([values[z][-1] for z in slices]))
    return EgfrCall(task.classes[1] if probability > task.threshold else task.classes[0], probability, task.threshold, tuple(slices))


@dataclass(frozen=True)
class PatientResult:
    case: str
    egfr_true: int | None
    egfr: EgfrCall | None
    seg: SegmentationScores | None
    seconds: float
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)  # the report's answer of every head
    labels: dict[str, str] = field(default_factory=dict)  # the patient's cases.csv cells

    def row(self) -> dict[str, Any]:
        """Flat row for per_patient.csv (empty cells where the model has no such output)."""
        row: dict[str, Any] = {"case": self.case, "egfr_true": {1: "mutant", 0: "wild-type"}.get(self.egfr_true, "")}
        if self.egfr is not None:
            correct = "" if self.egfr_true is None else int(self.egfr.call == row["egfr_true"])
            row.update(egfr_call=self.egfr.call, egfr_probability=self.egfr.probability, egfr_correct=correct)
        if self.seg is not None:
            row.update(asdict(self.seg))
        row["seconds"] = round(self.seconds, 3)
        return row


def _spacing_zyx(image: sitk.Image) -> tuple[float, float, float]:
    return tuple(float(s) for s in image.GetSpacing()[::-1])  # type: ignore[return-value]


def evaluate_case(case: Case, model: LoadedModel, device: str, pictures: Path | None) -> PatientResult:
    """Predict one patient's whole volume and score it; writes its pictures when ``pictures`` is a folder."""
    start = time.perf_counter()
    image = read_image(case.image)
    truth = read_mask(case, image)
    prediction = predict_volume(image, model, device=device, case=case.case_id, source=str(case.image))
    seg = None
    if model.task("segmentation") is not None:
        seg = segmentation_scores(
            prediction.slices.gtv_probability >= 0.5,
            prediction.grid.mask_to_grid(truth),
            prediction.grid.spacing_zyx,
            sitk.GetArrayViewFromImage(prediction.mask) != 0,
            sitk.GetArrayViewFromImage(truth) != 0,
            _spacing_zyx(image),
        )
    egfr = patient_egfr(prediction, model)
    if pictures is not None:
        write_overlay(pictures / f"{case.case_id}_overlay.png", prediction.grid, prediction.volume, prediction.mask, truth)
        if egfr is not None:
            _slice_picture(pictures / f"{case.case_id}_slices.png", case, prediction, egfr, model)
    heads = {key: answer.to_dict() for key, answer in prediction.report.heads.items()}
    return PatientResult(case.case_id, case.egfr, egfr, seg, time.perf_counter() - start, heads, dict(case.labels))


def _slice_picture(path: Path, case: Case, prediction: Prediction, egfr: EgfrCall, model: LoadedModel) -> None:
    from .plots import slice_probability_plot

    values = slice_values(model.tasks, prediction.slices.class_logits)[model.head("egfr").name]
    z = np.array(sorted(values), dtype=int)
    pixel_mm2 = model.preprocess.spacing_mm**2
    areas = None
    if model.task("segmentation") is not None:
        areas = [(prediction.slices.gtv_probability[k] >= 0.5).sum() * pixel_mm2 for k in z]
    slice_probability_plot(
        path, case=case.case_id, positions_mm=prediction.grid.slice_positions_mm[z],
        probabilities=[values[k][-1] for k in z], areas_mm2=areas,
        used=[int(k) in egfr.slices_used for k in z], patient_probability=egfr.probability,
        threshold=egfr.threshold, truth={1: "mutant", 0: "wild-type"}.get(case.egfr, ""), call=egfr.call,
    )


# --------------------------------------------------------------------------- cohort summary


def finite_or_none(data: Any) -> Any:
    """The summary with every NaN / infinity replaced by None, so JSON and the tables stay strict."""
    if isinstance(data, dict):
        return {k: finite_or_none(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_none(v) for v in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def mean_ci(values: Sequence[float], n_boot: int, seed: int) -> dict[str, Any]:
    """Mean over patients with a percentile-bootstrap 95% CI; NaN values are left out and counted."""
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    out: dict[str, Any] = {"value": None, "ci95": [None, None], "n": int(finite.size), "undefined": int(v.size - finite.size)}
    if finite.size:
        means = finite[np.random.default_rng(seed).integers(0, finite.size, (n_boot, finite.size))].mean(axis=1)
        out["value"] = float(finite.mean())
        out["ci95"] = [float(x) for x in np.percentile(means, [2.5, 97.5])]
    return out


def pooled_ratio_ci(numerators: Sequence[int], denominators: Sequence[int], n_boot: int, seed: int) -> dict[str, Any]:
    """sum(num) / sum(den) with a bootstrap CI over patients (lesion sensitivity pools lesions)."""
    num, den = np.asarray(numerators, float), np.asarray(denominators, float)
    out: dict[str, Any] = {"value": None, "ci95": [None, None], "numerator": int(num.sum()), "denominator": int(den.sum())}
    if den.sum() > 0:
        idx = np.random.default_rng(seed).integers(0, den.size, (n_boot, den.size))
        d = den[idx].sum(axis=1)
        ratios = num[idx].sum(axis=1)[d > 0] / d[d > 0]
        out["value"] = float(num.sum() / den.sum())
        out["ci95"] = [float(x) for x in np.percentile(ratios, [2.5, 97.5])]
    return out


def summarise_segmentation(results: Sequence[PatientResult], n_boot: int, seed: int) -> dict[str, Any] | None:
    scores = [r.seg for r in results if r.seg is not None]
    if not scores:
        return None

    def column(name: str) -> list[float]:
        return [getattr(s, name) for s in scores]

    out = {name: mean_ci(column(name), n_boot, seed) for name in ("dice", "hd95_mm", "precision", "recall", "volume_dice")}
    out["lesion_sensitivity"] = pooled_ratio_ci(column("detected"), column("truth_lesions_evaluated"), n_boot, seed)
    out["lesion_sensitivity_per_patient_mean"] = mean_ci(column("lesion_sensitivity"), n_boot, seed)
    out["false_positive_lesions_per_patient"] = mean_ci(column("false_positive_lesions"), n_boot, seed)
    out["patients"] = len(scores)
    return out


def egfr_scores(results: Sequence[PatientResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(labels, call scores, AUC scores, determinate) of the labelled patients, indeterminate rule applied.

    Call scores are 1/0 for the model's own mutant/wild-type call (so the pipeline's ``> threshold``
    rule is kept exactly) and the wrong answer for an indeterminate call; AUC scores are the
    probabilities, 0.5 where indeterminate.
    """
    labelled = [r for r in results if r.egfr is not None and r.egfr_true is not None]
    y = np.array([r.egfr_true for r in labelled], dtype=int)
    calls = np.array(
        [{"mutant": 1.0, "wild-type": 0.0}.get(r.egfr.call, 1.0 - r.egfr_true) for r in labelled], dtype=float  # type: ignore[union-attr]
    )
    probs = np.array([0.5 if r.egfr.probability is None else r.egfr.probability for r in labelled], dtype=float)  # type: ignore[union-attr]
    determinate = np.array([r.egfr.call != "indeterminate" for r in labelled], dtype=bool)  # type: ignore[union-attr]
    return y, calls, probs, determinate


def summarise_egfr(results: Sequence[PatientResult], n_boot: int, seed: int) -> dict[str, Any] | None:
    with_head = [r for r in results if r.egfr is not None]
    if not with_head:
        return None
    y, calls, probs, _ = egfr_scores(results)
    out: dict[str, Any] = {
        "patients": int(y.size),
        "indeterminate": sum(r.egfr.call == "indeterminate" for r in with_head),  # type: ignore[union-attr]
        "unknown_label": sum(r.egfr_true is None for r in with_head),
        "mutant": int(y.sum()),
        "wild_type": int(y.size - y.sum()),
    }
    if y.size:
        call_metrics = classification_metrics(y, probs, n_boot=n_boot, seed=seed, calls=calls)
        for name in ("accuracy", "precision", "recall", "specificity", "f1", "auc"):
            out[name] = call_metrics[name]
    return out


def summarise_head(task: TaskSpec, results: Sequence[PatientResult], n_boot: int, seed: int) -> dict[str, Any]:
    """One head over the patients with a known label: accuracy and AUC (one-vs-rest, macro-averaged
    for several classes) for classification, mean absolute error for regression."""
    rows = [(r.heads[task.key], r.labels.get(task.label_column, "").strip()) for r in results if task.key in r.heads]
    rows = [(answer, truth) for answer, truth in rows if truth]
    unanswered = (lambda a: a["value"] is None) if task.kind == "regression" else (lambda a: a.get("call") == "indeterminate")
    out: dict[str, Any] = {"name": task.name, "kind": task.kind, "patients": len(rows),
                           "indeterminate": sum(unanswered(a) for a, _ in rows)}
    if not rows:
        return out
    if task.kind == "regression":
        errors = [math.nan if a["value"] is None else abs(a["value"] - float(t)) for a, t in rows]
        out["mae"] = mean_ci(errors, n_boot, seed)
        out["unit"] = task.unit
        return out
    truth = np.array([task.classes.index(t) for _, t in rows])
    out["accuracy"] = mean_ci([float(a.get("call") == t) for a, t in rows], n_boot, seed)
    if task.kind == "binary":
        probs = [0.5 if a["probability"] is None else a["probability"] for a, _ in rows]
    else:
        uniform = 1.0 / len(task.classes)
        probs = np.array([[uniform] * len(task.classes) if a["probabilities"] is None else [a["probabilities"][c] for c in task.classes]
                          for a, _ in rows])
    present = [k for k in range(len(task.classes)) if 0 < (truth == k).sum() < truth.size]
    if task.kind == "binary" and present:
        out["auc"] = classification_metrics(truth, probs, n_boot=n_boot, seed=seed)["auc"]
    elif present:
        aucs = [classification_metrics((truth == k).astype(int), probs[:, k], n_boot=n_boot, seed=seed)["auc"]["value"] for k in present]
        out["auc_macro"] = {"value": float(np.mean(aucs)), "classes": [task.classes[k] for k in present]}
    return out


def cohort_limits(data: Path | None) -> dict[str, dict[str, float]]:
    """Best possible scores per head on a synthetic cohort: those of the phantom that wrote the
    folder (phantom.json), else the brain phantom's (PHANTOM.md; cohorts written before phantom.json)."""
    from ..phantoms.registry import best_possible, cohort_preset

    return best_possible((cohort_preset(data) if data else None) or "mtsa-net")


# --------------------------------------------------------------------------- tables

# (column, summary section, key, decimals); the paper's Table 3 order, GTV then EGFR.
METRIC_COLUMNS: tuple[tuple[str, str, str, int], ...] = (
    ("GTV Dice", "gtv", "dice", 4),
    ("GTV HD95 (mm)", "gtv", "hd95_mm", 2),
    ("GTV Precision", "gtv", "precision", 4),
    ("GTV Recall", "gtv", "recall", 4),
    ("Volume Dice", "gtv", "volume_dice", 4),
    ("Lesion sensitivity", "gtv", "lesion_sensitivity", 4),
    ("FP lesions/patient", "gtv", "false_positive_lesions_per_patient", 2),
    ("EGFR Accuracy", "egfr", "accuracy", 4),
    ("EGFR Precision", "egfr", "precision", 4),
    ("EGFR Recall", "egfr", "recall", 4),
    ("EGFR F1", "egfr", "f1", 4),
    ("EGFR AUC", "egfr", "auc", 4),
)
BEST = "Best possible accuracy"
TABLE_COLUMNS: tuple[str, ...] = (
    "Model", *(c[0] for c in METRIC_COLUMNS[:8]), BEST, *(c[0] for c in METRIC_COLUMNS[8:]), "Indeterminate", "Patients"
)
CSV_COLUMNS: tuple[str, ...] = tuple(
    part
    for column in TABLE_COLUMNS
    for part in ((column, f"{column} CI low", f"{column} CI high") if column in {c[0] for c in METRIC_COLUMNS} else (column,))
)


def _cells(name: str, summary: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """(markdown cells, csv cells) of one model's row."""
    md: dict[str, str] = {"Model": name}
    flat: dict[str, Any] = {"Model": name}
    for column, section, key, decimals in METRIC_COLUMNS:
        metric = (summary.get(section) or {}).get(key)
        if metric is None:
            md[column] = DASH
            flat.update({column: "", f"{column} CI low": "", f"{column} CI high": ""})
            continue
        value, (lo, hi) = metric["value"], metric["ci95"]
        md[column] = "n/a" if value is None else f"{value:.{decimals}f}" + ("" if lo is None else f" ({lo:.2f}, {hi:.2f})")
        if metric.get("undefined"):
            md[column] += f" [{metric['undefined']} undefined]"
        flat.update({column: "" if value is None else value, f"{column} CI low": "" if lo is None else lo, f"{column} CI high": "" if hi is None else hi})
    best = summary.get("best_possible_accuracy")
    md[BEST] = DASH if best is None else f"{best:.4f}"
    flat[BEST] = "" if best is None else best
    egfr = summary.get("egfr")
    md["Indeterminate"] = DASH if egfr is None else str(egfr["indeterminate"])
    flat["Indeterminate"] = "" if egfr is None else egfr["indeterminate"]
    md["Patients"] = flat["Patients"] = str(summary["patients"])
    return md, flat


def write_table(stem: Path, rows: Sequence[tuple[str, dict[str, Any]]], title: str, notes: Sequence[str] = ()) -> None:
    """``stem.md`` (the paper's look: value (95% CI)) and ``stem.csv`` (numbers, CI bounds in their own columns)."""
    cells = [_cells(name, summary) for name, summary in rows]
    lines = [f"# {title}", "", "| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(md[c] for c in TABLE_COLUMNS) + " |" for md, _ in cells]
    lines += ["", "Figures in parentheses are 95% percentile-bootstrap confidence intervals over patients.",
              ("GTV Dice, HD95, Precision and Recall: on the tumour slices of the model grid, per patient then averaged. "
              "Volume Dice: whole volume on the input grid. Lesion sensitivity: truth lesions >= 5 mm, pooled. "
              "Indeterminate EGFR calls count as wrong (AUC: probability 0.5). [k undefined]: patients left out of that mean "
              "(e.g. HD95 of an empty prediction). — : the model has no such output."),
              *notes]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open(stem.with_suffix(".csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(flat for _, flat in cells)


def write_heads_table(path: Path, name: str, heads: dict[str, dict[str, Any]], notes: Sequence[str] = (),
                      gtv: dict[str, Any] | None = None) -> None:
    """Every head in one table, as the multi-head papers report them: accuracy and AUC per
    classification head (per receptor, response), mean absolute error per regression head (Ki-67),
    each beside the cohort's best possible score; the segmentation's Dice above it."""

    def cell(metric: dict[str, Any] | None, decimals: int = 3) -> str:
        if not metric or metric.get("value") is None:
            return DASH
        lo, hi = metric.get("ci95", [None, None])
        return f"{metric['value']:.{decimals}f}" + ("" if lo is None else f" ({lo:.2f}, {hi:.2f})")

    def best(head: dict[str, Any]) -> str:
        limits = head.get("best_possible") or {}
        parts = [f"{label} {limits[key]:.3f}" for key, label in (("accuracy", "accuracy"), ("auc", "AUC")) if key in limits]
        if "mae" in limits:
            parts.append(f"MAE {limits['mae']:.2f} {head.get('unit', '')}".rstrip())
        return ", ".join(parts) or DASH

    lines = [f"# Heads of {name}", ""]
    if gtv:
        lines += [f"Segmentation: Dice {cell(gtv.get('dice'))} on tumour slices, volume Dice {cell(gtv.get('volume_dice'))}, "
                  f"lesion sensitivity {cell(gtv.get('lesion_sensitivity'))}, "
                  f"false-positive lesions per patient {cell(gtv.get('false_positive_lesions_per_patient'), 2)}.", ""]
    lines += ["| Head | Kind | Patients | Accuracy | AUC | MAE | Best possible |", "|---|---|---|---|---|---|---|"]
    for head in heads.values():
        mae = head.get("mae")
        lines.append(f"| {head['name']} | {head['kind']} | {head['patients']} | {cell(head.get('accuracy'))} | "
                     f"{cell(head.get('auc') or head.get('auc_macro'))} | "
                     f"{DASH if mae is None else cell(mae, 2) + (' ' + head.get('unit', '')).rstrip()} | {best(head)} |")
    lines += ["", "Patients: those with a label in the head's column. AUC: one-vs-rest, macro-averaged for more than "
              "two classes. Indeterminate answers (no GTV) count as wrong and as probability 0.5 (uniform). Best possible: "
              "the Bayes classifier (or posterior-median estimator) that sees the phantom's true lesion features.", *notes]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- whole evaluation


@dataclass(frozen=True)
class CaseSelection:
    """Which patients are scored, and why (recorded in metrics.json)."""

    cases: tuple[Case, ...]
    description: str
    training_cohort: bool  # the folder is the one the model was trained on
    includes_training_cases: bool


def select_cases(data: Path, model: LoadedModel, which: str = "test", gtv_labels: Sequence[int] | None = None,
                 labels: Path | None = None) -> CaseSelection:
    """``test``: the held-out patients (the split's test cases on the training cohort, every case
    of another cohort); ``all``: every case of the folder."""
    if which not in ("test", "all"):
        raise InputError(f"--cases {which!r}: choose test or all")
    cases = read_cohort(data, gtv_labels, labels)
    training = model.info.training or {}
    same = training.get("cases_csv_sha256") == cohort_fingerprint(data, gtv_labels, labels)
    if not same:
        return CaseSelection(tuple(cases), "external cohort: all cases", False, False)
    if which == "all":
        return CaseSelection(tuple(cases), "all cases of the training cohort (training and validation cases included)", True, True)
    test_ids = set(training.get("split", {}).get("test", {}).get("case_ids", []))
    chosen = tuple(c for c in cases if c.case_id in test_ids)
    if not chosen:
        raise InputError(f"{data}: the model's split holds no test case of this cohort; pass --cases all or evaluate another cohort")
    return CaseSelection(chosen, f"test split ({training['split'].get('kind', '')}) of the training cohort", True, False)


@dataclass(frozen=True)
class EvalSettings:
    device: str = "auto"
    n_boot: int = 1000
    seed: int = 0
    synthetic: bool = True  # the cohort is the phantom: report the Bayes limit and the not-clinical statement
    pictures: bool = True
    progress_bar: bool = True


def evaluate_model(
    model: LoadedModel, selection: CaseSelection, out: Path, settings: EvalSettings, *, name: str | None = None, data: Path | None = None
) -> dict[str, Any]:
    """Score every selected patient and write metrics.json, table3.md/csv, per_patient.csv,
    calibration.png and patients/; returns the summary written to metrics.json."""
    out = Path(out)
    pictures = out / "patients" if settings.pictures else None
    (pictures or out).mkdir(parents=True, exist_ok=True)
    bar = tqdm(selection.cases, desc="evaluating", unit="patient", file=sys.stderr, disable=None if settings.progress_bar else True)
    results = [evaluate_case(case, model, settings.device, pictures) for case in bar]

    name = name or model.info.name
    summary: dict[str, Any] = {
        "model": {"name": name, "path": str(model.path), "sha256": model.sha256, "version": model.info.version,
                  "synthetic_only": model.info.synthetic_only, "tasks": [t.name for t in model.tasks]},
        "data": {"folder": str(data) if data else "", "selection": selection.description,
                 "includes_training_cases": selection.includes_training_cases, "case_ids": [c.case_id for c in selection.cases]},
        "patients": len(results),
        "gtv": summarise_segmentation(results, settings.n_boot, settings.seed),
        "egfr": summarise_egfr(results, settings.n_boot, settings.seed),
        "heads": {t.key: summarise_head(t, results, settings.n_boot, settings.seed) for t in head_tasks(model.tasks)},
        "best_possible_accuracy": None,
        "synthetic_cohort": settings.synthetic,
        "settings": {"device": settings.device, "n_boot": settings.n_boot, "seed": settings.seed,
                     "min_lesion_diameter_mm": MIN_LESION_MM},
        "rules": list(RULES),
    }
    if settings.synthetic:
        limits = cohort_limits(data)
        summary["best_possible_accuracy"] = limits.get("egfr", {}).get("accuracy")
        for key, head in summary["heads"].items():
            head["best_possible"] = limits.get(key)
        summary["statement"] = NOT_CLINICAL
    summary = finite_or_none(summary)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    _write_per_patient(out / "per_patient.csv", results)
    notes = [NOT_CLINICAL] if settings.synthetic else []
    write_table(out / "table3", [(name, summary)], f"Evaluation of {name} ({selection.description})", notes)
    write_heads_table(out / "heads.md", name, summary["heads"], notes, summary["gtv"])
    y, _, probs, determinate = egfr_scores(results)
    if y.size:
        from .plots import calibration_plot

        calibration_plot(out / "calibration.png", y[determinate], probs[determinate], title=f"{name}: patient-level EGFR",
                         note=f"{int((~determinate).sum())} indeterminate patient(s) not shown")
    return summary


def _write_per_patient(path: Path, results: Sequence[PatientResult]) -> None:
    rows = [r.row() for r in results]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()} for row in rows)


def build_parser(prog: str = "mtsa evaluate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Evaluate a checkpoint on a cohort folder (cases.csv + volumes).")
    p.add_argument("--data", type=Path, required=True, help="cohort folder: cases.csv, an nnU-Net raw dataset or BraTS-style folders")
    add_cohort_options(p)
    p.add_argument("--model", type=Path, required=True, help="checkpoint (best.pt of mtsa train)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--cases", choices=("test", "all"), default="test",
                   help="test (default): the split's test cases on the training cohort, every case of another cohort; all: every case")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--cohort", choices=("auto", "synthetic", "real"), default="auto",
                   help="is the cohort the synthetic phantom? auto: as the checkpoint's synthetic_only stamp")
    return p


def main(argv: list[str] | None = None, prog: str = "mtsa evaluate") -> int:
    """Exit 0 and one summary line on success; one ``error: ...`` line and 1 on bad input."""
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.n_boot < 1:
            raise InputError(f"--n-boot {args.n_boot}: must be at least 1")
        if detect_format(args.data) is None:
            raise InputError(f"{args.data}: not a cohort folder (no cases.csv, nnU-Net raw dataset or BraTS-style folders)")
        model = load_checkpoint(args.model)
        synthetic = model.info.synthetic_only if args.cohort == "auto" else args.cohort == "synthetic"
        settings = EvalSettings(device=args.device, n_boot=args.n_boot, seed=args.seed, synthetic=synthetic)
        summary = evaluate_model(model, select_cases(args.data, model, args.cases, args.gtv_labels, args.labels), args.out, settings, data=args.data)
    except MTSAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary_line(summary) + f"; written to {args.out}")
    return 0


def summary_line(summary: dict[str, Any]) -> str:
    parts = [f"{summary['model']['name']}: {summary['patients']} patient(s)"]
    if summary["gtv"] and summary["gtv"]["dice"]["value"] is not None:
        parts.append(f"Dice {summary['gtv']['dice']['value']:.3f}")
    egfr = summary["egfr"]
    if egfr and "accuracy" in egfr:
        best = summary["best_possible_accuracy"]
        parts.append(f"EGFR accuracy {egfr['accuracy']['value']:.3f}" + (f" (best possible {best:.3f})" if best is not None else ""))
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
