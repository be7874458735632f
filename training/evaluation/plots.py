"""Evaluation pictures: the reliability diagram of patient-level EGFR probabilities and the
per-slice EGFR probability plot of the paper's Fig. 5.

Matplotlib is a training-side dependency only; figures are drawn on ``matplotlib.figure.Figure``
objects with the Agg canvas, so no global pyplot state or display backend is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from MTSASegmenterLib.config import TaskSpec
from MTSASegmenterLib.inference.pipeline import Prediction
from MTSASegmenterLib.model.checkpoint import LoadedModel
from MTSASegmenterLib.postprocess.heads import slice_values
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MUTANT, WILD, USED = "#c0392b", "#95a5a6", "#e67e22"


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def calibration_plot(
    path: Path, y_true: Sequence[int], probability: Sequence[float], *, n_bins: int | None = None, title: str = "", note: str = ""
) -> None:
    """Reliability diagram: observed share of mutants against mean predicted probability per bin.

    Equal-width bins over [0, 1]; 5 bins below 50 patients, else 10, so bins are not mostly empty.
    Each point is labelled with its patient count, and a histogram of the counts sits below.
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(probability, dtype=float)
    n_bins = n_bins or (10 if p.size >= 50 else 5)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    filled = counts > 0
    mean_p = np.bincount(which, weights=p, minlength=n_bins)[filled] / counts[filled]
    observed = np.bincount(which, weights=y, minlength=n_bins)[filled] / counts[filled]

    fig = Figure(figsize=(5.0, 6.0))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    top.plot(mean_p, observed, "o-", color=MUTANT, label="model")
    for x, o, c in zip(mean_p, observed, counts[filled]):
        top.annotate(f"n={c}", (x, o), textcoords="offset points", xytext=(4, 6), fontsize=8)
    top.set(xlim=(0, 1), ylim=(-0.02, 1.02), ylabel="observed share EGFR-mutant", title=title or "EGFR calibration")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar((edges[:-1] + edges[1:]) / 2, counts, width=1.0 / n_bins * 0.9, color=WILD)
    bottom.set(xlabel="predicted probability of EGFR mutation (patient)", ylabel="patients")
    if note:
        fig.text(0.01, 0.005, note, fontsize=7, va="bottom")
    _save(fig, path)


def slice_probability_plot(
    path: Path,
    *,
    case: str,
    positions_mm: Sequence[float],
    probabilities: Sequence[float],
    areas_mm2: Sequence[float] | None,
    used: Sequence[bool],
    patient_probability: float | None,
    threshold: float,
    truth: str,
    call: str,
) -> None:
    """The paper's Fig. 5 for one patient: each slice's mutation probability against its position,
    the slices behind the patient call highlighted, the predicted GTV area on a second axis, the
    threshold and the patient probability as horizontal lines."""
    x = np.asarray(positions_mm, dtype=float)
    prob = np.asarray(probabilities, dtype=float)
    width = 0.8 * float(np.min(np.diff(np.sort(x)))) if x.size > 1 else 1.0
    chosen = np.asarray(used, dtype=bool)

    fig = Figure(figsize=(8.0, 3.6))
    ax = fig.subplots()
    ax.bar(x[chosen], prob[chosen], width=width, color=USED, label="slices used for the call")
    ax.bar(x[~chosen], prob[~chosen], width=width, color=WILD, label="other slices")
    ax.axhline(threshold, color="black", lw=1, ls=":", label=f"threshold {threshold:g}")
    if patient_probability is not None:
        ax.axhline(patient_probability, color=MUTANT, lw=1.5, ls="--", label=f"patient P = {patient_probability:.3f}")
    ax.set(ylim=(0, 1), xlabel="slice position S (mm)", ylabel="P(EGFR mutant)")
    if areas_mm2 is not None:
        area_axis = ax.twinx()
        area_axis.plot(x, np.asarray(areas_mm2, dtype=float), color="#2e86c1", lw=1.2, label="predicted GTV area")
        area_axis.set_ylabel("predicted GTV area (mm²)", color="#2e86c1")
        area_axis.set_ylim(bottom=0)
        area_axis.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{case}: truth {truth or 'unknown'}, call {call}")
    _save(fig, path)


def write_slice_picture(path: Path, case: str, truth: str, prediction: Prediction, model: LoadedModel, task: TaskSpec,
                        answer: dict[str, Any]) -> None:
    """``slice_probability_plot`` of one patient's prediction for the binary head ``task``."""
    values = slice_values(model.tasks, prediction.slices.class_logits)[task.name]
    z = np.array(sorted(values), dtype=int)
    pixel_mm2 = model.preprocess.spacing_mm**2
    areas = None
    if model.task("segmentation") is not None:
        areas = [(prediction.slices.gtv_probability[k] >= 0.5).sum() * pixel_mm2 for k in z]
    used = set(answer.get("slices_used") or [])
    slice_probability_plot(
        path, case=case, positions_mm=prediction.grid.slice_positions_mm[z], probabilities=[values[k][-1] for k in z],
        areas_mm2=areas, used=[int(k) in used for k in z], patient_probability=answer.get("probability"),
        threshold=answer.get("threshold", task.threshold), truth=truth, call=answer["call"],
    )
