"""metrics.py against independent implementations (medpy, MONAI, scikit-learn) and its empty-mask rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from MTSASegmenterLib import metrics
from scipy import ndimage

SPACING_3D = (3.0, 0.7, 0.5)  # (sz, sy, sx): thick axial slices, anisotropic in-plane
SPACING_2D = (0.7, 0.5)


def _blobs(shape: tuple[int, ...], seed: int, sigma: float = 2.0, frac: float = 0.85) -> np.ndarray:
    """Random lesion-like masks: smoothed noise above a quantile (several irregular blobs)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field > np.quantile(field, frac)


def _pairs(ndim: int):
    shape = (10, 36, 40) if ndim == 3 else (48, 52)
    for seed in range(4):
        truth = _blobs(shape, seed)
        # Prediction: truth shifted and dilated/eroded, plus independent noise blobs.
        pred = np.roll(truth, 1, axis=-1)
        pred = ndimage.binary_dilation(pred) if seed % 2 else ndimage.binary_erosion(pred)
        pred |= _blobs(shape, 100 + seed, frac=0.97)
        yield pred, truth


@pytest.mark.parametrize("ndim", [2, 3])
def test_dice_and_precision_recall_match_medpy(ndim):
    binary = pytest.importorskip("medpy.metric.binary")
    for pred, truth in _pairs(ndim):
        assert metrics.dice(pred, truth) == pytest.approx(binary.dc(pred, truth), abs=1e-12)
        p, r = metrics.pixel_precision_recall(pred, truth)
        assert p == pytest.approx(binary.precision(pred, truth), abs=1e-12)
        assert r == pytest.approx(binary.recall(pred, truth), abs=1e-12)


def test_dice_matches_monai():
    torch = pytest.importorskip("torch")
    monai_metrics = pytest.importorskip("monai.metrics")
    for pred, truth in _pairs(3):
        ref = monai_metrics.compute_dice(
            torch.from_numpy(pred[None, None].astype(np.float32)),
            torch.from_numpy(truth[None, None].astype(np.float32)),
        ).item()
        assert metrics.dice(pred, truth) == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("ndim", [2, 3])
def test_hd95_pooled_matches_medpy(ndim):
    binary = pytest.importorskip("medpy.metric.binary")
    spacing = SPACING_3D if ndim == 3 else SPACING_2D
    for pred, truth in _pairs(ndim):
        ref = binary.hd95(pred, truth, voxelspacing=spacing)
        assert metrics.hd95(pred, truth, spacing) == pytest.approx(ref, rel=1e-9, abs=1e-9)


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("ndim", [2, 3])
def test_hd95_max_matches_monai(ndim):
    torch = pytest.importorskip("torch")
    monai_metrics = pytest.importorskip("monai.metrics")
    spacing = SPACING_3D if ndim == 3 else SPACING_2D
    for pred, truth in _pairs(ndim):
        ref = monai_metrics.compute_hausdorff_distance(
            torch.from_numpy(pred[None, None].astype(np.float32)),
            torch.from_numpy(truth[None, None].astype(np.float32)),
            percentile=95,
            spacing=list(spacing),
        ).item()
        # MONAI interpolates the percentile in float32 (torch.quantile): agree to 1e-4 mm.
        assert metrics.hd95(pred, truth, spacing, method="max") == pytest.approx(ref, abs=1e-4)


def test_hd95_uses_spacing_in_array_order():
    a = np.zeros((5, 20, 20), bool)
    b = np.zeros_like(a)
    a[2, 5:8, 5:8] = True
    b[2, 5:8, 11:14] = True  # shifted 6 voxels along x only
    assert metrics.hd95(a, b, SPACING_3D) == pytest.approx(6 * 0.5)
    assert metrics.hd95(a, b, (0.5, 0.7, 3.0)) == pytest.approx(6 * 3.0)
    assert metrics.hd95(a, a, SPACING_3D) == 0.0


def test_empty_mask_rules():
    z = np.zeros((4, 8, 8), bool)
    o = z.copy()
    o[1, 2:4, 2:4] = True
    assert metrics.dice(z, z) == 1.0
    assert metrics.dice(o, z) == 0.0 and metrics.dice(z, o) == 0.0
    assert metrics.pixel_precision_recall(z, z) == (1.0, 1.0)
    assert metrics.pixel_precision_recall(z, o) == (0.0, 0.0)  # missed lesion
    assert metrics.pixel_precision_recall(o, z) == (0.0, 0.0)  # false alarm
    assert metrics.hd95(z, z, SPACING_3D) == 0.0
    assert math.isnan(metrics.hd95(o, z, SPACING_3D))
    assert math.isnan(metrics.hd95(z, o, SPACING_3D))
    assert metrics.hd95(z, o, SPACING_3D, empty_value=99.0) == 99.0
    with pytest.raises(ValueError):
        metrics.hd95(o, o[:, :4], SPACING_3D)


def _cohort(n: int = 60, seed: int = 3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    prob = np.clip(0.5 * y + rng.normal(0.25, 0.25, n), 0, 1)
    prob[:6] = np.round(prob[:6], 1)  # some ties
    prob[6:8] = prob[8:10]  # tied scores across patients
    return y, prob


def test_classification_matches_sklearn():
    skm = pytest.importorskip("sklearn.metrics")
    y, prob = _cohort()
    res = metrics.classification_metrics(y, prob, threshold=0.5, n_boot=200, seed=0)
    pred = prob >= 0.5
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
        "specificity": tn / (tn + fp),
        "f1": skm.f1_score(y, pred),
        "auc": skm.roc_auc_score(y, prob),
    }
    for k, v in expected.items():
        assert res[k]["value"] == pytest.approx(v, abs=1e-12), k
        lo, hi = res[k]["ci95"]
        assert lo <= res[k]["value"] <= hi, k
    assert metrics.auc(y, prob) == pytest.approx(skm.roc_auc_score(y, prob), abs=1e-12)


def test_auc_ties_and_single_class():
    assert metrics.auc([0, 1], [0.3, 0.3]) == 0.5
    assert metrics.auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert math.isnan(metrics.auc([1, 1, 1], [0.2, 0.5, 0.9]))
    res = metrics.classification_metrics([1, 1, 1], [0.2, 0.5, 0.9], n_boot=50)
    assert math.isnan(res["auc"]["value"]) and res["auc"]["n_boot"] == 0
    assert res["recall"]["value"] == pytest.approx(2 / 3)


def test_bootstrap_is_deterministic_per_seed_and_skips_one_class_resamples():
    y, prob = _cohort(n=12)
    a = metrics.classification_metrics(y, prob, n_boot=300, seed=7)
    b = metrics.classification_metrics(y, prob, n_boot=300, seed=7)
    c = metrics.classification_metrics(y, prob, n_boot=300, seed=8)
    assert a == b
    assert a["auc"]["ci95"] != c["auc"]["ci95"]
    assert a["accuracy"]["n_boot"] == 300
    assert a["auc"]["n_boot"] <= 300
    # With one positive among 12, many resamples lack it: they are skipped for AUC only.
    y1 = np.zeros(12, int)
    y1[0] = 1
    d = metrics.classification_metrics(y1, prob, n_boot=300, seed=0)
    assert d["accuracy"]["n_boot"] == 300
    assert 0 < d["auc"]["n_boot"] < 300


def test_own_calls_score_the_call_metrics_and_probabilities_the_auc():
    """An indeterminate call counted as wrong: the calls decide accuracy and the rest, the
    probabilities still rank the patients for the AUC; one bootstrap serves both."""
    y, prob = _cohort(n=30)
    calls = (prob >= 0.5).astype(int)
    calls[:3] = 1 - y[:3]  # three patients called wrong whatever their probability
    res = metrics.classification_metrics(y, prob, n_boot=200, seed=3, calls=calls)
    by_calls = metrics.classification_metrics(y, calls.astype(float), n_boot=200, seed=3)
    by_prob = metrics.classification_metrics(y, prob, n_boot=200, seed=3)
    assert res["accuracy"] == by_calls["accuracy"] and res["f1"] == by_calls["f1"]
    assert res["auc"] == by_prob["auc"]
    with pytest.raises(ValueError, match="calls"):
        metrics.classification_metrics(y, prob, calls=calls[:-1])
