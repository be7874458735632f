"""Segmentation and classification metrics, with explicit empty-mask rules and bootstrap CIs.

Conventions (checked in ``Testing/test_metrics.py`` against medpy, MONAI and scikit-learn):

- Masks are boolean arrays of any dimension (2D slices or 3D ``[z, y, x]`` volumes).
- ``spacing`` is given in *array axis order*: ``(sz, sy, sx)`` for a ``[z, y, x]`` array, i.e. the
  reverse of ``sitk.Image.GetSpacing()``.
- Undefined ratios (0/0) give 1.0 when prediction and truth are *both* empty (perfect agreement
  on "nothing there") and 0.0 otherwise (the medpy / scikit-learn ``zero_division=0`` rule), so
  an empty prediction of a real lesion never scores well.
- HD95 with exactly one empty mask is undefined; it returns ``empty_value`` (default NaN, as
  MONAI does). Summaries therefore use ``numpy.nanmean`` *and* report how many cases were NaN,
  or pass a finite penalty such as the image diagonal as ``empty_value``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "dice",
    "hd95",
    "surface_distances",
    "pixel_precision_recall",
    "auc",
    "classification_metrics",
]


def _as_bool_pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred).astype(bool, copy=False)
    truth = np.asarray(truth).astype(bool, copy=False)
    if pred.shape != truth.shape:
        raise ValueError(f"pred and truth shapes differ: {pred.shape} vs {truth.shape}")
    return pred, truth


def _ratio(num: float, den: float, both_empty: bool) -> float:
    """num/den with the module's 0/0 rule (1.0 if both masks are empty, else 0.0)."""
    if den == 0:
        return 1.0 if both_empty else 0.0
    return float(num) / float(den)


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice = 2|P∩T| / (|P|+|T|). Both empty -> 1.0 (medpy gives 0.0 there, MONAI NaN).

    1.0 is chosen because a correct "no lesion on this slice/volume" is a perfect answer; the
    evaluator counts such cases separately when it matters.
    """
    pred, truth = _as_bool_pair(pred, truth)
    inter = np.count_nonzero(pred & truth)
    total = np.count_nonzero(pred) + np.count_nonzero(truth)
    return _ratio(2.0 * inter, total, both_empty=total == 0)


def pixel_precision_recall(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Voxel-wise (precision, recall) = (TP/(TP+FP), TP/(TP+FN)).

    0/0 gives 1.0 only when both masks are empty, else 0.0 (an empty prediction of a real
    lesion has precision 0, like medpy and scikit-learn's ``zero_division=0``).
    """
    pred, truth = _as_bool_pair(pred, truth)
    tp = np.count_nonzero(pred & truth)
    n_pred = np.count_nonzero(pred)
    n_truth = np.count_nonzero(truth)
    both_empty = n_pred == 0 and n_truth == 0
    return _ratio(tp, n_pred, both_empty), _ratio(tp, n_truth, both_empty)


def _spacing_tuple(spacing: float | Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    if np.isscalar(spacing):
        return (float(spacing),) * ndim  # type: ignore[arg-type]
    sp = tuple(float(s) for s in spacing)  # type: ignore[union-attr]
    if len(sp) != ndim:
        raise ValueError(f"spacing {sp} has {len(sp)} values for a {ndim}-D array (give it in array axis order)")
    if any(s <= 0 for s in sp):
        raise ValueError(f"spacing {sp} must be positive")
    return sp


def _border(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels: mask minus its face-connected (connectivity=1) erosion, as medpy and MONAI.

    Erosion uses ``border_value=0`` so voxels on the array edge count as boundary.
    """
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, iterations=1)


def surface_distances(
    pred: np.ndarray, truth: np.ndarray, spacing: float | Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: (pred border -> truth border, truth border -> pred border).

    Both masks must be non-empty. The work is done on the bounding box of the union, which gives
    exactly the full-array result (outside voxels are background, like ``border_value=0``) while
    keeping the Euclidean distance transform small for the usual small lesions.
    """
    pred, truth = _as_bool_pair(pred, truth)
    if not pred.any() or not truth.any():
        raise ValueError("surface distances need two non-empty masks")
    sp = _spacing_tuple(spacing, pred.ndim)
    box = ndimage.find_objects((pred | truth).astype(np.uint8))[0]
    pred, truth = pred[box], truth[box]
    pb, tb = _border(pred), _border(truth)
    d_pt = ndimage.distance_transform_edt(~tb, sampling=sp)[pb]
    d_tp = ndimage.distance_transform_edt(~pb, sampling=sp)[tb]
    return d_pt, d_tp


def hd95(
    pred: np.ndarray,
    truth: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    *,
    empty_value: float = math.nan,
    method: str = "pooled",
) -> float:
    """95th-percentile symmetric Hausdorff distance in mm (2D or 3D).

    ``spacing`` is in array axis order, ``(sz, sy, sx)`` for ``[z, y, x]``.
    ``method="pooled"`` (default) takes the 95th percentile of both directed distance sets
    together, exactly medpy's ``hd95``; ``method="max"`` takes the larger of the two directed
    95th percentiles, MONAI's ``compute_hausdorff_distance(percentile=95)``. Papers differ, so
    the choice is explicit. Both empty -> 0.0; exactly one empty -> ``empty_value`` (NaN by
    default, as MONAI; medpy raises).
    """
    pred, truth = _as_bool_pair(pred, truth)
    has_p, has_t = bool(pred.any()), bool(truth.any())
    if not has_p and not has_t:
        return 0.0
    if not (has_p and has_t):
        return float(empty_value)
    d_pt, d_tp = surface_distances(pred, truth, spacing)
    if method == "pooled":
        return float(np.percentile(np.concatenate([d_pt, d_tp]), 95))
    if method == "max":
        return float(max(np.percentile(d_pt, 95), np.percentile(d_tp, 95)))
    raise ValueError(f"method must be 'pooled' or 'max', got {method!r}")


# --------------------------------------------------------------------------- classification


def _check_labels(y_true: np.ndarray) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must contain only 0 and 1")
    return y.astype(bool)


def _auc_rows(pos: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC per row from average ranks; NaN for rows lacking a class."""
    n1 = pos.sum(axis=-1).astype(float)
    n0 = pos.shape[-1] - n1
    r1 = np.where(pos, ranks, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (r1 - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    return np.where((n1 > 0) & (n0 > 0), out, np.nan)


def auc(y_true: Sequence[int] | np.ndarray, y_score: Sequence[float] | np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic (ties count 1/2). NaN if only one class is present."""
    from scipy.stats import rankdata

    pos = _check_labels(np.asarray(y_true))
    score = np.asarray(y_score, dtype=float)
    if score.shape != pos.shape:
        raise ValueError(f"y_true and y_score shapes differ: {pos.shape} vs {score.shape}")
    return float(_auc_rows(pos, rankdata(score)))


def _confusion_metrics(pos: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Threshold metrics over the last axis (works for one sample or a stack of bootstrap rows).

    0/0 gives 0.0 (scikit-learn's ``zero_division=0``).
    """
    tp = (pos & pred).sum(axis=-1).astype(float)
    tn = (~pos & ~pred).sum(axis=-1).astype(float)
    fp = (~pos & pred).sum(axis=-1).astype(float)
    fn = (pos & ~pred).sum(axis=-1).astype(float)

    def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros_like(a), where=b > 0)

    precision = div(tp, tp + fp)
    recall = div(tp, tp + fn)
    return {
        "accuracy": div(tp + tn, tp + tn + fp + fn),
        "precision": precision,
        "recall": recall,
        "specificity": div(tn, tn + fp),
        "f1": div(2 * tp, 2 * tp + fp + fn),
    }


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_prob: Sequence[float] | np.ndarray,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    calls: Sequence[int] | np.ndarray | None = None,
) -> dict[str, dict[str, object]]:
    """Patient-level accuracy, precision, recall (sensitivity), specificity, F1 and AUC with 95% CIs.

    Returns ``{name: {"value": v, "ci95": [lo, hi], "n_boot": k}}``; a patient is positive when
    ``y_prob >= threshold``, or where ``calls`` is given, when its call is 1 (a tool's own call,
    e.g. an indeterminate one counted as wrong); AUC always ranks ``y_prob``. CIs are percentile-bootstrap intervals over patients (resampled with
    replacement, ``numpy.random.default_rng(seed)``, so the same seed gives the same CI);
    resamples lacking either class are skipped for AUC only, and ``n_boot`` reports how many
    resamples each CI used. Undefined point values (AUC with one class) are NaN with a NaN CI.
    """
    from scipy.stats import rankdata

    pos = _check_labels(np.asarray(y_true))
    prob = np.asarray(y_prob, dtype=float)
    if prob.shape != pos.shape:
        raise ValueError(f"y_true and y_prob shapes differ: {pos.shape} vs {prob.shape}")
    if pos.size == 0:
        raise ValueError("classification_metrics needs at least one patient")
    pred = prob >= threshold if calls is None else np.asarray(calls).astype(bool)
    if pred.shape != pos.shape:
        raise ValueError(f"y_true and calls shapes differ: {pos.shape} vs {pred.shape}")

    point = {k: float(v) for k, v in _confusion_metrics(pos, pred).items()}
    point["auc"] = float(_auc_rows(pos, rankdata(prob)))

    rng = np.random.default_rng(seed)
    # Chunked so memory stays small for large cohorts and many resamples.
    chunks: list[dict[str, np.ndarray]] = []
    n = pos.size
    chunk = max(1, min(n_boot, 2_000_000 // max(n, 1)))
    done = 0
    while done < n_boot:
        m = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(m, n))
        p, s, pr = pos[idx], prob[idx], pred[idx]
        c = _confusion_metrics(p, pr)
        c["auc"] = _auc_rows(p, rankdata(s, axis=1))
        chunks.append(c)
        done += m
    result: dict[str, dict[str, object]] = {}
    for k, v in point.items():
        draws = np.concatenate([c[k] for c in chunks]) if chunks else np.empty(0)
        samples = draws[~np.isnan(draws)]
        if np.isnan(v) or samples.size == 0:
            ci = [math.nan, math.nan]
        else:
            lo, hi = np.percentile(samples, [2.5, 97.5])
            ci = [float(lo), float(hi)]
        result[k] = {"value": v, "ci95": ci, "n_boot": int(samples.size)}
    return result
