"""Patient-level rules: from one per-slice probability (a binary head's positive class) to the
patient's probability. A head names its rule in ``TaskSpec.aggregation``.

``top_area_half_mean``, as MTSA-Net's paper reads EGFR (Zhou et al. 2023, Fig. 5): slices are
ranked by predicted GTV area; the mean probability of the upper 50% of the slices that show GTV
is the patient's.
``lesion_logistic``: a logistic model (fitted after training by ``mtsa fit-head``, stored in the
checkpoint) over the features of every predicted lesion (and optionally that slice probability),
because a patient-level label may show in how many lesions there are and how they differ, which
no single slice holds.
Without any predicted GTV there is no tumour to read: the probability is None (indeterminate).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import AGGREGATIONS
from .lesion_features import LesionFeatures, patient_features
from .patient_model import LogisticModel

TOP_AREA_HALF_MEAN, LESION_LOGISTIC = AGGREGATIONS  # the names TaskSpec.aggregation takes


@dataclass(frozen=True)
class LesionEvidence:
    """What a ``lesion_logistic`` probability rests on: the patient's features, each one's
    contribution to the logit, and the lesions measured."""

    features: dict[str, float]
    logit_contributions: dict[str, float]
    lesions: list[LesionFeatures]

    def to_dict(self) -> dict[str, Any]:
        return {"features": {k: round(v, 4) for k, v in self.features.items()},
                "logit_contributions": {k: round(v, 4) for k, v in self.logit_contributions.items()},
                "lesions": [les.to_dict() for les in self.lesions]}


@dataclass(frozen=True)
class PatientProbability:
    """One rule's answer. ``slice_probability`` and ``evidence`` only for ``lesion_logistic``."""

    probability: float | None  # None: indeterminate
    slices_used: list[int]
    slice_probability: float | None = None
    evidence: LesionEvidence | None = None


def top_area_half(areas_mm2: Mapping[int, float], available: Mapping[int, Any]) -> list[int]:
    """The upper half (rounded up) by GTV area of the slices that show GTV and have a value, sorted."""
    with_gtv = sorted((z for z, a in areas_mm2.items() if a > 0 and z in available), key=lambda z: (-areas_mm2[z], z))
    return sorted(int(z) for z in with_gtv[: math.ceil(len(with_gtv) / 2)])


def top_area_half_mean(areas_mm2: Mapping[int, float], probabilities: Mapping[int, float]) -> PatientProbability:
    used = top_area_half(areas_mm2, probabilities)
    if not used:
        return PatientProbability(None, [])
    return PatientProbability(float(sum(probabilities[z] for z in used) / len(used)), used)


def lesion_logistic(areas_mm2: Mapping[int, float], probabilities: Mapping[int, float], lesions: list[LesionFeatures],
                    model: LogisticModel) -> PatientProbability:
    """The lesion features (and the paper's slice probability, if the model uses it) weighed by ``model``."""
    paper = top_area_half_mean(areas_mm2, probabilities)
    if paper.probability is None or not lesions:
        return PatientProbability(None, paper.slices_used)
    values = {**patient_features(lesions), "slice_probability": paper.probability}
    contributions = model.contributions(values)
    return PatientProbability(model.probability(values), paper.slices_used, paper.probability,
                              LesionEvidence(values, contributions, list(lesions)))
