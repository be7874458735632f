"""Patient-level EGFR model: lesion features measured on known lesions, the logistic fit against
scikit-learn, the checkpoint round trip, and ``mtsa fit-head`` end to end."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from helpers import stand_in, write_count_cohort, write_exact_cohort
from MTSASegmenterLib.config import DEFAULT_TASKS, TaskSpec
from MTSASegmenterLib.errors import CheckpointError
from MTSASegmenterLib.inference.pipeline import predict_volume
from MTSASegmenterLib.io.imageio import read_image
from MTSASegmenterLib.model.checkpoint import load_checkpoint
from MTSASegmenterLib.postprocess.aggregation import lesion_logistic
from MTSASegmenterLib.postprocess.component_filter import (
    COMPONENT_FEATURES,
    MEASURED_FEATURES,
    TWIN_FEATURES,
    component_features,
    drop_unlikely_components,
)
from MTSASegmenterLib.postprocess.lesion_features import (
    PATIENT_FEATURES,
    LesionFeatures,
    measure_lesions,
    patient_features,
)
from MTSASegmenterLib.postprocess.lesions import drop_weak_components
from MTSASegmenterLib.postprocess.patient_model import LogisticModel, fit_logistic

from training.data.cohort import read_cohort
from training.train import fit_head as fit_head_module
from training.train.fit_head import (
    SLICE_FEATURE,
    Measured,
    choose_filter,
    components_of,
    fit_head,
    fitting_cases,
    lowest_threshold,
    main,
)

FEATURES = (*PATIENT_FEATURES, SLICE_FEATURE)

SPACING = (2.0, 1.0, 1.0)


def _ball(shape, centre, radius_mm, spacing=SPACING) -> np.ndarray:
    grids = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij")
    return sum((g - c * s) ** 2 for g, c, s in zip(grids, centre, spacing)) <= radius_mm**2


def _lesion(necrotic: bool, oedema: bool, texture: float, radius_mm: float = 9.0) -> tuple[np.ndarray, np.ndarray]:
    """Normalised volume (tissue 1.0) with one lesion of enhancement 1.8, and its GTV."""
    rng = np.random.default_rng(0)
    shape, centre = (40, 80, 80), (20, 40, 40)
    gtv = _ball(shape, centre, radius_mm)
    volume = np.ones(shape, np.float32)
    if oedema:
        volume[_ball(shape, centre, radius_mm * 1.8) & ~gtv] = 0.8
    volume[gtv] = 1.8 * (1.0 + texture * rng.standard_normal(int(gtv.sum())))
    if necrotic:
        volume[_ball(shape, centre, radius_mm - 3.0)] = 0.5
    return volume, gtv


def test_features_of_known_lesions() -> None:
    solid = measure_lesions(*_lesion(False, False, 0.10), SPACING)
    assert len(solid) == 1
    les = solid[0]
    assert abs(les.diameter_mm - 18.0) < 1.0 and not les.necrotic
    assert 0.08 < les.texture < 0.12 and abs(les.oedema) < 0.02
    necrotic = measure_lesions(*_lesion(True, True, 0.05), SPACING)[0]
    assert necrotic.necrotic and necrotic.oedema > 0.1
    # On a grid that interpolates thick slices, the features are read from the acquired slices only.
    volume, gtv = _lesion(True, True, 0.05)
    interpolated = np.repeat(volume, 3, axis=0), np.repeat(gtv, 3, axis=0)
    spacing = (SPACING[0] / 3, SPACING[1], SPACING[2])
    assert measure_lesions(*interpolated, spacing, slice_step=3) == measure_lesions(volume, gtv, SPACING)
    assert measure_lesions(*interpolated, spacing) != measure_lesions(volume, gtv, SPACING)


def test_small_components_are_not_lesions_and_sums_grow_with_count() -> None:
    volume, gtv = _lesion(False, False, 0.1)
    gtv = gtv.copy()
    gtv[2, 2, 2] = True  # one voxel: 0.002 mL
    assert len(measure_lesions(volume, gtv, SPACING)) == 1
    one = LesionFeatures(12.0, 0.0, 0.1, 0.1)
    f1, f2 = patient_features([one]), patient_features([one, one])
    assert f2["lesion_count"] == 2 and f2["oedema_sum"] == 2 * f1["oedema_sum"] and f2["texture_max"] == f1["texture_max"]
    assert patient_features([])["lesion_count"] == 0


def test_logistic_fit_equals_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, 1.0]
    y = (x[:, 0] + 0.2 * x[:, 1] + rng.normal(size=200) > 2.0).astype(int)
    ours = fit_logistic(x, y, ("a", "b", "c"), l2=2.0)
    z = (x - x.mean(0)) / x.std(0)
    ref = LogisticRegression(C=0.5, tol=1e-10, max_iter=10000).fit(z, y)  # C = 1 / l2
    np.testing.assert_allclose(ours.coef, ref.coef_[0], atol=1e-5)
    assert abs(ours.intercept - ref.intercept_[0]) < 1e-5
    p = ours.probability(dict(zip("abc", x[0])))
    assert abs(p - ref.predict_proba(z[:1])[0, 1]) < 1e-6


def test_logistic_model_round_trip_and_bad_data() -> None:
    model = LogisticModel(("a", "b"), (0.0, 1.0), (1.0, 2.0), (0.5, -1.0), 0.1)
    assert LogisticModel.from_dict(model.to_dict()) == model
    with pytest.raises(CheckpointError):
        LogisticModel.from_dict({**model.to_dict(), "coef": [1.0]})
    with pytest.raises(CheckpointError):
        LogisticModel.from_dict({**model.to_dict(), "kind": "forest"})
    with pytest.raises(ValueError, match="b"):
        model.probability({"a": 1.0})


def test_lesion_head_reports_its_evidence_and_is_indeterminate_without_gtv() -> None:
    model = LogisticModel(FEATURES, tuple(0.0 for _ in FEATURES), tuple(1.0 for _ in FEATURES),
                          tuple(1.0 if f == "lesion_count" else 0.0 for f in FEATURES), -1.5)
    lesions = [LesionFeatures(12.0, 0.0, 0.1, 0.1)] * 2
    head = lesion_logistic({3: 50.0}, {3: 0.2}, lesions, model)
    assert abs(head.probability - 1 / (1 + np.exp(-0.5))) < 1e-9 and head.slice_probability == 0.2
    assert head.evidence.logit_contributions["lesion_count"] == 2.0 and len(head.evidence.lesions) == 2
    assert lesion_logistic({3: 0.0}, {3: 0.2}, [], model).probability is None


def test_fit_head_separates_classes_by_lesion_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exact cohort: mutant patients get a second lesion, so the fitted head must call all of them right."""
    cohort = write_count_cohort(tmp_path / "exact", n=6)
    saved = {}
    # The rule-based stand-in has no weights to store: capture what would be written instead.
    monkeypatch.setattr(fit_head_module, "save_checkpoint", lambda path, net, net_config, preprocess, tasks, info, extra: saved.update(tasks=tasks, info=info))
    summary = fit_head(stand_in(), read_cohort(cohort), tmp_path / "head.pt", device="cpu", progress_bar=False)
    assert summary["training_accuracy"] == 1.0 and summary["patients"] == 6
    head = next(t for t in saved["tasks"] if t.kind == "binary")
    assert head.aggregation == "lesion_logistic" and saved["info"].metrics["patient_head"] == summary
    gtv = next(t for t in saved["tasks"] if t.kind == "segmentation")
    assert (gtv.component_model, gtv.min_component_probability, summary["component_model"]) == ({}, 0.0, False)  # nothing to filter
    rows = list(csv.DictReader(open(tmp_path / "head.features.csv")))
    assert [float(r["lesion_count"]) for r in rows] == [2.0, 1.0] * 3


@pytest.mark.parametrize("filter_features", [COMPONENT_FEATURES, TWIN_FEATURES])
def test_fit_head_of_a_model_without_egfr_head_fits_only_the_component_filter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                                filter_features: tuple[str, ...]) -> None:
    """A preset's model (tumour + response): fit-head learns to drop the bright specks that are not
    tumour, on the features asked for, and leaves the response head as trained."""
    cohort = write_exact_cohort(tmp_path / "exact", n=6)
    for i, case in enumerate(read_cohort(cohort)):  # an unmasked bright speck per patient: a false component
        image = sitk.ReadImage(str(case.image))
        array = sitk.GetArrayFromImage(image)
        array[2 + i % 3, 58:60, 4 + 2 * i:6 + 2 * i] = 2500
        out = sitk.GetImageFromArray(array)
        out.CopyInformation(image)
        sitk.WriteImage(out, str(case.image))
    response = TaskSpec("Response", "binary", ("non-response", "response"), aggregation="top_area_half_mean")
    model = stand_in(tasks=(next(t for t in DEFAULT_TASKS if t.kind == "segmentation"), response))
    saved = {}
    monkeypatch.setattr(fit_head_module, "save_checkpoint", lambda path, net, net_config, preprocess, tasks, info, extra: saved.update(tasks=tasks))
    summary = fit_head(model, read_cohort(cohort), tmp_path / "head.pt", device="cpu", progress_bar=False, filter_features=filter_features)
    assert summary["component_model"] and "patients" not in summary
    gtv, head = saved["tasks"]
    assert head == response and LogisticModel.from_dict(gtv.component_model).features == filter_features
    fitted = replace(model, tasks=saved["tasks"])
    image = read_image(read_cohort(cohort)[0].image)
    filtered, unfiltered = predict_volume(image, fitted, device="cpu"), predict_volume(image, model, device="cpu")
    assert len(filtered.report.gtv.lesions) == 2 and len(unfiltered.report.gtv.lesions) == 3
    # what the filter removed is kept beside the GTV (mtsa evaluate tells a filtered-out lesion from a missed one)
    marked, kept = unfiltered.slices.gtv_probability >= 0.5, filtered.slices.gtv_probability >= 0.5
    assert filtered.removed.any() and np.array_equal(filtered.removed, marked & ~kept) and not unfiltered.removed.any()
    rows = list(csv.DictReader(open(tmp_path / "head.features.csv")))
    assert len(rows) == 6 and "egfr" not in rows[0] and float(rows[0]["lesion_count"]) == 2.0


def test_cli_fits_a_trained_checkpoint_that_loads_and_predicts(trained: tuple[Path, Path], tmp_path: Path, capsys) -> None:  # noqa: F811
    cohort, checkpoint = trained
    model = load_checkpoint(checkpoint)
    cases = fitting_cases(cohort, model)
    test_ids = set(model.info.training["split"]["test"]["case_ids"])
    assert cases and not test_ids & {c.case_id for c in cases}
    out = tmp_path / "head.pt"
    assert main(["--model", str(checkpoint), "--data", str(cohort), "--out", str(out), "--device", "cpu"]) == 0
    loaded = load_checkpoint(out)
    assert loaded.task("binary").aggregation == "lesion_logistic"
    assert LogisticModel.from_dict(loaded.task("binary").patient_model).features == PATIENT_FEATURES
    report = predict_volume(read_image(cases[0].image), loaded, device="cpu").report.to_dict()
    gtv = loaded.task("segmentation")
    assert report["gtv"]["postprocessing"]["min_component_probability"] == gtv.min_component_probability
    assert report["gtv"]["postprocessing"]["component_model"] == bool(gtv.component_model)
    assert report["egfr"]["call"] == "indeterminate" or set(report["egfr"]["evidence"]["features"]) >= set(PATIENT_FEATURES)
    payload = torch.load(out, weights_only=True)
    assert all(torch.equal(payload["state_dict"][k], v) for k, v in model.net.state_dict().items())
    twin = tmp_path / "twin.pt"
    assert main(["--model", str(checkpoint), "--data", str(cohort), "--out", str(twin), "--device", "cpu", "--mirror-twin",
                 "--gamma-view", "1.5", "--max-slice-mm", "4"]) == 0
    twin_model = load_checkpoint(twin)
    assert twin_model.info.metrics["patient_head"]["filter_features"] == list(TWIN_FEATURES)
    assert twin_model.preprocess.gamma_views == (1.5,) and loaded.preprocess.gamma_views == ()
    assert twin_model.preprocess.max_slice_mm == 4.0 and loaded.preprocess.max_slice_mm == 0.0
    assert loaded.info.metrics["patient_head"]["filter_features"] == list(COMPONENT_FEATURES)
    assert main(["--model", str(checkpoint), "--data", str(cohort), "--out", str(tmp_path / "g.pt"), "--gamma-view", "0"]) == 2
    assert "--gamma-view 0" in capsys.readouterr().err and not (tmp_path / "g.pt").exists()
    assert main(["--model", str(checkpoint), "--data", str(cohort), "--out", str(tmp_path / "s.pt"), "--max-slice-mm", "0.5"]) == 2
    assert "--max-slice-mm 0.5" in capsys.readouterr().err and not (tmp_path / "s.pt").exists()
    # refuses to overwrite, and refuses a cohort the model was not trained on
    assert main(["--model", str(checkpoint), "--data", str(cohort), "--out", str(out)]) == 2
    other = write_exact_cohort(tmp_path / "other")
    assert main(["--model", str(checkpoint), "--data", str(other), "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith("error:") and "exists" in err[-2]
    assert err[-1].startswith("error:") and "not the cohort" in err[-1]
    assert not (tmp_path / "x.pt").exists()


def _tube_and_blob(rng: np.random.Generator, shift: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A model-grid patient: one spherical enhancing lesion (truth) and one bright tube the
    network also marked (a vessel), both at probability 0.9."""
    shape = (30, 60, 60)
    volume = np.ones(shape, np.float32) + 0.02 * rng.standard_normal(shape).astype(np.float32)
    truth = _ball(shape, (15, 20 + shift, 20), 6.0)
    volume[truth] = 2.0
    vessel = np.zeros(shape, bool)
    vessel[3:27, 45, 40 + shift // 2] = True  # 48 mm long, one voxel wide
    volume[vessel] = 3.5
    probability = np.where(truth | vessel, 0.9, 0.0).astype(np.float32)
    return volume, probability, truth


def test_component_features_tell_a_tube_from_a_ball() -> None:
    volume, probability, truth = _tube_and_blob(np.random.default_rng(0), 0)
    assert component_features(probability, volume, SPACING)[1].shape == (2, len(COMPONENT_FEATURES))
    labels, features = component_features(probability, volume, SPACING, names=MEASURED_FEATURES)
    row = {int(labels[truth].max()) - 1: "ball"}
    ball, tube = (features[i] for i in sorted(range(2), key=lambda i: row.get(i) != "ball"))
    f = dict(zip(MEASURED_FEATURES, zip(ball, tube)))
    assert abs(np.exp(f["log_volume_ml"][0]) - 4 / 3 * np.pi * 0.216) < 0.1  # a 12 mm ball: 0.90 mL
    assert f["elongation"][0] < 0.2 < 1.0 < f["elongation"][1]
    assert abs(f["mean_intensity"][0] - 2.0) < 0.01 and f["mean_intensity_squared"][0] == pytest.approx(f["mean_intensity"][0] ** 2)
    assert abs(f["shell_contrast"][0] - 1.0) < 0.05 and f["height_ratio"][1] > 3.0


def test_mirror_partner_finds_left_right_pairs_about_the_tissue_midline() -> None:
    """Tissue in columns 10-59 (midline 34.5): a pair mirrored about it, 2 mm apart from exact mirror
    images (a slightly turned head), is each other's partner; a lone ball, one across the midline and a
    small one mirrored into a large one have none."""
    shape = (30, 60, 60)
    volume = np.zeros(shape, np.float32)
    volume[:, :, 10:] = 1.0
    balls = {"left": (15, 15, 22, 4.0), "right": (15, 17, 47, 4.0), "lone": (15, 45, 20, 4.0), "midline": (15, 45, 34, 4.0),
             "large": (5, 30, 22, 7.0), "small": (5, 30, 47, 2.0)}
    masks = {name: _ball(shape, (z, y, x), radius) for name, (z, y, x, radius) in balls.items()}
    probability = np.where(sum(masks.values()) > 0, 0.9, 0.0).astype(np.float32)
    labels, features = component_features(probability, volume, SPACING, names=("mirror_partner",))
    partner = {name: float(features[int(labels[mask].max()) - 1, 0]) for name, mask in masks.items()}
    assert partner["left"] > 0.9 and partner["right"] > 0.9
    assert partner["lone"] == partner["midline"] == partner["small"] == partner["large"] == 0.0


def test_component_filter_is_fitted_cross_validated_and_drops_vessels() -> None:
    """Ten patients with one lesion and one vessel each: the fitted filter keeps every lesion and
    drops every vessel at the chosen threshold; the unfiltered row of the trade-off counts both."""
    rng = np.random.default_rng(1)
    patients = [Measured(None, *_tube_and_blob(rng, k), (2.0, 1.0, 1.0), {}) for k in range(10)]
    model, threshold, table = choose_filter([components_of(p) for p in patients], max_fp_per_patient=0.0)
    assert table[0] == {"min_component_probability": 0.0, "lesion_sensitivity": 1.0, "fp_per_patient": 1.0}
    chosen = next(r for r in table if r["min_component_probability"] == threshold)
    assert chosen["fp_per_patient"] == 0.0 and chosen["lesion_sensitivity"] == 1.0 and threshold > 0
    assert LogisticModel.from_dict(model).features == COMPONENT_FEATURES  # brightness plays no part: it does not transfer
    assert not {"mean_intensity", "max_intensity", "shell_contrast"} & set(COMPONENT_FEATURES)
    volume, probability, truth = patients[0].volume, patients[0].probability.copy(), patients[0].truth
    (dropped,) = drop_unlikely_components(probability, volume, SPACING, LogisticModel.from_dict(model), threshold)
    assert dropped.rating < threshold and dropped.volume_ml == pytest.approx(24 * 2e-3)  # the 48 mm one-voxel vessel
    assert min(dropped.reasons.values()) < 0 and "elongation" in dropped.reasons  # rated down for being a tube
    assert np.array_equal(probability >= 0.5, truth)
    # nothing false to learn from: no model, every component kept
    lesions_only = [replace(p, probability=np.where(p.truth, 0.9, 0.0)) for p in patients[:3]]
    assert choose_filter([components_of(p) for p in lesions_only], 0.5)[:2] == ({}, 0.0)


def test_threshold_is_taken_over_the_scores_not_a_grid() -> None:
    """A lesion at 0.13 above false components at 0.12 and 0.11: with one false component allowed,
    the threshold falls between 0.11 and 0.12 and keeps the lesion (a 0.10/0.15 grid step drops it);
    with none allowed it rises above 0.12 and still keeps it; with all allowed nothing is dropped."""
    scores = np.array([0.9, 0.13, 0.12, 0.11, 0.03])
    false = np.array([False, False, True, True, True])
    assert lowest_threshold(scores, false, 1) == pytest.approx(0.115)
    assert lowest_threshold(scores, false, 0) == pytest.approx(0.125)
    assert lowest_threshold(scores, false, 3) == 0.0
    assert lowest_threshold(np.array([0.7]), np.array([True]), 0) == pytest.approx(0.85)  # only a false one: keep nothing
    # an unfitted fold's 1.0s cannot be dropped: keep only them rather than everything
    assert lowest_threshold(np.array([1.0, 1.0, 0.5]), np.array([True, True, False]), 1) == pytest.approx(0.75)


def test_vectorised_logistic_equals_the_per_patient_one() -> None:
    model = LogisticModel(("a", "b"), (0.0, 1.0), (1.0, 2.0), (0.5, -1.0), 0.1)
    x = np.array([[0.3, 4.0], [-80.0, 1.0], [900.0, -3.0]])
    np.testing.assert_allclose(model.probabilities(x), [model.probability({"a": a, "b": b}) for a, b in x], atol=1e-12)


def test_checkpoints_with_the_older_peak_and_volume_filter_still_drop_weak_components() -> None:
    probability = np.zeros((6, 30, 30), np.float32)
    probability[1:4, 5:12, 5:12] = 0.97  # a lesion
    probability[2, 20:26, 20:26] = 0.75  # unsure
    probability[4, 27, 27] = 0.99  # one voxel: 0.002 mL
    assert drop_weak_components(probability, 0.8, 0.01, (2.0, 1.0, 1.0)) == 2
    assert (probability >= 0.5).sum() == 3 * 7 * 7 and drop_weak_components(probability, 0.5) == 0
