"""Every head's patient-level answer, whatever it predicts: one abstraction for all heads.

The classifier emits every head's outputs side by side (``config.head_slices``); here each head
gets its own per-slice values (softmax for a classification head, ``value * scale`` for a
regression head) and its patient-level answer over the slices of largest GTV area. A binary head
reads its positive class's probability through its rule (``aggregation.py``); a multiclass head
averages the class probabilities, a regression head the values, over the same slices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..config import TaskSpec, head_slices, head_tasks
from .aggregation import LESION_LOGISTIC, LesionEvidence, lesion_logistic, top_area_half, top_area_half_mean
from .lesion_features import LesionFeatures
from .patient_model import LogisticModel

INDETERMINATE = "indeterminate"  # the call without any predicted GTV to read


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


def _slices(values: Mapping[int, float], digits: int) -> dict[str, Any]:
    return {str(z): round(v, digits) for z, v in sorted(values.items())}


@dataclass(frozen=True)
class HeadAnswer:
    """One head's patient-level answer and the slices it rests on (model-grid slice indices)."""

    name: str
    slices_used: list[int]
    slice_gtv_area_mm2: dict[int, float]  # the slices that show GTV
    slice_position_mm: dict[int, float]  # every predicted slice's superior (S) coordinate
    kind: ClassVar[str] = ""

    def text(self) -> str:
        """The answer in a few words, e.g. ``EGFR wild-type (p=0.14)`` or ``Ki-67 23.4 %``."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The head's entry in the report (ARCHITECTURE.md, README "The report")."""
        raise NotImplementedError

    def _head(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind}

    def _tail(self) -> dict[str, Any]:
        return {"slice_gtv_area_mm2": _slices(self.slice_gtv_area_mm2, 2), "slice_position_mm": _slices(self.slice_position_mm, 3)}


@dataclass(frozen=True)
class BinaryAnswer(HeadAnswer):
    classes: tuple[str, ...]  # negative, positive
    probability: float | None  # of the positive class; None: indeterminate
    call: str
    threshold: float  # positive if the probability exceeds it
    slice_probabilities: dict[int, float]  # the positive class's, per slice
    rule: str = ""  # TaskSpec.aggregation
    slice_probability: float | None = None  # lesion_logistic: the slice rule's probability it weighs
    evidence: LesionEvidence | None = None  # lesion_logistic: features and their contributions
    kind: ClassVar[str] = "binary"

    def text(self) -> str:
        return f"{self.name} {self.call}" + (f" (p={self.probability:.2f})" if self.probability is not None else "")

    def to_dict(self) -> dict[str, Any]:
        d = {**self._head(), "probability": self.probability, "call": self.call, "threshold": self.threshold,
             "slices_used": self.slices_used}
        if self.rule == LESION_LOGISTIC:
            if self.probability is not None:
                d["slice_probability"] = self.slice_probability
            d["evidence"] = None if self.evidence is None else self.evidence.to_dict()
        return {**d, "classes": list(self.classes), "slice_probabilities": _slices(self.slice_probabilities, 5), **self._tail()}


@dataclass(frozen=True)
class MulticlassAnswer(HeadAnswer):
    classes: tuple[str, ...]
    probabilities: dict[str, float] | None  # mean over slices_used; None: indeterminate
    call: str
    slice_probabilities: dict[int, list[float]]
    kind: ClassVar[str] = "multiclass"

    def text(self) -> str:
        return f"{self.name} {self.call}" + (f" (p={self.probabilities[self.call]:.2f})" if self.probabilities else "")

    def to_dict(self) -> dict[str, Any]:
        return {**self._head(), "slices_used": self.slices_used, "classes": list(self.classes),
                "probabilities": None if self.probabilities is None else {c: round(p, 5) for c, p in self.probabilities.items()},
                "call": self.call,
                "slice_probabilities": {str(z): [round(p, 5) for p in v] for z, v in sorted(self.slice_probabilities.items())},
                **self._tail()}


@dataclass(frozen=True)
class RegressionAnswer(HeadAnswer):
    value: float | None  # mean over slices_used, in ``unit``; None: indeterminate
    unit: str
    slice_values: dict[int, float]
    kind: ClassVar[str] = "regression"

    def text(self) -> str:
        return f"{self.name} {INDETERMINATE}" if self.value is None else f"{self.name} {self.value:.1f} {self.unit}".rstrip()

    def to_dict(self) -> dict[str, Any]:
        return {**self._head(), "slices_used": self.slices_used, "value": self.value, "unit": self.unit,
                "slice_values": _slices(self.slice_values, 5), **self._tail()}


def _binary(task: TaskSpec, values: Mapping[int, np.ndarray], areas_mm2: Mapping[int, float],
            lesions: list[LesionFeatures] | None, common: dict[str, Any]) -> BinaryAnswer:
    positive = {z: float(v[-1]) for z, v in values.items()}
    if task.aggregation == LESION_LOGISTIC:
        if lesions is None:
            raise ValueError(f"the {task.name} head reads lesion features: pass the measured lesions")
        patient = lesion_logistic(areas_mm2, positive, lesions, LogisticModel.from_dict(task.patient_model))
    else:
        patient = top_area_half_mean(areas_mm2, positive)
    call = INDETERMINATE if patient.probability is None else task.classes[int(patient.probability > task.threshold)]
    return BinaryAnswer(**common, slices_used=patient.slices_used, classes=task.classes, probability=patient.probability,
                        call=call, threshold=task.threshold, slice_probabilities=positive, rule=task.aggregation,
                        slice_probability=patient.slice_probability, evidence=patient.evidence)


def _multiclass(task: TaskSpec, values: Mapping[int, np.ndarray], areas_mm2: Mapping[int, float],
                lesions: list[LesionFeatures] | None, common: dict[str, Any]) -> MulticlassAnswer:
    used = top_area_half(areas_mm2, values)
    mean = np.mean([values[z] for z in used], axis=0) if used else None
    return MulticlassAnswer(**common, slices_used=used, classes=task.classes,
                            probabilities=None if mean is None else {c: float(p) for c, p in zip(task.classes, mean)},
                            call=INDETERMINATE if mean is None else task.classes[int(np.argmax(mean))],
                            slice_probabilities={z: [float(p) for p in v] for z, v in values.items()})


def _regression(task: TaskSpec, values: Mapping[int, np.ndarray], areas_mm2: Mapping[int, float],
                lesions: list[LesionFeatures] | None, common: dict[str, Any]) -> RegressionAnswer:
    used = top_area_half(areas_mm2, values)
    return RegressionAnswer(**common, slices_used=used, value=float(np.mean([values[z][0] for z in used])) if used else None,
                            unit=task.unit, slice_values={z: float(v[0]) for z, v in values.items()})


_ANSWERS: dict[str, Callable[..., HeadAnswer]] = {"binary": _binary, "multiclass": _multiclass, "regression": _regression}


def head_answer(task: TaskSpec, values: Mapping[int, np.ndarray], areas_mm2: Mapping[int, float],
                positions_mm: Mapping[int, float] | np.ndarray, lesions: list[LesionFeatures] | None = None) -> HeadAnswer:
    """One head's patient-level answer from its per-slice ``values`` (``slice_values``), the
    predicted GTV area and position of each slice; ``lesions`` for a ``lesion_logistic`` head."""
    common = {"name": task.name, "slice_gtv_area_mm2": {z: a for z, a in areas_mm2.items() if a > 0},
              "slice_position_mm": {z: float(positions_mm[z]) for z in values}}
    return _ANSWERS[task.kind](task, values, areas_mm2, lesions, common)
