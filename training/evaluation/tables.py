"""The tables of an evaluation: ``table3.md``/``.csv`` (the paper's Table 3, one row per model) and
``heads.md`` (every head beside its best possible score), from the summaries of ``summary``."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from MTSASegmenterLib.io.outputs import atomic_outputs

DASH = "—"
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
ORACLE = "Image oracle accuracy"
GAP = "EGFR Accuracy - oracle"
TABLE_COLUMNS: tuple[str, ...] = (
    "Model", *(c[0] for c in METRIC_COLUMNS[:8]), BEST, ORACLE, GAP, *(c[0] for c in METRIC_COLUMNS[8:]), "Indeterminate", "Patients"
)
CSV_COLUMNS: tuple[str, ...] = tuple(
    part
    for column in TABLE_COLUMNS
    for part in ((column, f"{column} CI low", f"{column} CI high") if column in {c[0] for c in METRIC_COLUMNS} else (column,))
)
TABLE_NOTE = (
    "GTV Dice, HD95, Precision and Recall: on the tumour slices of the model grid, per patient then averaged. "
    "Volume Dice: whole volume on the input grid. Lesion sensitivity: truth lesions >= 5 mm, pooled. "
    "Indeterminate EGFR calls count as wrong (AUC: probability 0.5). [k undefined]: patients left out of that mean "
    "(e.g. HD95 of an empty prediction). Image oracle: cross-validated accuracy of fit-head's lesion-feature model "
    "measured inside the truth masks of the same patients (docs/PHANTOM.md). — : the model has no such output."
)


def _number(value: float | None, decimals: int = 4, sign: bool = False) -> tuple[str, Any]:
    """(markdown cell, csv cell) of a plain number."""
    if value is None:
        return DASH, ""
    return f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}", value


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
    oracle = summary.get("image_oracle") or {}
    md[BEST], flat[BEST] = _number(summary.get("best_possible_accuracy"))
    md[ORACLE], flat[ORACLE] = _number(oracle.get("accuracy"))
    md[GAP], flat[GAP] = _number(oracle.get("model_minus_oracle"), sign=True)
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
    lines += ["", "Figures in parentheses are 95% percentile-bootstrap confidence intervals over patients.", TABLE_NOTE, *notes]
    with atomic_outputs([stem.with_suffix(".md"), stem.with_suffix(".csv")]) as (md_path, csv_path):
        md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(flat for _, flat in cells)


def _cell(metric: dict[str, Any] | None, decimals: int = 3) -> str:
    if not metric or metric.get("value") is None:
        return DASH
    lo, hi = metric.get("ci95", [None, None])
    return f"{metric['value']:.{decimals}f}" + ("" if lo is None else f" ({lo:.2f}, {hi:.2f})")


def _limits(head: dict[str, Any]) -> str:
    """The head's best possible scores (synthetic cohorts) and its image oracle (binary heads)."""
    limits = head.get("best_possible") or {}
    parts = [f"{label} {limits[key]:.3f}" for key, label in (("accuracy", "accuracy"), ("auc", "AUC")) if key in limits]
    if "mae" in limits:
        parts.append(f"MAE {limits['mae']:.2f} {head.get('unit', '')}".rstrip())
    oracle = (head.get("image_oracle") or {}).get("accuracy")
    if oracle is not None:
        parts.append(f"image oracle {oracle:.3f}")
    return ", ".join(parts) or DASH


def _by_band(bands: dict[str, dict[str, Any]]) -> str:
    """'5-10 mm 0.80 (40 of 50), ...': each band's pooled sensitivity and its counts; bands without lesions left out."""
    return ", ".join(f"{label} {b['value']:.2f} ({b['numerator']} of {b['denominator']})"
                     for label, b in bands.items() if b["denominator"]) or DASH


def _dice_by_band(bands: dict[str, dict[str, Any]]) -> str:
    """'< 2 mm 0.80 (12 patients), ...': each band's mean and its patients; bands without patients left out."""
    return ", ".join(f"{label} {b['value']:.2f} ({b['n']} patient{'s' * (b['n'] != 1)})" for label, b in bands.items() if b["n"]) or DASH


def write_heads_table(path: Path, name: str, heads: dict[str, dict[str, Any]], notes: Sequence[str] = (),
                      gtv: dict[str, Any] | None = None) -> None:
    """Every head in one table, as the multi-head papers report them: accuracy and AUC per
    classification head (per receptor, response), mean absolute error per regression head (Ki-67),
    each beside the cohort's best possible score and image oracle; the segmentation's Dice above it."""
    lines = [f"# Heads of {name}", ""]
    if gtv:
        by = gtv.get("lesion_sensitivity_by")
        lines += [f"Segmentation: Dice {_cell(gtv.get('dice'))} on tumour slices, volume Dice {_cell(gtv.get('volume_dice'))}, "
                  f"lesion sensitivity {_cell(gtv.get('lesion_sensitivity'))}, "
                  f"false-positive lesions per patient {_cell(gtv.get('false_positive_lesions_per_patient'), 2)}."
                  + (f" Lesion sensitivity by diameter: {_by_band(by['diameter'])}; by the scan's slice spacing: "
                     f"{_by_band(by['slice_spacing'])}." if by else "")
                  + (f" Volume Dice by the scan's slice spacing: {_dice_by_band(gtv['volume_dice_by_slice_spacing'])}."
                     if "volume_dice_by_slice_spacing" in gtv else ""), ""]
    lines += ["| Head | Kind | Patients | Accuracy | AUC | MAE | Best possible |", "|---|---|---|---|---|---|---|"]
    for head in heads.values():
        mae = head.get("mae")
        lines.append(f"| {head['name']} | {head['kind']} | {head['patients']} | {_cell(head.get('accuracy'))} | "
                     f"{_cell(head.get('auc') or head.get('auc_macro'))} | "
                     f"{DASH if mae is None else _cell(mae, 2) + (' ' + head.get('unit', '')).rstrip()} | {_limits(head)} |")
    lines += ["", "Patients: those with a label in the head's column. AUC: one-vs-rest, macro-averaged for more than "
              "two classes. Indeterminate answers (no GTV) count as wrong and as probability 0.5 (uniform). Best possible: "
              "the Bayes classifier (or posterior-median estimator) that sees the phantom's true lesion features; image "
              "oracle: fit-head's lesion-feature model measured inside the truth masks, cross-validated.", *notes]
    with atomic_outputs([path]) as (tmp,):
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
