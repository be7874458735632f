"""Cohort summaries: means and pooled ratios with 95% percentile-bootstrap intervals over patients,
for the GTV and for every head through one path (binary, multiclass, regression). Table 3's EGFR
columns are MTSA-Net's EGFR head's summary (``egfr_section``), not a second path.

Rules, so that no patient silently drops out, are listed in ``RULES`` (also written to metrics.json).
On a synthetic cohort the best possible scores (the Bayes limit of the phantom's biology) are
reported beside every score: synthetic results are not clinical validation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from MTSASegmenterLib.config import TaskSpec
from MTSASegmenterLib.metrics import classification_metrics
from MTSASegmenterLib.postprocess.heads import INDETERMINATE

from .scores import NETWORK, POSTPROCESSING, PatientResult, SegmentationScores

NOT_CLINICAL = (
    "Synthetic results are not clinical validation: the cohort is the project's phantom "
    "(docs/PHANTOM.md), and no accuracy on it says anything about patients."
)
RULES: tuple[str, ...] = (
    ("An indeterminate call (no GTV predicted) counts as probability 0.5 (uniform) for the AUC and as a wrong call "
     "for accuracy, precision, recall and F1: a tool that gives no answer must not score as if it had guessed."),
    ("A classification-only model has no GTV to rank slices by: each head's patient answer is the mean over all "
     "tissue slices the network saw (for a binary head, the mean probability of its positive class)."),
    "A segmentation-only model has no head metrics, a classification-only one no GTV metrics.",
    ("HD95 with an empty prediction on the tumour slices, and per-patient lesion sensitivity without a truth "
     "lesion >= 5 mm, are undefined: left out of the means and counted as 'undefined'."),
    "Patients without any truth GTV get no tumour-slice metrics; patients without a head's label get no metrics of that head.",
    ("The image oracle is the cross-validated accuracy of fit-head's patient-level model on the lesion features "
     "measured inside the truth masks of the same patients (docs/PHANTOM.md)."),
)
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "auc")


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


DIAMETER_BANDS_MM = (5.0, 10.0, 20.0)  # lesion sensitivity by maximum diameter: 5-10, 10-20, >= 20 mm
SLICE_BANDS_MM = (0.0, 2.0, 4.0)  # and by the scan's slice spacing: < 2, 2-4, >= 4 mm


def _bands(edges: Sequence[float]) -> list[tuple[str, float, float]]:
    """(label, low, high) of consecutive ``edges``, the last band open: (5, 10) -> '5-10 mm', '>= 10 mm'."""
    highs = [*edges[1:], math.inf]
    return [(f">= {lo:g} mm" if hi == math.inf else f"< {hi:g} mm" if lo == 0 else f"{lo:g}-{hi:g} mm", lo, hi)
            for lo, hi in zip(edges, highs)]


def sensitivity_by_band(scores: Sequence[SegmentationScores], n_boot: int, seed: int) -> dict[str, dict[str, Any]]:
    """Pooled lesion sensitivity by lesion diameter and by the scan's slice spacing. Why: a mean over
    all lesions hides where a model fails (small lesions, thick slices), which is what a site differs in."""
    by_diameter = {label: pooled_ratio_ci([sum(found for d, found in s.lesions if lo <= d < hi) for s in scores],
                                          [sum(lo <= d < hi for d, _ in s.lesions) for s in scores], n_boot, seed)
                   for label, lo, hi in _bands(DIAMETER_BANDS_MM)}
    by_slice = {label: pooled_ratio_ci([s.detected for s in inside], [s.truth_lesions_evaluated for s in inside], n_boot, seed)
                for label, inside in _by_slice_spacing(scores)}
    return {"diameter": by_diameter, "slice_spacing": by_slice}


def _by_slice_spacing(scores: Sequence[SegmentationScores]) -> list[tuple[str, list[SegmentationScores]]]:
    """(band label, the patients whose scan's slice spacing lies in it) for each of SLICE_BANDS_MM."""
    return [(label, [s for s in scores if lo <= s.slice_mm < hi]) for label, lo, hi in _bands(SLICE_BANDS_MM)]


def volume_dice_by_slice_spacing(scores: Sequence[SegmentationScores], n_boot: int, seed: int) -> dict[str, dict[str, Any]]:
    """Mean volume Dice (on the input grid, what the user gets) by the scan's slice spacing. Why: a
    whole-cohort mean hides that thick-slice scans are segmented worst (model card, "P3c")."""
    return {label: mean_ci([s.volume_dice for s in inside], n_boot, seed) for label, inside in _by_slice_spacing(scores)}


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
    out["lesion_sensitivity_by"] = sensitivity_by_band(scores, n_boot, seed)
    out["volume_dice_by_slice_spacing"] = volume_dice_by_slice_spacing(scores, n_boot, seed)
    causes = [m.cause for r in results for m in r.missed]
    out["missed_lesions"] = {cause: causes.count(cause) for cause in (NETWORK, POSTPROCESSING)}
    out["patients"] = len(scores)
    return out


def _unanswered(answer: dict[str, Any]) -> bool:
    return answer.get("value") is None if answer["kind"] == "regression" else answer.get("call") == INDETERMINATE


def summarise_head(task: TaskSpec, results: Sequence[PatientResult], n_boot: int, seed: int) -> dict[str, Any]:
    """One head over the patients with a known label: accuracy, precision, recall, specificity, F1
    and AUC for a binary head; accuracy and the one-vs-rest AUC, macro-averaged, for a multiclass
    head; mean absolute error for a regression head. Counts: ``patients`` (labelled), ``indeterminate``
    (no answer, of all answered patients), ``unknown_label``, and per class ``labels``."""
    answered = [r for r in results if task.key in r.heads]
    rows = [(r.heads[task.key], r.label(task)) for r in answered if r.label(task)]
    out: dict[str, Any] = {"name": task.name, "kind": task.kind, "patients": len(rows),
                           "indeterminate": sum(_unanswered(r.heads[task.key]) for r in answered),
                           "unknown_label": len(answered) - len(rows)}
    if task.kind == "regression":
        out["unit"] = task.unit
        if rows:
            out["mae"] = mean_ci([math.nan if a["value"] is None else abs(a["value"] - float(t)) for a, t in rows], n_boot, seed)
        return out
    truth = np.array([task.classes.index(t) for _, t in rows], dtype=int)
    out["labels"] = {c: int((truth == k).sum()) for k, c in enumerate(task.classes)}
    if not rows:
        return out
    if task.kind == "binary":
        probs = np.array([0.5 if a["probability"] is None else a["probability"] for a, _ in rows])
        # the head's own call (its threshold rule kept exactly); no call counts as the wrong one
        calls = np.array([{task.classes[1]: 1, task.classes[0]: 0}.get(a["call"], 1 - y) for (a, _), y in zip(rows, truth)])
        metrics = classification_metrics(truth, probs, n_boot=n_boot, seed=seed, calls=calls)
        out.update({name: metrics[name] for name in CLASSIFICATION_METRICS})
        return out
    out["accuracy"] = mean_ci([float(a.get("call") == t) for a, t in rows], n_boot, seed)
    uniform = [1.0 / len(task.classes)] * len(task.classes)
    probs = np.array([uniform if a["probabilities"] is None else [a["probabilities"][c] for c in task.classes] for a, _ in rows])
    present = [k for k in range(len(task.classes)) if 0 < (truth == k).sum() < truth.size]
    if present:
        aucs = [classification_metrics((truth == k).astype(int), probs[:, k], n_boot=n_boot, seed=seed)["auc"]["value"] for k in present]
        out["auc_macro"] = {"value": float(np.mean(aucs)), "classes": [task.classes[k] for k in present]}
    return out


def egfr_section(task: TaskSpec | None, heads: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """metrics.json's ``egfr`` (Table 3's EGFR columns): the EGFR head's summary, with its class
    counts under Table 3's names; None for a model without that head."""
    if task is None:
        return None
    head = heads[task.key]
    negative, positive = (head["labels"][c] for c in task.classes)
    return {**{k: v for k, v in head.items() if k not in ("name", "kind", "labels")}, "mutant": positive, "wild_type": negative}


def cohort_limits(data: Path | None) -> dict[str, dict[str, float]]:
    """Best possible scores per head on a synthetic cohort: those of the phantom that wrote the
    folder (phantom.json), else the brain phantom's (PHANTOM.md; cohorts written before phantom.json)."""
    from ..phantoms.registry import best_possible, cohort_preset

    return best_possible((cohort_preset(data) if data else None) or "mtsa-net")
