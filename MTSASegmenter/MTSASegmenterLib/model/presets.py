"""The three multi-task systems of the papers in shared/seeds as presets: task list, intensity
mapping and network options, so that ``mtsa train --preset NAME`` sets them up in one word.

- ``mtsa-net``: brain metastasis GTV + EGFR from T1-CE MR (Zhou et al. 2023), the default.
- ``hcc-tace``: hepatocellular carcinoma segmentation + objective response to TACE from
  contrast-enhanced CT (multi-DL, Li et al. 2022): Hounsfield units through a liver window.
- ``breast-dce``: breast tumour segmentation + ER, PR, HER2 status and the Ki-67 index from
  single-phase DCE-MRI, with the core / rim / surroundings weighting of the breast paper;
  MR intensities mapped by tissue percentiles.

Labels come from cases.csv columns named after the heads (``response``; ``er``, ``pr``,
``her2``, ``ki67``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import DEFAULT_TASKS, TaskSpec


@dataclass(frozen=True)
class Preset:
    name: str  # the model's name in its checkpoint and reports
    description: str
    tasks: tuple[TaskSpec, ...]
    preprocess: dict[str, Any] = field(default_factory=dict)  # PreprocessConfig fields
    net: dict[str, Any] = field(default_factory=dict)  # NetConfig fields


def _receptor(name: str) -> TaskSpec:
    return TaskSpec(name, "binary", ("negative", "positive"), aggregation="top_area_half_mean")


PRESETS: dict[str, Preset] = {
    "mtsa-net": Preset("MTSA-Net", "brain metastasis GTV + EGFR, T1-CE MR (MTSA-Net)", DEFAULT_TASKS),
    "hcc-tace": Preset(
        "multi-DL (HCC, TACE response)",
        "HCC segmentation + objective response to TACE, contrast CT (multi-DL)",
        (TaskSpec("Tumour", "segmentation", terminology="liver-tumour"),
         TaskSpec("Response", "binary", ("non-response", "response"), aggregation="top_area_half_mean")),
        preprocess={"normalisation": "ct_window", "window": (-100.0, 250.0), "clip_max": 1.0},
    ),
    "breast-dce": Preset(
        "spatial multi-task (breast DCE-MRI)",
        "breast tumour segmentation + ER, PR, HER2, Ki-67, single-phase DCE-MRI",
        (TaskSpec("Tumour", "segmentation", terminology="breast-tumour"), _receptor("ER"), _receptor("PR"), _receptor("HER2"),
         TaskSpec("Ki-67", "regression", column="ki67", unit="%", scale=100.0, aggregation="top_area_half_mean")),
        preprocess={"normalisation": "percentile", "percentiles": (1.0, 99.0)},
        net={"roi_weighting": True},
    ),
}
