"""From the classifier's per-slice outputs to each head's patient-level answer in the report.

The classifier emits every head's outputs side by side (``config.head_slices``); here each head
gets its own per-slice values (softmax for a classification head, ``value * scale`` for a
regression head) and its patient-level answer over the slices of largest GTV area, as the paper
reads EGFR. A binary head may instead use a fitted lesion-feature model (``egfr.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..config import TaskSpec, head_slices, head_tasks
from .aggregation import (
    aggregate_lesion_logistic,
    aggregate_top_area_half,
    top_area_half,
)
from .lesion_features import LesionFeatures
from .patient_model import LogisticModel


def slice_values(tasks: list[TaskSpec], class_logits: Mapping[int, np.ndarray]) -> dict[str, dict[int, np.ndarray]]:
    """{head name: {slice: values}}: class probabilities, or the regressed value in its unit."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for task in head_tasks(tasks):
        columns = head_slices(tasks)[task.name]
        values = {}
        for z, logits in class_logits.items():
            part = np.asarray(logits[columns], dtype=np.float64)
            if task.kind == "regression":
                values[z] = part * task.scale
            else:
                e = np.exp(part - part.max())
                values[z] = e / e.sum()
        out[task.name] = values
    return out


def head_answer(task: TaskSpec, areas_mm2: Mapping[int, float], values: Mapping[int, np.ndarray],
                lesions: list[LesionFeatures] | None = None) -> dict[str, Any]:
    """One head's patient-level answer; ``lesions`` is needed by a ``lesion_logistic`` binary head."""
    head: dict[str, Any] = {"name": task.name, "kind": task.kind}
    if task.kind == "binary":
        positive = {z: float(v[-1]) for z, v in values.items()}
        if task.aggregation == "lesion_logistic":
            if lesions is None:
                raise ValueError(f"the {task.name} head reads lesion features: pass the measured lesions")
            head.update(aggregate_lesion_logistic(areas_mm2, positive, lesions, LogisticModel.from_dict(task.patient_model),
                                                  task.threshold, task.classes))
        else:
            head.update(aggregate_top_area_half(areas_mm2, positive, task.threshold, task.classes))
        head["classes"] = list(task.classes)
        head["slice_probabilities"] = {str(z): round(p, 5) for z, p in sorted(positive.items())}
        return head
    used = top_area_half(areas_mm2, values)
    head["slices_used"] = used
    if task.kind == "multiclass":
        mean = np.mean([values[z] for z in used], axis=0) if used else None
        head.update(classes=list(task.classes),
                    probabilities=None if mean is None else {c: round(float(p), 5) for c, p in zip(task.classes, mean)},
                    call="indeterminate" if mean is None else task.classes[int(np.argmax(mean))],
                    slice_probabilities={str(z): [round(float(p), 5) for p in v] for z, v in sorted(values.items())})
    else:
        head.update(value=float(np.mean([values[z][0] for z in used])) if used else None, unit=task.unit,
                    slice_values={str(z): round(float(v[0]), 5) for z, v in sorted(values.items())})
    return head

