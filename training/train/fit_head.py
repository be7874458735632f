"""``mtsa fit-head``: fit what sits after the network, on the network's own training patients.

The network is run on the training and validation patients of its own split exactly as a user
would run it (``predict_volume``). Two things are chosen from those predictions:
1. the GTV component filter: a logistic model over each predicted component's size, shape and
   certainty (``component_filter.COMPONENT_FEATURES``, with ``--mirror-twin`` also whether it has a
   left-right twin; brightness differs between scanners, so it is left out), fitted to tell
   components that touch a truth lesion from those that touch none, and the lowest threshold on its
   cross-validated scores that leaves at most ``--max-fp-per-patient`` false positives per fitting patient;
2. for a model with an EGFR head, the patient-level EGFR model: each patient's filtered lesions
   are measured (``lesion_features``) and a penalised logistic model is fitted over those features
   (and, optionally, the paper's slice probability).
The result is a new checkpoint (weights unchanged) whose GTV task carries the component model and
whose EGFR head uses ``lesion_logistic``; other heads (a preset's response or receptors) are left
as trained. Test patients are never touched.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from MTSASegmenterLib.config import DEVICES, TaskSpec
from MTSASegmenterLib.errors import InputError, run_command
from MTSASegmenterLib.inference.pipeline import predict_volume
from MTSASegmenterLib.io.imageio import read_image
from MTSASegmenterLib.io.outputs import atomic_outputs, check_writable
from MTSASegmenterLib.model.checkpoint import (
    LoadedModel,
    load_checkpoint,
    save_checkpoint,
)
from MTSASegmenterLib.postprocess.aggregation import top_area_half_mean
from MTSASegmenterLib.postprocess.component_filter import (
    COMPONENT_FEATURES,
    TWIN_FEATURES,
    component_features,
    drop_scored_components,
)
from MTSASegmenterLib.postprocess.heads import slice_values
from MTSASegmenterLib.postprocess.lesion_features import (
    PATIENT_FEATURES,
    measure_lesions,
    patient_features,
)
from MTSASegmenterLib.postprocess.lesions import label_components, max_diameters_mm
from MTSASegmenterLib.postprocess.patient_model import LogisticModel, fit_logistic
from tqdm import tqdm

from ..data.cohort import Case, cohort_fingerprint, egfr_head, read_cohort
from ..data.formats import add_cohort_options
from ..data.slices import read_mask

SLICE_FEATURE = "slice_probability"
THRESHOLD_CANDIDATES = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)  # the trade-off's rows, beside the chosen one
MIN_LESION_MM = 5.0  # the lesions whose detection the trade-off reports (maximum diameter, as evaluate counts)


def fitting_cases(data: Path, model: LoadedModel, gtv_labels: Sequence[int] | None = None, labels: Path | None = None) -> list[Case]:
    """The training and validation patients of the model's split (the cohort must be its own)."""
    training = model.info.training or {}
    if training.get("cases_csv_sha256") != cohort_fingerprint(data, gtv_labels, labels):
        raise InputError(f"{data}: not the cohort this model was trained on (its fingerprint differs); fit on the training cohort")
    split = training.get("split", {})
    ids = set(split.get("train", {}).get("case_ids", [])) | set(split.get("val", {}).get("case_ids", []))
    cases = [c for c in read_cohort(data, gtv_labels, labels) if c.case_id in ids]
    task = egfr_head(model.tasks)
    if task is not None and len({label(c, task) for c in cases} - {None}) < 2:
        raise InputError(f"{data}: the model's training patients need EGFR labels of both classes")
    return cases


def label(case: Case, task: TaskSpec) -> int | None:
    """The case's class index for ``task`` (None: unknown)."""
    value = case.target(task)
    return None if value is None else int(value)


@dataclass
class Measured:
    """One fitting patient as the unfiltered model sees it."""

    case: Case
    volume: np.ndarray
    probability: np.ndarray  # GTV probability on the model grid
    truth: np.ndarray  # truth GTV on the model grid
    spacing_zyx: tuple[float, float, float]
    slice_values: dict[int, np.ndarray]  # the EGFR head's per-slice probabilities (none without one)
    slice_step: int = 1  # model slices per acquired slice (ModelGrid.slice_step)


def measure(case: Case, model: LoadedModel, device: str) -> Measured:
    image = read_image(case.image)
    prediction = predict_volume(image, model, device=device, case=case.case_id)
    task = egfr_head(model.tasks)
    return Measured(case, prediction.volume, prediction.slices.gtv_probability,
                    prediction.grid.mask_to_grid(read_mask(case, image)) > 0,
                    prediction.grid.spacing_zyx,
                    slice_values(model.tasks, prediction.slices.class_logits)[task.name] if task else {},
                    prediction.grid.slice_step)


@dataclass
class Components:
    """One fitting patient's predicted components: labels, features, which touch the truth, and which
    components touch each truth lesion of >= MIN_LESION_MM (maximum diameter, as evaluate counts)."""

    labels: np.ndarray
    features: np.ndarray
    true: np.ndarray
    touching: list[np.ndarray]


def components_of(patient: Measured, names: tuple[str, ...] = COMPONENT_FEATURES) -> Components:
    labels, features = component_features(patient.probability, patient.volume, patient.spacing_zyx, names=names)
    truth_labels, n_truth = label_components(patient.truth)
    true = np.zeros(len(features), dtype=bool)
    true[np.unique(labels[patient.truth & (labels > 0)]) - 1] = True
    large = np.flatnonzero(max_diameters_mm(truth_labels, n_truth, patient.spacing_zyx) >= MIN_LESION_MM) + 1
    touching = [np.unique(labels[truth_labels == t]) for t in large]
    return Components(labels, features, true, [t[t > 0] - 1 for t in touching])


def cross_validated_scores(parts: list[Components], l2: float, names: tuple[str, ...], folds: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Each patient's component scores from a model fitted on the other folds' patients, so the
    threshold is chosen on scores the model did not fit."""
    order = np.random.default_rng(seed).permutation(len(parts))
    scores = [np.ones(len(p.features)) for p in parts]
    for held in np.array_split(order, min(folds, len(parts))):
        rest = [parts[i] for i in np.setdiff1d(order, held)]
        x = np.vstack([p.features for p in rest])
        y = np.concatenate([p.true for p in rest])
        if len(np.unique(y)) < 2:
            continue  # this fold's model cannot be fitted: its patients keep every component
        model = fit_logistic(x, y, names, l2)
        for i in held:
            scores[i] = model.probabilities(parts[i].features)
    return scores


def choose_filter(parts: list[Components], max_fp_per_patient: float, l2: float = 1.0, names: tuple[str, ...] = COMPONENT_FEATURES
                  ) -> tuple[dict[str, Any], float, list[dict[str, float]]]:
    """The component model and the lowest threshold on its (cross-validated) scores that leaves at
    most ``max_fp_per_patient`` false-positive components per fitting patient; and the trade-off
    (lesion sensitivity and false positives per threshold) it was chosen from.

    Without both true and false components on the fitting patients there is nothing to learn:
    no model, every component kept."""
    y = np.concatenate([p.true for p in parts])
    total = sum(len(p.touching) for p in parts)

    def row(threshold: float, scores: list[np.ndarray]) -> dict[str, float]:
        kept = [s >= threshold for s in scores]
        detected = int(sum(k[t].any() for p, k in zip(parts, kept) for t in p.touching))
        false = sum(int((k & ~p.true).sum()) for p, k in zip(parts, kept))
        return {"min_component_probability": threshold, "lesion_sensitivity": round(detected / max(total, 1), 4),
                "fp_per_patient": round(false / len(parts), 3)}

    if len(np.unique(y)) < 2:
        return {}, 0.0, [row(0.0, [np.ones(len(p.features)) for p in parts])]
    scores = cross_validated_scores(parts, l2, names)
    threshold = lowest_threshold(np.concatenate(scores), ~y, max_fp_per_patient * len(parts))
    table = [row(t, scores) for t in sorted({*THRESHOLD_CANDIDATES, threshold})]
    model = fit_logistic(np.vstack([p.features for p in parts]), y, names, l2)
    return model.to_dict(), threshold, table


def lowest_threshold(scores: np.ndarray, false: np.ndarray, max_false: float) -> float:
    """The lowest threshold that keeps at most ``max_false`` of the ``false`` components, taken between
    the scores themselves rather than from a fixed grid, whose steps can drop a lesion to remove one
    false component too many. Scores of 1.0 (a fold that could not be fitted) cannot be dropped: when
    they alone exceed ``max_false``, the threshold keeps only them."""
    levels = np.unique(scores)
    cuts = np.concatenate([[0.0], (levels[:-1] + levels[1:]) / 2, [(levels[-1] + 1.0) / 2] if levels[-1] < 1.0 else []])
    kept_false = np.array([np.count_nonzero(false & (scores >= c)) for c in cuts])  # never rises with the cut
    allowed = kept_false <= max_false + 1e-9
    return float(cuts[np.argmax(allowed)] if allowed.any() else cuts[-1])


def lesion_feature_row(volume: np.ndarray, gtv: np.ndarray, spacing_zyx: tuple[float, float, float],
                       slice_step: int = 1) -> dict[str, float]:
    """The patient-level lesion features (``PATIENT_FEATURES``) of the GTV ``gtv`` in the normalised
    model-grid ``volume``: the patient model's input, measured as the product measures it."""
    return patient_features(measure_lesions(volume, gtv, spacing_zyx, slice_step=slice_step))


def patient_row(p: Measured, components: Components, component_model: dict[str, Any], min_probability: float,
                egfr: int | None) -> dict[str, Any]:
    """One patient's features as the product measures them on its own (filtered) prediction."""
    probability = p.probability.copy()
    if component_model:
        scores = LogisticModel.from_dict(component_model).probabilities(components.features)
        drop_scored_components(probability, components.labels, scores, min_probability)
    areas = {z: float((probability[z] >= 0.5).sum()) for z in p.slice_values}
    paper = top_area_half_mean(areas, {z: float(v[-1]) for z, v in p.slice_values.items()}).probability
    return {"case": p.case.case_id, "egfr": "" if egfr is None else egfr, **lesion_feature_row(p.volume, probability >= 0.5, p.spacing_zyx, p.slice_step),
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
             with_slice_probability: bool = False, progress_bar: bool = True, max_fp_per_patient: float = 0.5,
             filter_features: tuple[str, ...] = COMPONENT_FEATURES) -> dict[str, Any]:
    """Choose the GTV component filter, fit the patient model (if the model has an EGFR head), write
    the new checkpoint to ``out`` and the feature table beside it; returns the summary."""
    task, segmentation = egfr_head(model.tasks), model.task("segmentation")
    if segmentation is None:
        raise InputError(f"{model.path}: fit-head needs a model with a segmentation task")
    unfiltered = {"segmentation": {"min_peak": 0.0, "min_volume_ml": 0.0, "component_model": {}, "min_component_probability": 0.0},
                  "binary": {"aggregation": "top_area_half_mean", "patient_model": {}}}
    base = replace(model, tasks=[replace(t, **unfiltered.get(t.kind, {})) for t in model.tasks])
    bar = tqdm(cases, desc="predicting", unit="patient", file=sys.stderr, disable=None if progress_bar else True)
    patients = [measure(case, base, device) for case in bar]
    parts = [components_of(p, filter_features) for p in patients]  # measured once: for the filter's fit and the patients' rows
    component_model, min_probability, trade_off = choose_filter(parts, max_fp_per_patient, l2, filter_features)
    rows = [patient_row(p, c, component_model, min_probability, label(p.case, task) if task else None)
            for p, c in zip(patients, parts)]
    summary: dict[str, Any] = {"component_model": bool(component_model), "min_component_probability": min_probability,
                               "max_fp_per_patient": max_fp_per_patient, "filter_features": list(filter_features),
                               "filter_trade_off": trade_off, "filter_patients": len(patients)}
    tasks = [replace(t, min_peak=0.0, min_volume_ml=0.0, component_model=component_model, min_component_probability=min_probability)
             if t is segmentation else t for t in model.tasks]
    if task is not None:
        features = (*PATIENT_FEATURES, SLICE_FEATURE) if with_slice_probability else PATIENT_FEATURES
        labelled = [r for r in rows if r["egfr"] != ""]
        x = np.array([[r[f] for f in features] for r in labelled], dtype=float)
        y = np.array([r["egfr"] for r in labelled], dtype=int)
        patient_model = fit_logistic(x, y, features, l2)
        summary.update({
            "patients": len(labelled), "l2": l2, "features": list(features),
            "cross_validated_accuracy": round(cross_validated_accuracy(x, y, features, l2), 4),
            "training_accuracy": round(float(np.mean([(patient_model.probability(dict(zip(features, r))) > 0.5) == bool(t)
                                                      for r, t in zip(x, y)])), 4),
        })
        tasks = [replace(t, aggregation="lesion_logistic", patient_model=patient_model.to_dict()) if t is task else t for t in tasks]
    else:  # the feature table keeps what was measured: the lesions, not an absent head's columns
        rows = [{k: v for k, v in r.items() if k not in ("egfr", SLICE_FEATURE)} for r in rows]
    info = replace(model.info, metrics={**model.info.metrics, "patient_head": summary})
    save_checkpoint(out, model.net, model.net_config, model.preprocess, tasks, info, model.extra)
    with atomic_outputs([feature_table_path(out)]) as (tmp,), open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return summary


def feature_table_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name.removesuffix(".pt") + ".features.csv")


def build_parser(prog: str = "mtsa fit-head") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Fit the GTV component filter and, with an EGFR head, the patient-level "
                                                       "EGFR model (lesion features) of a trained network.")
    p.add_argument("--model", type=Path, required=True, help="trained checkpoint (best.pt of mtsa train)")
    p.add_argument("--data", type=Path, required=True, help="the cohort folder it was trained on")
    add_cohort_options(p)
    p.add_argument("--out", type=Path, required=True, help="new checkpoint with the patient-level model")
    p.add_argument("--l2", type=float, default=1.0, help="penalty on the standardised coefficients")
    p.add_argument("--max-fp-per-patient", type=float, default=0.5,
                   help="false-positive components per fitting patient the component filter may leave (its threshold)")
    p.add_argument("--mirror-twin", action="store_true",
                   help="also fit the component filter on whether a component has a left-right twin (paired choroid plexus, "
                        "carotids: fewer false positives on full-head scans; the bundled model's filter: model card, v18t)")
    p.add_argument("--gamma-view", type=float, action="append", metavar="G",
                   help="predict each slice also with its intensities raised to G (repeatable), a view that may grow the "
                        "lesions the plain one marks (faint enhancement stands out); stored with the model, the filter fitted on it")
    p.add_argument("--max-slice-mm", type=float, metavar="MM",
                   help="predict scans with slices thicker than MM on slices interpolated to at most MM apart (a small "
                        "lesion in one or two thick slices then spans several); stored with the model, the filter fitted on it")
    p.add_argument("--with-slice-probability", action="store_true",
                   help="also feed the paper's slice probability (the network has seen the fitting patients: it can overfit)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return p


def main(argv: list[str] | None = None, prog: str = "mtsa fit-head") -> int:
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    return run_command(lambda: _run(args))


def _with_preprocess(model: LoadedModel, given: str, **change: Any) -> LoadedModel:
    """The model predicting with ``change`` to its preprocessing, which ``PreprocessConfig`` checks (the gamma
    view's powers and normalisation, the slice limits); a refusal names the option ``given``."""
    try:
        return replace(model, preprocess=replace(model.preprocess, **change))
    except ValueError as e:
        raise InputError(f"{given}: {e}") from e


def _run(args: argparse.Namespace) -> int:
    if args.l2 <= 0:
        raise InputError(f"--l2 {args.l2}: must be positive")
    if args.max_fp_per_patient < 0:
        raise InputError(f"--max-fp-per-patient {args.max_fp_per_patient}: must not be negative")
    if args.out.resolve() == args.model.resolve():
        raise InputError(f"--out {args.out}: would replace the input model; choose another path")
    check_writable([args.out, feature_table_path(args.out)], args.overwrite)
    model = load_checkpoint(args.model)
    if args.gamma_view:
        model = _with_preprocess(model, f"--gamma-view {' '.join(map(str, args.gamma_view))}", gamma_views=tuple(args.gamma_view))
    if args.max_slice_mm is not None:
        model = _with_preprocess(model, f"--max-slice-mm {args.max_slice_mm}", max_slice_mm=args.max_slice_mm)
    summary = fit_head(model, fitting_cases(args.data, model, args.gtv_labels, args.labels), args.out, args.device, args.l2, args.with_slice_probability,
                       max_fp_per_patient=args.max_fp_per_patient, filter_features=TWIN_FEATURES if args.mirror_twin else COMPONENT_FEATURES)
    chosen = next(r for r in summary["filter_trade_off"] if r["min_component_probability"] == summary["min_component_probability"])
    print(f"GTV components kept when the component model rates them {summary['min_component_probability']:g} or more "
          f"(fitting patients, cross-validated: lesion sensitivity {chosen['lesion_sensitivity']:.3f}, "
          f"{chosen['fp_per_patient']:g} false positives per patient)"
          + (f"; patient-level EGFR model fitted on {summary['patients']} patients: cross-validated accuracy "
             f"{summary['cross_validated_accuracy']:.3f} (training {summary['training_accuracy']:.3f})" if "patients" in summary else "")
          + f"; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
