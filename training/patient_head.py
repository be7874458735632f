"""``mtsa fit-head``: fit what sits after the network, on the network's own training patients.

The network is run on the training and validation patients of its own split exactly as a user
would run it (``predict_volume``). Two things are chosen from those predictions:
1. the GTV component filter: the peak probability and volume a component must reach, with the
   fewest false positives that still keep (within 1%) the detection of the truth lesions >= 5 mm;
2. the patient-level EGFR model: each patient's filtered lesions are measured
   (``lesion_features``) and a penalised logistic model is fitted over those features (and,
   optionally, the paper's slice probability).
The result is a new checkpoint (weights unchanged) whose GTV task carries ``min_peak`` and whose
EGFR head uses ``lesion_logistic``. Test patients are never touched.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from MTSASegmenterLib.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from MTSASegmenterLib.egfr import aggregate_top_area_half
from MTSASegmenterLib.errors import InputError, MTSAError
from MTSASegmenterLib.heads import slice_values
from MTSASegmenterLib.imageio import read_image
from MTSASegmenterLib.lesion_features import PATIENT_FEATURES, equivalent_diameter_mm, measure_lesions, patient_features
from MTSASegmenterLib.lesions import component_peaks, drop_weak_components, label_components
from MTSASegmenterLib.outputs import check_writable
from MTSASegmenterLib.patient_model import fit_logistic
from MTSASegmenterLib.pipeline import predict_volume

from .cohort import Case, cohort_fingerprint, read_cohort
from .slices import read_mask

SLICE_FEATURE = "slice_probability"
PEAK_CANDIDATES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
VOLUME_CANDIDATES_ML = (0.0, 0.01, 0.02, 0.03, 0.05)
# The lesions whose detection the component filter must keep: 5 mm as evaluate counts them, but
# by equivalent-sphere diameter (the lesion features' size) where evaluate uses the maximum diameter.
MIN_LESION_MM = 5.0
SENSITIVITY_SLACK = 0.01  # the filter may lose at most this share of those lesions on the fitting patients


def fitting_cases(data: Path, model: LoadedModel) -> list[Case]:
    """The training and validation patients of the model's split (the cohort must be its own)."""
    training = model.info.training or {}
    if training.get("cases_csv_sha256") != cohort_fingerprint(data):
        raise InputError(f"{data}: not the cohort this model was trained on (cases.csv differs); fit on the training cohort")
    split = training.get("split", {})
    ids = set(split.get("train", {}).get("case_ids", [])) | set(split.get("val", {}).get("case_ids", []))
    cases = [c for c in read_cohort(data) if c.case_id in ids]
    if len({c.egfr for c in cases if c.egfr is not None}) < 2:
        raise InputError(f"{data}: the model's training patients need EGFR labels of both classes")
    return cases


@dataclass
class Measured:
    """One fitting patient as the unfiltered model sees it."""

    case: Case
    volume: np.ndarray
    probability: np.ndarray  # GTV probability on the model grid
    truth: np.ndarray  # truth GTV on the model grid
    spacing_zyx: tuple[float, float, float]
    slice_values: dict[int, np.ndarray]  # the EGFR head's per-slice probabilities


def measure(case: Case, model: LoadedModel, device: str) -> Measured:
    image = read_image(case.image)
    prediction = predict_volume(image, model, device=device, case=case.case_id)
    task = model.egfr_task()
    return Measured(case, prediction.volume, prediction.slices.gtv_probability,
                    prediction.grid.mask_to_grid(read_mask(case, image)) > 0,
                    prediction.grid.spacing_zyx,
                    slice_values(model.tasks, prediction.slices.class_logits)[task.name])


def choose_filter(patients: list[Measured]) -> tuple[float, float, list[dict[str, float]]]:
    """The component filter (peak probability, volume) with the fewest false-positive components
    that keeps the detection of truth lesions >= 5 mm within the slack of the unfiltered model's,
    on the fitting patients; and the trade-off it was chosen from."""
    grid = [(p, v) for p in PEAK_CANDIDATES for v in VOLUME_CANDIDATES_ML]
    counts = np.zeros((len(grid), 2))  # detected lesions, false-positive components
    total = 0
    for patient in patients:
        labels, peaks, sizes = component_peaks(patient.probability)
        voxel_ml = float(np.prod(patient.spacing_zyx)) / 1000.0
        volumes = sizes * voxel_ml
        kept = np.array([(peaks >= p) & (volumes >= v) for p, v in grid]).reshape(len(grid), -1)
        truth_labels, n_truth = label_components(patient.truth)
        for t in range(1, n_truth + 1):
            inside = truth_labels == t
            if equivalent_diameter_mm(inside.sum() * voxel_ml) < MIN_LESION_MM:
                continue
            total += 1
            hit = np.unique(labels[inside])
            counts[:, 0] += kept[:, hit[hit > 0] - 1].any(axis=1)
        false = np.array([not patient.truth[labels == k].any() for k in range(1, len(peaks) + 1)], dtype=bool)
        counts[:, 1] += kept[:, false].sum(axis=1)
    table = [{"min_peak": p, "min_volume_ml": v, "lesion_sensitivity": round(float(d) / max(total, 1), 4),
              "fp_per_patient": round(float(f) / len(patients), 3)} for (p, v), (d, f) in zip(grid, counts)]
    floor = table[0]["lesion_sensitivity"] - SENSITIVITY_SLACK
    best = min((row for row in table if row["lesion_sensitivity"] >= floor), key=lambda row: row["fp_per_patient"])
    return float(best["min_peak"]), float(best["min_volume_ml"]), table


def patient_row(p: Measured, min_peak: float, min_volume_ml: float) -> dict[str, Any]:
    """One patient's features as the product measures them on its own (filtered) prediction."""
    probability = p.probability.copy()
    drop_weak_components(probability, min_peak, min_volume_ml, p.spacing_zyx)
    areas = {z: float((probability[z] >= 0.5).sum()) for z in p.slice_values}
    paper = aggregate_top_area_half(areas, {z: float(v[-1]) for z, v in p.slice_values.items()})["probability"]
    lesions = measure_lesions(p.volume, probability >= 0.5, p.spacing_zyx)
    return {"case": p.case.case_id, "egfr": "" if p.case.egfr is None else p.case.egfr, **patient_features(lesions),
            SLICE_FEATURE: 0.5 if paper is None else paper}


def cross_validated_accuracy(x: np.ndarray, y: np.ndarray, features: tuple[str, ...], l2: float, folds: int = 8,
                             seed: int = 0) -> float:
    """Accuracy of the same fit on held-out folds of the fitting patients (a preview; the network
    itself has seen these patients, so new ones may do worse)."""
    order = np.random.default_rng(seed).permutation(len(y))
    correct = 0
    for held in np.array_split(order, min(folds, len(y))):
        keep = np.setdiff1d(order, held)
        if len(np.unique(y[keep])) < 2:
            continue
        m = fit_logistic(x[keep], y[keep], features, l2)
        correct += sum((m.probability(dict(zip(features, x[i]))) > 0.5) == bool(y[i]) for i in held)
    return correct / len(y)


def fit_head(model: LoadedModel, cases: list[Case], out: Path, device: str = "auto", l2: float = 1.0,
             with_slice_probability: bool = False, progress_bar: bool = True) -> dict[str, Any]:
    """Choose the GTV component filter, fit the patient model, write the new checkpoint to ``out``
    and the feature table beside it; returns the summary."""
    task, segmentation = model.egfr_task(), model.task("segmentation")
    if task is None or segmentation is None:
        raise InputError(f"{model.path}: fit-head needs a model with both the GTV and the EGFR task")
    unfiltered = {"segmentation": {"min_peak": 0.0, "min_volume_ml": 0.0}, "binary": {"aggregation": "top_area_half_mean", "patient_model": {}}}
    base = replace(model, tasks=[replace(t, **unfiltered.get(t.kind, {})) for t in model.tasks])
    bar = tqdm(cases, desc="predicting", unit="patient", file=sys.stderr, disable=None if progress_bar else True)
    patients = [measure(case, base, device) for case in bar]
    min_peak, min_volume_ml, trade_off = choose_filter(patients)
    rows = [patient_row(p, min_peak, min_volume_ml) for p in patients]
    features = (*PATIENT_FEATURES, SLICE_FEATURE) if with_slice_probability else PATIENT_FEATURES
    labelled = [r for r in rows if r["egfr"] != ""]
    x = np.array([[r[f] for f in features] for r in labelled], dtype=float)
    y = np.array([r["egfr"] for r in labelled], dtype=int)
    patient_model = fit_logistic(x, y, features, l2)
    summary = {"patients": len(labelled), "l2": l2, "features": list(features),
               "cross_validated_accuracy": round(cross_validated_accuracy(x, y, features, l2), 4),
               "training_accuracy": round(float(np.mean([(patient_model.probability(dict(zip(features, r))) > 0.5) == bool(t)
                                                         for r, t in zip(x, y)])), 4),
               "min_peak": min_peak, "min_volume_ml": min_volume_ml, "filter_trade_off": trade_off, "filter_patients": len(patients)}
    tasks = [replace(t, aggregation="lesion_logistic", patient_model=patient_model.to_dict()) if t is task
             else replace(t, min_peak=min_peak, min_volume_ml=min_volume_ml) if t is segmentation else t for t in model.tasks]
    info = replace(model.info, metrics={**model.info.metrics, "patient_head": summary})
    save_checkpoint(out, model.net, model.net_config, model.preprocess, tasks, info, model.extra)
    with open(feature_table_path(out), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return summary


def feature_table_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name.removesuffix(".pt") + ".features.csv")


def main(argv: list[str] | None = None, prog: str = "mtsa fit-head") -> int:
    p = argparse.ArgumentParser(prog=prog, description="Fit the patient-level EGFR model (lesion features) of a trained network.")
    p.add_argument("--model", type=Path, required=True, help="trained checkpoint (best.pt of mtsa train)")
    p.add_argument("--data", type=Path, required=True, help="the cohort folder it was trained on")
    p.add_argument("--out", type=Path, required=True, help="new checkpoint with the patient-level model")
    p.add_argument("--l2", type=float, default=1.0, help="penalty on the standardised coefficients")
    p.add_argument("--with-slice-probability", action="store_true",
                   help="also feed the paper's slice probability (the network has seen the fitting patients: it can overfit)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.l2 <= 0:
            raise InputError(f"--l2 {args.l2}: must be positive")
        if args.out.resolve() == args.model.resolve():
            raise InputError(f"--out {args.out}: would replace the input model; choose another path")
        check_writable([args.out, feature_table_path(args.out)], args.overwrite)
        model = load_checkpoint(args.model)
        summary = fit_head(model, fitting_cases(args.data, model), args.out, args.device, args.l2, args.with_slice_probability)
    except MTSAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"GTV components kept when their peak probability reaches {summary['min_peak']:g} and their volume "
          f"{summary['min_volume_ml']:g} mL; patient-level EGFR model "
          f"fitted on {summary['patients']} patients: cross-validated accuracy {summary['cross_validated_accuracy']:.3f} "
          f"(training {summary['training_accuracy']:.3f}); written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
