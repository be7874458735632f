"""``mtsa evaluate``: output files and columns, metric plumbing on an exact case, case selection, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import ClassOnlyNet, read_rows, stand_in, write_count_cohort, write_exact_cohort, write_rows, write_tiny_cohort
from MTSASegmenterLib.config import DEFAULT_TASKS
from MTSASegmenterLib.errors import EXIT_ERROR
from MTSASegmenterLib.model.checkpoint import load_checkpoint

from training.data.cohort import read_cohort
from training.evaluation.cli import main
from training.evaluation.evaluate import CaseSelection, EvalSettings, evaluate_model, select_cases
from training.evaluation.scores import PatientResult, missed_lesions, segmentation_scores
from training.evaluation.summary import sensitivity_by_band, volume_dice_by_slice_spacing
from training.evaluation.tables import CSV_COLUMNS, TABLE_COLUMNS, write_heads_table

FAST = EvalSettings(device="cpu", n_boot=50, synthetic=False, progress_bar=False)


def test_segmentation_scores_of_a_perfect_prediction() -> None:
    truth = np.zeros((6, 20, 20), bool)
    truth[1:4, 3:9, 3:9] = True
    truth[4, 15:18, 15:18] = True  # a 3-voxel-wide lesion: under 5 mm at 1 mm, not evaluated
    s = segmentation_scores(truth, truth, (2.0, 1.0, 1.0), truth, truth, (2.0, 1.0, 1.0))
    assert (s.dice, s.hd95_mm, s.precision, s.recall, s.volume_dice) == (1.0, 0.0, 1.0, 1.0, 1.0)
    assert (s.lesion_sensitivity, s.truth_lesions_evaluated, s.false_positive_lesions, s.tumour_slices) == (1.0, 1, 0, 4)
    # prediction outside the tumour slices is ignored by the slice metrics, not by the volume ones
    pred = truth.copy()
    pred[0, 10:13, 10:13] = True
    s = segmentation_scores(pred, truth, (2.0, 1.0, 1.0), pred, truth, (2.0, 1.0, 1.0))
    assert s.dice == 1.0 and s.volume_dice < 1.0 and s.false_positive_lesions == 1


def test_lesion_sensitivity_is_broken_down_by_diameter_and_slice_spacing(tmp_path: Path) -> None:
    """A 1 mm-slice scan with a 5.2 mm lesion found and a 12 mm one missed, a 5 mm-slice scan with a 29 mm
    lesion found: each band pools its own lesions, a band without lesions has no value, heads.md says so."""
    thin = np.zeros((20, 40, 40), bool)
    thin[2:6, 2:6, 2:6] = thin[10:18, 20:28, 20:28] = True
    found = np.zeros_like(thin)
    found[3, 3, 3] = True
    thick = np.zeros((10, 40, 40), bool)
    thick[2:5, 5:25, 5:25] = True
    scores = [segmentation_scores(found, thin, (1.0, 1.0, 1.0), found, thin, (1.0, 1.0, 1.0)),
              segmentation_scores(thick, thick, (5.0, 1.0, 1.0), thick, thick, (5.0, 1.0, 1.0))]
    assert [s.slice_mm for s in scores] == [1.0, 5.0] and "lesions" not in PatientResult("p", scores[0], 0.0).row()
    by = sensitivity_by_band(scores, n_boot=50, seed=0)
    counts = {kind: {band: (b["numerator"], b["denominator"], b["value"]) for band, b in bands.items()} for kind, bands in by.items()}
    assert counts == {"diameter": {"5-10 mm": (1, 1, 1.0), "10-20 mm": (0, 1, 0.0), ">= 20 mm": (1, 1, 1.0)},
                      "slice_spacing": {"< 2 mm": (1, 2, 0.5), "2-4 mm": (0, 0, None), ">= 4 mm": (1, 1, 1.0)}}
    dice_by = volume_dice_by_slice_spacing(scores, n_boot=50, seed=0)
    assert [(b["value"], b["n"]) for b in dice_by.values()] == [(scores[0].volume_dice, 1), (None, 0), (1.0, 1)]
    write_heads_table(tmp_path / "heads.md", "m", {}, gtv={"lesion_sensitivity_by": by, "volume_dice_by_slice_spacing": dice_by})
    assert ("Lesion sensitivity by diameter: 5-10 mm 1.00 (1 of 1), 10-20 mm 0.00 (0 of 1), >= 20 mm 1.00 (1 of 1); "
            "by the scan's slice spacing: < 2 mm 0.50 (1 of 2), >= 4 mm 1.00 (1 of 1). Volume Dice by the scan's slice "
            f"spacing: < 2 mm {scores[0].volume_dice:.2f} (1 patient), >= 4 mm 1.00 (1 patient).") in (tmp_path / "heads.md").read_text()


def test_missed_lesions_name_the_step_that_lost_them_and_where_they_are() -> None:
    """Three lesions >= 5 mm and a 3 mm one: one found, one removed by postprocessing, one the network
    never marked (its peak reported); the small one is not counted, as in lesion sensitivity. Each miss's
    centroid is in RAS mm, checked against SimpleITK's own index-to-point mapping of a rotated, shifted grid."""
    truth, pred, removed = np.zeros((3, 12, 40, 40), bool)
    probability = np.zeros(truth.shape, np.float32)
    truth[2:8, 2:8, 2:8] = truth[2:8, 2:8, 20:26] = truth[2:8, 30:36, 2:8] = True
    truth[9, 30:33, 30:33] = True
    pred[4, 4, 4] = True  # touches the first
    removed[3:5, 3:5, 21:23] = True  # the second was marked, then filtered out
    probability[2:8, 30:36, 2:8] = 0.2
    probability[5, 32, 4] = 0.31
    geometry = sitk.Image(40, 40, 12, sitk.sitkUInt8)
    geometry.SetOrigin((10.0, -20.0, 30.0))
    geometry.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    missed = missed_lesions(pred, truth, geometry, lambda: (removed, probability))
    diameter = pytest.approx(np.sqrt(75))  # corner to corner of a 6-voxel cube, voxel centres
    assert [(m.cause, m.volume_ml, m.diameter_mm) for m in missed] == [("postprocessing", 0.216, diameter), ("network", 0.216, diameter)]
    assert np.isnan(missed[0].network_peak) and missed[1].network_peak == pytest.approx(0.31)
    for m, centre_xyz in zip(missed, [(22.5, 4.5, 4.5), (4.5, 32.5, 4.5)]):
        lps = geometry.TransformContinuousIndexToPhysicalPoint(centre_xyz)
        assert m.centroid_ras == pytest.approx((-lps[0], -lps[1], lps[2]))
    assert missed_lesions(truth, truth, geometry, lambda: pytest.fail("mapped to the input grid without a miss")) == []


def test_prediction_equal_to_truth_scores_perfectly_end_to_end(tmp_path: Path) -> None:
    cohort = write_exact_cohort(tmp_path / "exact")
    selection = CaseSelection(tuple(read_cohort(cohort)), "all", False, False)
    summary = evaluate_model(stand_in(), selection, tmp_path / "eval", FAST)
    gtv = summary["gtv"]
    for key in ("dice", "precision", "recall", "volume_dice", "lesion_sensitivity"):
        assert gtv[key]["value"] == 1.0, key
    assert gtv["hd95_mm"]["value"] == 0.0 and gtv["false_positive_lesions_per_patient"]["value"] == 0.0
    assert gtv["lesion_sensitivity"]["denominator"] == 4 and gtv["missed_lesions"] == {"network": 0, "postprocessing": 0}
    assert (tmp_path / "eval" / "missed_lesions.csv").read_text().splitlines() == ["case,volume_ml,diameter_mm,r_mm,a_mm,s_mm,cause,network_peak"]
    assert summary["egfr"]["patients"] == 2 and summary["egfr"]["indeterminate"] == 0
    assert summary["best_possible_accuracy"] is None and "statement" not in summary


def test_classification_only_model_gets_a_call_and_no_gtv_columns(tmp_path: Path) -> None:
    cohort = write_exact_cohort(tmp_path / "exact")
    selection = CaseSelection(tuple(read_cohort(cohort)), "all", False, False)
    model = stand_in(ClassOnlyNet(), tasks=[t for t in DEFAULT_TASKS if t.kind == "binary"])
    summary = evaluate_model(model, selection, tmp_path / "eval", FAST)
    assert summary["gtv"] is None and summary["egfr"]["indeterminate"] == 0
    rows = read_rows(tmp_path / "eval" / "per_patient.csv")
    assert all(r["egfr_call"] in ("mutant", "wild-type") and "dice" not in r for r in rows)
    md = (tmp_path / "eval" / "table3.md").read_text()
    assert "| brightness rule | — | — |" in md
    assert (tmp_path / "eval" / "patients" / "e0_slices.png").stat().st_size > 0


def test_cli_writes_every_output_with_the_table_columns(trained: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    cohort, model = trained
    out = tmp_path / "eval"
    assert main(["--data", str(cohort), "--model", str(model), "--out", str(out), "--device", "cpu", "--n-boot", "50"]) == 0
    assert "EGFR accuracy" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    test_ids = load_checkpoint(model).info.training["split"]["test"]["case_ids"]
    assert metrics["data"]["case_ids"] == test_ids and not metrics["data"]["includes_training_cases"]
    assert metrics["synthetic_cohort"] and 0.85 < metrics["best_possible_accuracy"] < 0.97
    assert "not clinical validation" in metrics["statement"]
    assert {"accuracy", "precision", "recall", "f1", "auc", "indeterminate"} <= set(metrics["egfr"])
    assert {"dice", "hd95_mm", "precision", "recall", "volume_dice", "lesion_sensitivity", "false_positive_lesions_per_patient"} <= set(metrics["gtv"])
    table = read_rows(out / "table3.csv")
    assert tuple(table[0]) == CSV_COLUMNS and len(table) == 1
    header = (out / "table3.md").read_text().splitlines()[2]
    assert header == "| " + " | ".join(TABLE_COLUMNS) + " |"
    rows = read_rows(out / "per_patient.csv")
    assert [r["case"] for r in rows] == test_ids
    assert {"egfr_true", "egfr_call", "egfr_probability", "dice", "hd95_mm", "volume_dice", "lesion_sensitivity",
            "false_positive_lesions"} <= set(rows[0])
    assert (out / "calibration.png").stat().st_size > 0
    for case in test_ids:
        assert (out / "patients" / f"{case}_overlay.png").stat().st_size > 0
        assert (out / "patients" / f"{case}_slices.png").stat().st_size > 0


def test_case_selection(trained: tuple[Path, Path], tmp_path: Path) -> None:
    cohort, model_path = trained
    model = load_checkpoint(model_path)
    assert len(select_cases(cohort, model, "test").cases) == 1
    everything = select_cases(cohort, model, "all")
    assert len(everything.cases) == 5 and everything.includes_training_cases
    other = write_tiny_cohort(tmp_path / "other", n=3, seed=7)  # another cohort: every case is held out
    external = select_cases(other, model, "test")
    assert len(external.cases) == 3 and not external.training_cohort


def test_bad_input_is_one_error_line(trained: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    cohort, model = trained
    assert main(["--data", str(tmp_path / "nowhere"), "--model", str(model), "--out", str(tmp_path / "o")]) == EXIT_ERROR
    assert main(["--data", str(cohort), "--model", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o")]) == EXIT_ERROR
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors)


def _relabel(cohort: Path, labels: list[str]) -> None:
    rows = read_rows(cohort / "cases.csv")
    for row, label in zip(rows, labels):
        row["egfr"] = label
    write_rows(cohort / "cases.csv", rows)


def test_image_oracle_beside_the_bayes_limit(tmp_path: Path) -> None:
    """Lesion count decides the label (mutant: two lesions, wild-type: one): fit-head's lesion-feature model
    measured inside the truth masks calls every patient right, so the oracle is 1; the model's accuracy on
    the same patients is reported against it. With labels the image does not show, the oracle falls to chance."""
    cohort = write_count_cohort(tmp_path / "count", n=8)
    selection = CaseSelection(tuple(read_cohort(cohort)), "all", False, False)
    summary = evaluate_model(stand_in(), selection, tmp_path / "eval", EvalSettings(device="cpu", n_boot=50, progress_bar=False,
                                                                                     pictures=False), data=cohort)
    oracle = summary["image_oracle"]
    assert oracle["accuracy"] == 1.0 and oracle["patients"] == 8 and oracle["labels"] == {"mutant": 4, "wild-type": 4}
    accuracy = summary["egfr"]["accuracy"]["value"]
    assert oracle["model_minus_oracle"] == pytest.approx(accuracy - 1.0)
    assert summary["heads"]["egfr"]["image_oracle"] == oracle and 0.85 < summary["best_possible_accuracy"] < 0.97
    row = read_rows(tmp_path / "eval" / "table3.csv")[0]
    assert float(row["Image oracle accuracy"]) == 1.0 and float(row["EGFR Accuracy - oracle"]) == pytest.approx(accuracy - 1.0)
    assert row["Best possible accuracy"] and "image oracle 1.000" in (tmp_path / "eval" / "heads.md").read_text()

    seg_only = stand_in(tasks=[t for t in DEFAULT_TASKS if t.kind == "segmentation"])  # no EGFR head: the oracle still shows
    summary = evaluate_model(seg_only, selection, tmp_path / "seg", EvalSettings(device="cpu", n_boot=50, progress_bar=False,
                                                                                  pictures=False, synthetic=False), data=cohort)
    assert summary["egfr"] is None and summary["image_oracle"]["accuracy"] == 1.0 and "model_minus_oracle" not in summary["image_oracle"]
    row = read_rows(tmp_path / "seg" / "table3.csv")[0]
    assert row["Image oracle accuracy"] == "1.0" and row["EGFR Accuracy - oracle"] == "" and row["Best possible accuracy"] == ""

    _relabel(cohort, ["mutant", "wild-type", "wild-type", "mutant"] * 2)  # half of each class has two lesions
    selection = CaseSelection(tuple(read_cohort(cohort)), "all", False, False)
    summary = evaluate_model(seg_only, selection, tmp_path / "blind", EvalSettings(device="cpu", n_boot=50, progress_bar=False,
                                                                                    pictures=False, synthetic=False), data=cohort)
    assert summary["image_oracle"]["accuracy"] <= 0.5
