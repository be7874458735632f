"""Patient-level EGFR call.

``top_area_half_mean``, as the paper does it (Zhou et al. 2023, Fig. 5): slices are ranked by
predicted GTV area; the mean mutation probability of the upper 50% of the slices that show GTV is
the patient's probability; mutant if it exceeds the threshold.
``lesion_logistic``: a logistic model (fitted after training by ``mtsa fit-head``, stored in the
checkpoint) over the features of every predicted lesion (and optionally that slice probability),
because the genotype also shows in how many lesions there are and how they differ, which no
single slice holds.
Without any predicted GTV there is no tumour to read the genotype from: the call is indeterminate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .lesion_features import LesionFeatures, patient_features
from .patient_model import LogisticModel

EGFR_CLASSES = ("wild-type", "mutant")


def top_area_half(areas_mm2: Mapping[int, float], available: Mapping[int, Any]) -> list[int]:
    """The upper half (rounded up) by GTV area of the slices that show GTV and have a value, sorted."""
    with_gtv = sorted((z for z, a in areas_mm2.items() if a > 0 and z in available), key=lambda z: (-areas_mm2[z], z))
    return sorted(int(z) for z in with_gtv[: math.ceil(len(with_gtv) / 2)])


def aggregate_top_area_half(
    areas_mm2: Mapping[int, float], probabilities: Mapping[int, float], threshold: float = 0.5,
    classes: tuple[str, str] = EGFR_CLASSES,
) -> dict:
    """Return {"probability", "call", "threshold", "slices_used"} for one patient (probability of classes[1])."""
    used = top_area_half(areas_mm2, probabilities)
    if not used:
        return {"probability": None, "call": "indeterminate", "threshold": threshold, "slices_used": []}
    probability = float(sum(probabilities[z] for z in used) / len(used))
    return {
        "probability": probability,
        "call": classes[1] if probability > threshold else classes[0],
        "threshold": threshold,
        "slices_used": used,
    }


def aggregate_lesion_logistic(
    areas_mm2: Mapping[int, float], probabilities: Mapping[int, float], lesions: list[LesionFeatures],
    model: LogisticModel, threshold: float = 0.5, classes: tuple[str, str] = EGFR_CLASSES,
) -> dict[str, Any]:
    """The lesion features (and the paper's slice probability, if the model uses it) weighed by
    ``model``; the features and each one's contribution to the logit are returned as the evidence."""
    paper = aggregate_top_area_half(areas_mm2, probabilities, threshold, classes)
    if paper["probability"] is None or not lesions:
        return {**paper, "probability": None, "call": "indeterminate", "evidence": None}
    values = {**patient_features(lesions), "slice_probability": paper["probability"]}
    probability = model.probability(values)
    contributions = {name: round(c * (values[name] - m) / s, 4)
                     for name, m, s, c in zip(model.features, model.mean, model.scale, model.coef)}
    return {
        "probability": probability,
        "call": classes[1] if probability > threshold else classes[0],
        "threshold": threshold,
        "slices_used": paper["slices_used"],
        "slice_probability": paper["probability"],
        "evidence": {"features": {k: round(v, 4) for k, v in values.items()}, "logit_contributions": contributions,
                     "lesions": [les.to_dict() for les in lesions]},
    }
