"""A whole evaluation: which patients, their scores (``scores``), the cohort summary (``summary``),
the image oracle (``oracle``), and the files: metrics.json, table3.md/.csv, heads.md,
per_patient.csv, calibration.png and patients/. The command line is ``cli.py``; ``mtsa ablations``
calls ``evaluate_model`` directly."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from MTSASegmenterLib.config import TaskSpec, head_tasks
from MTSASegmenterLib.errors import InputError
from MTSASegmenterLib.io.outputs import atomic_outputs
from MTSASegmenterLib.model.checkpoint import LoadedModel
from tqdm import tqdm

from ..data.cohort import EGFR_COLUMN, Case, cohort_fingerprint, egfr_head, read_cohort
from .oracle import image_oracle
from .scores import MIN_LESION_MM, PatientResult, evaluate_case
from .summary import NOT_CLINICAL, RULES, cohort_limits, egfr_section, finite_or_none, summarise_head, summarise_segmentation
from .tables import write_heads_table, write_table


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
    """Score every selected patient and write metrics.json, table3.md/csv, heads.md, per_patient.csv,
    missed_lesions.csv, calibration.png and patients/; returns the summary written to metrics.json."""
    out = Path(out)
    heads = head_tasks(model.tasks)
    for case in selection.cases:  # every head's label cells checked before any patient is predicted
        case.targets(heads)
    oracle_columns = sorted({EGFR_COLUMN} | {t.label_column for t in heads if t.kind == "binary"})
    pictures = out / "patients" if settings.pictures else None
    (pictures or out).mkdir(parents=True, exist_ok=True)
    bar = tqdm(selection.cases, desc="evaluating", unit="patient", file=sys.stderr, disable=None if settings.progress_bar else True)
    results = [evaluate_case(case, model, settings.device, pictures, oracle_columns) for case in bar]
    name = name or model.info.name
    summary = finite_or_none(_summary(model, selection, results, settings, name, data))
    notes = [NOT_CLINICAL] if settings.synthetic else []
    written = [out / "metrics.json", out / "per_patient.csv", out / "missed_lesions.csv"]
    with atomic_outputs(written) as (metrics_path, per_patient_path, missed_path):
        metrics_path.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        _write_per_patient(per_patient_path, results)
        _write_missed(missed_path, results)
    write_table(out / "table3", [(name, summary)], f"Evaluation of {name} ({selection.description})", notes)
    write_heads_table(out / "heads.md", name, summary["heads"], notes, summary["gtv"])
    _calibration(out / "calibration.png", results, egfr_head(heads), name)
    return summary


def _summary(model: LoadedModel, selection: CaseSelection, results: list[PatientResult], settings: EvalSettings,
             name: str, data: Path | None) -> dict[str, Any]:
    heads = head_tasks(model.tasks)
    head_summaries = {t.key: summarise_head(t, results, settings.n_boot, settings.seed) for t in heads}
    egfr_task = egfr_head(heads)
    egfr = egfr_section(egfr_task, head_summaries)
    for task in heads:
        if task.kind == "binary":
            accuracy = (head_summaries[task.key].get("accuracy") or {}).get("value")
            head_summaries[task.key]["image_oracle"] = image_oracle(results, task.label_column, accuracy)
    egfr_oracle = (head_summaries[egfr_task.key]["image_oracle"] if egfr_task is not None
                   else image_oracle(results, EGFR_COLUMN, None))  # the cohort's, for a model without the head
    summary: dict[str, Any] = {
        "model": {"name": name, "path": str(model.path), "sha256": model.sha256, "version": model.info.version,
                  "synthetic_only": model.info.synthetic_only, "tasks": [t.name for t in model.tasks]},
        "data": {"folder": str(data) if data else "", "selection": selection.description,
                 "includes_training_cases": selection.includes_training_cases, "case_ids": [c.case_id for c in selection.cases]},
        "patients": len(results),
        "gtv": summarise_segmentation(results, settings.n_boot, settings.seed),
        "egfr": egfr,
        "heads": head_summaries,
        "best_possible_accuracy": None,
        "image_oracle": egfr_oracle,
        "synthetic_cohort": settings.synthetic,
        "settings": {"device": settings.device, "n_boot": settings.n_boot, "seed": settings.seed,
                     "min_lesion_diameter_mm": MIN_LESION_MM},
        "rules": list(RULES),
    }
    if settings.synthetic:
        limits = cohort_limits(data)
        summary["best_possible_accuracy"] = limits.get("egfr", {}).get("accuracy")
        for key, head in head_summaries.items():
            head["best_possible"] = limits.get(key)
        summary["statement"] = NOT_CLINICAL
    return summary


def _write_per_patient(path: Path, results: Sequence[PatientResult]) -> None:
    rows = [r.row() for r in results]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()} for row in rows)


def _write_missed(path: Path, results: Sequence[PatientResult]) -> None:
    """One row per truth lesion (>= 5 mm) the GTV does not touch: its size, place (RAS mm) and which step lost it."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["case", "volume_ml", "diameter_mm", "r_mm", "a_mm", "s_mm", "cause", "network_peak"])
        for r in results:
            for m in r.missed:
                peak = "" if math.isnan(m.network_peak) else f"{m.network_peak:.3f}"
                writer.writerow([r.case, f"{m.volume_ml:.3f}", f"{m.diameter_mm:.1f}", *(f"{c:.1f}" for c in m.centroid_ras),
                                 m.cause, peak])


def _calibration(path: Path, results: Sequence[PatientResult], task: TaskSpec | None, name: str) -> None:
    """The EGFR head's reliability diagram over its labelled, determinate patients."""
    if task is None:
        return
    rows = [(r.heads[task.key], r.label(task)) for r in results if r.label(task)]
    if not rows:
        return
    from .plots import calibration_plot

    determinate = [(task.classes.index(t), a["probability"]) for a, t in rows if a["probability"] is not None]
    y, p = (np.array(v) for v in zip(*determinate)) if determinate else (np.zeros(0, int), np.zeros(0))
    calibration_plot(path, y, p, title=f"{name}: patient-level {task.name}",
                     note=f"{len(rows) - len(determinate)} indeterminate patient(s) not shown")
