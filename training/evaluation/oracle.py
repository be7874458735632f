"""The image oracle of docs/PHANTOM.md: what a perfect segmentation would give this image.

It is the cross-validated patient-level accuracy of the project's patient-level model, fitted as
``mtsa fit-head`` fits it (the penalised logistic model of ``patient_model`` over the lesion
features of ``lesion_features``, with fit-head's own measuring and cross-validation code), on
features measured from the image *inside the truth masks* of the evaluated patients. The Bayes
limit counts what the image may not show (oedema on T1-CE, thick slices); the oracle counts only
what it shows. A trained model's accuracy on the same patients is judged against it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from MTSASegmenterLib.postprocess.lesion_features import PATIENT_FEATURES

from ..train.fit_head import cross_validated_accuracy
from .scores import PatientResult

L2 = 1.0  # fit-head's default penalty
FOLDS = 8  # fit-head's cross-validation


def image_oracle(results: Sequence[PatientResult], column: str, model_accuracy: float | None = None) -> dict[str, Any] | None:
    """The oracle for the binary labels of ``column``; None when no patient has such a label.
    ``accuracy`` is None (with a ``note``) unless both classes hold at least two patients.
    ``model_minus_oracle``: the model's accuracy on the same patients minus the oracle."""
    labelled = [(r.truth_features, r.labels.get(column, "").strip()) for r in results]
    labelled = [(features, label) for features, label in labelled if features is not None and label]
    if not labelled:
        return None
    counts = Counter(label for _, label in labelled)
    out: dict[str, Any] = {"column": column, "accuracy": None, "patients": len(labelled), "labels": dict(sorted(counts.items())),
                           "features": list(PATIENT_FEATURES), "l2": L2, "folds": min(FOLDS, len(labelled))}
    if len(counts) != 2 or min(counts.values()) < 2:
        out["note"] = "needs two classes of at least two patients each"
        return out
    positive = sorted(counts)[1]  # accuracy does not depend on which class is called positive
    x = np.array([[features[f] for f in PATIENT_FEATURES] for features, _ in labelled], dtype=float)
    y = np.array([label == positive for _, label in labelled], dtype=int)
    out["accuracy"] = float(cross_validated_accuracy(x, y, PATIENT_FEATURES, L2, folds=FOLDS))
    if model_accuracy is not None:
        out["model_minus_oracle"] = model_accuracy - out["accuracy"]
    return out
