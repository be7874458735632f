"""``mtsa fit-head``: give a trained network a patient-level EGFR model over lesion features.

The network is run on the training and validation patients of its own split exactly as a user
would run it (``predict_volume``); each patient's predicted lesions are measured
(``lesion_features``) and a penalised logistic model over those features and the paper's slice
probability is fitted. The result is a new checkpoint whose EGFR head uses
``lesion_logistic``; the weights are unchanged. Test patients are never touched.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from MTSASegmenterLib.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from MTSASegmenterLib.errors import InputError, MTSAError
from MTSASegmenterLib.imageio import read_image
from MTSASegmenterLib.lesion_features import PATIENT_FEATURES, measure_lesions, patient_features
from MTSASegmenterLib.outputs import check_writable
from MTSASegmenterLib.patient_model import LogisticModel, fit_logistic
from MTSASegmenterLib.pipeline import predict_volume

from .cohort import Case, cohort_fingerprint, read_cohort

FEATURES = (*PATIENT_FEATURES, "slice_probability")


def fitting_cases(data: Path, model: LoadedModel) -> list[Case]:
    """The training and validation patients of the model's split (the cohort must be its own)."""
    training = model.info.training or {}
    if training.get("cases_csv_sha256") != cohort_fingerprint(data):
        raise InputError(f"{data}: not the cohort this model was trained on (cases.csv differs); fit on the training cohort")
    split = training.get("split", {})
    ids = set(split.get("train", {}).get("case_ids", [])) | set(split.get("val", {}).get("case_ids", []))
    cases = [c for c in read_cohort(data) if c.case_id in ids and c.egfr is not None]
    if len({c.egfr for c in cases}) < 2:
        raise InputError(f"{data}: the model's training patients need EGFR labels of both classes")
    return cases


def patient_row(case: Case, model: LoadedModel, device: str) -> dict[str, Any]:
    """One patient's features as the product measures them on its own prediction."""
    task = model.task("binary")
    prediction = predict_volume(read_image(case.image), model, device=device, case=case.case_id)
    spacing_zyx = tuple(float(s) for s in prediction.grid.reference.GetSpacing()[::-1])
    lesions = measure_lesions(prediction.volume, prediction.slices.gtv_probability >= 0.5, spacing_zyx)
    slice_probability = prediction.report[task.name.lower()]["probability"]
    return {"case": case.case_id, "egfr": case.egfr, **patient_features(lesions),
            "slice_probability": 0.5 if slice_probability is None else slice_probability}


def cross_validated_accuracy(x: np.ndarray, y: np.ndarray, l2: float, folds: int = 8, seed: int = 0) -> float:
    """Accuracy of the same fit on held-out folds of the fitting patients (an honest preview)."""
    order = np.random.default_rng(seed).permutation(len(y))
    correct = 0
    for held in np.array_split(order, min(folds, len(y))):
        keep = np.setdiff1d(order, held)
        if len(np.unique(y[keep])) < 2:
            continue
        m = fit_logistic(x[keep], y[keep], FEATURES, l2)
        correct += sum((m.probability(dict(zip(FEATURES, x[i]))) > 0.5) == bool(y[i]) for i in held)
    return correct / len(y)


def fit_head(model: LoadedModel, cases: list[Case], out: Path, device: str = "auto", l2: float = 1.0,
             progress_bar: bool = True) -> dict[str, Any]:
    """Fit, write the new checkpoint to ``out`` and ``out``'s feature table beside it; returns the summary."""
    task = model.task("binary")
    if task is None or model.task("segmentation") is None:
        raise InputError(f"{model.path}: fit-head needs a model with both the GTV and the EGFR task")
    bar = tqdm(cases, desc="measuring lesions", unit="patient", file=sys.stderr, disable=None if progress_bar else True)
    rows = [patient_row(case, model, device) for case in bar]
    x = np.array([[row[f] for f in FEATURES] for row in rows], dtype=float)
    y = np.array([row["egfr"] for row in rows], dtype=int)
    patient_model: LogisticModel = fit_logistic(x, y, FEATURES, l2)
    summary = {"patients": len(rows), "l2": l2, "cross_validated_accuracy": round(cross_validated_accuracy(x, y, l2), 4),
               "training_accuracy": round(float(np.mean([(patient_model.probability(dict(zip(FEATURES, r))) > 0.5) == bool(t)
                                                         for r, t in zip(x, y)])), 4)}
    tasks = [replace(t, aggregation="lesion_logistic", patient_model=patient_model.to_dict()) if t is task else t for t in model.tasks]
    info = replace(model.info, metrics={**model.info.metrics, "patient_head": summary})
    save_checkpoint(out, model.net, model.net_config, model.preprocess, tasks, info, model.extra)
    table = feature_table_path(out)
    with open(table, "w", newline="", encoding="utf-8") as f:
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
        summary = fit_head(model, fitting_cases(args.data, model), args.out, args.device, args.l2)
    except MTSAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"patient-level EGFR model fitted on {summary['patients']} patients: cross-validated accuracy "
          f"{summary['cross_validated_accuracy']:.3f} (training {summary['training_accuracy']:.3f}); written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
