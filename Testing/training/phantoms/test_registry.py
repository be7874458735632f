"""The liver-CT (hcc-tace) and breast DCE-MRI (breast-dce) phantoms: exact biology, Bayes limits,
scans, cohort folders, and a preset trained, predicted and evaluated on its own phantom."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from MTSASegmenterLib.cli import main as mtsa_main
from MTSASegmenterLib.io import terminology
from MTSASegmenterLib.model.checkpoint import load_checkpoint
from MTSASegmenterLib.model.presets import PRESETS
from scipy import integrate

from training.phantoms import breast as phantom_breast
from training.phantoms import liver as phantom_liver
from training.phantoms.distributions import count_logpmf, lognormal_logpdf
from training.phantoms.brain.generate import PhantomConfig
from training.phantoms.registry import (
    PHANTOMS,
    best_possible,
    cohort_preset,
    write_cohort,
)

CHEAP = PhantomConfig(max_matrix=96)


def test_distribution_densities_are_normalised() -> None:
    total, _ = integrate.quad(lambda x: math.exp(lognormal_logpdf(x, 34.0, 0.45, (10.0, 90.0))), 10.0, 90.0)
    assert total == pytest.approx(1.0, abs=1e-6)
    assert sum(math.exp(count_logpmf(n, 0.6, 5)) for n in range(1, 6)) == pytest.approx(1.0, abs=1e-12)
    assert count_logpmf(6, 0.6, 5) == -math.inf


def test_liver_biology_depends_on_the_label_and_its_bayes_limit_is_below_one() -> None:
    rng = np.random.default_rng(3)
    by_label = {label: [phantom_liver.draw_tumours(rng, label) for _ in range(1500)] for label in phantom_liver.LABELS}
    size = {k: np.mean([t.diameter_mm for p in v for t in p]) for k, v in by_label.items()}
    count = {k: np.mean([len(p) for p in v]) for k, v in by_label.items()}
    assert size["response"] < size["non-response"] and count["response"] < count["non-response"]
    limits = phantom_liver.best_possible(n_patients=3000, seed=1)["response"]
    assert 0.78 < limits["accuracy"] < 0.9 and 0.86 < limits["auc"] < 0.96


def test_breast_receptors_are_correlated_and_the_bayes_answers_are_calibrated() -> None:
    rng = np.random.default_rng(4)
    tumours = [phantom_breast.draw_tumour(rng) for _ in range(1500)]
    er = np.array([t.er for t in tumours])
    pr = np.array([t.pr for t in tumours])
    assert pr[er].mean() > 0.7 > 0.2 > pr[~er].mean()
    ki_tn = np.median([t.ki67 for t in tumours if not (t.er or t.pr or t.her2)])
    ki_lum = np.median([t.ki67 for t in tumours if (t.er or t.pr) and not t.her2])
    assert ki_tn > 2 * ki_lum
    # The posterior is the truth's probability: within bins of predicted ER probability, the ER rate matches.
    p = np.array([phantom_breast.bayes_answers(t)["er"] for t in tumours])
    for lo, hi in ((0.0, 0.2), (0.2, 0.8), (0.8, 1.0)):
        sel = (p >= lo) & (p < hi)
        assert sel.sum() > 100 and abs(er[sel].mean() - p[sel].mean()) < 0.06
    limits = phantom_breast.best_possible(n_patients=1500, seed=2)
    assert 0.85 < limits["er"]["auc"] < 0.95 and 0.7 < limits["pr"]["auc"] < 0.85 and 0.8 < limits["her2"]["auc"] < 0.92
    assert 5.0 < limits["ki-67"]["mae"] < 9.0


@pytest.mark.parametrize("module", [phantom_liver, phantom_breast])
def test_a_case_is_deterministic_and_the_same_patient_at_another_site(module) -> None:
    a = module.generate_case(11, "internal", max_matrix=64)
    b = module.generate_case(11, "internal", max_matrix=64)
    assert np.array_equal(sitk.GetArrayViewFromImage(a.image), sitk.GetArrayViewFromImage(b.image))
    mask = sitk.GetArrayViewFromImage(a.mask)
    assert mask.any() and a.mask.GetSize() == a.image.GetSize() and a.mask.GetOrigin() == a.image.GetOrigin()
    c = module.generate_case(11, "external", max_matrix=64)
    assert c.labels == a.labels and [round(les["diameter_mm"], 6) for les in c.lesions] == [round(les["diameter_mm"], 6) for les in a.lesions]


def test_liver_ct_is_in_hounsfield_units() -> None:
    case = phantom_liver.generate_case(5, "internal", max_matrix=96)
    hu = sitk.GetArrayFromImage(case.image).astype(float)
    mask = sitk.GetArrayFromImage(case.mask) > 0
    assert case.image.GetPixelID() == sitk.sitkInt16
    assert np.median(hu[0]) < -900  # air around the body
    lesion_hu = np.median(hu[mask])
    assert 60 < lesion_hu < 250, lesion_hu  # arterially enhancing tumour


def test_cohort_folder_has_the_preset_columns_and_phantom_json(tmp_path: Path) -> None:
    path = write_cohort(tmp_path / "breast", 2, site="external", seed=3, config=CHEAP, preset="breast-dce")
    rows = list(csv.DictReader(open(path)))
    assert list(rows[0]) == ["case_id", "image", "mask", "er", "pr", "her2", "ki67", "site", "acquired"]
    assert {r["er"] for r in rows} <= {"positive", "negative"} and all(0 < float(r["ki67"]) < 100 for r in rows)
    assert cohort_preset(tmp_path / "breast") == "breast-dce" and json.loads((tmp_path / "breast" / "phantom.json").read_text())["cases"] == 2
    assert cohort_preset(tmp_path) is None
    assert set(PHANTOMS) == {"mtsa-net", "hcc-tace", "breast-dce"}


def test_cohort_made_by_several_processes_is_the_one_made_by_one(tmp_path: Path) -> None:
    """Each case depends on (seed, site, index) alone, so --workers may only change the speed."""
    one = write_cohort(tmp_path / "one", 3, site="internal", seed=5, config=CHEAP, preset="breast-dce")
    two = write_cohort(tmp_path / "two", 3, site="internal", seed=5, config=CHEAP, preset="breast-dce", workers=2)
    assert one.read_text() == two.read_text()
    for row in csv.DictReader(open(one)):
        for column in ("image", "mask"):
            a, b = (sitk.GetArrayFromImage(sitk.ReadImage(str(p.parent / row[column]))) for p in (one, two))
            assert np.array_equal(a, b), (row["case_id"], column)
    with pytest.raises(ValueError, match="workers"):
        write_cohort(tmp_path / "none", 1, workers=0)


def test_synth_brain_knobs_reach_the_phantom_and_are_refused_for_another_preset(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        mtsa_main(["synth", "--preset", "hcc-tace", "--out", str(tmp_path / "c"), "--cases", "1", "--thick-slices", "0.5"])
    assert exc.value.code == 2 and "--thick-slices" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    with pytest.raises(SystemExit) as exc:  # a share outside 0-1 is refused, naming its flag
        mtsa_main(["synth", "--out", str(tmp_path / "c"), "--cases", "1", "--parasagittal", "1.5"])
    assert exc.value.code == 2 and "--parasagittal must be a share between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    with pytest.raises(SystemExit) as exc:  # so is a brain switch
        mtsa_main(["synth", "--preset", "breast-dce", "--out", str(tmp_path / "c"), "--cases", "1", "--clear-falx"])
    assert exc.value.code == 2 and "--clear-falx: knob(s) of the brain phantom" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    assert mtsa_main(["synth", "--out", str(tmp_path / "c"), "--cases", "1", "--max-matrix", "64", "--parasagittal", "0.5",
                      "--periventricular", "0.25", "--small-lesions", "0.5",
                      "--clear-falx"]) == 0  # the brain's knobs reach the phantom, and its record
    config = json.loads((tmp_path / "c" / "phantom.json").read_text())["config"]
    assert config["parasagittal_probability"] == 0.5 and config["periventricular_probability"] == 0.25 and config["clear_falx"] is True
    assert config["small_lesion_probability"] == 0.5


@pytest.mark.parametrize("preset, terminology_key, heads", [("hcc-tace", "liver-tumour", ["response"]),
                                                           ("breast-dce", "breast-tumour", ["er", "pr", "her2", "ki-67"])])
def test_preset_trains_predicts_and_evaluates_on_its_phantom(tmp_path: Path, capsys, preset: str, terminology_key: str,
                                                              heads: list[str]) -> None:
    """The whole researcher path for a non-EGFR preset: synth, train, predict (segment named and coded
    as the preset's tumour), evaluate (each head beside the phantom's best possible, Dice above)."""
    cohort = tmp_path / preset
    assert mtsa_main(["synth", "--preset", preset, "--out", str(cohort), "--cases", "5", "--seed", "2", "--max-matrix", "96"]) == 0
    out = capsys.readouterr().out
    assert f"{heads[0]} accuracy" in out and f"{heads[0]} auc" in out
    assert mtsa_main(["train", "--data", str(cohort), "--out", str(tmp_path / "run"), "--preset", preset, "--epochs", "1",
                      "--input-size", "64", "--width", "4", "--spacing", "6", "--min-slice-mm", "6", "--batch-size", "4",
                      "--val-fraction", "0.2", "--test-fraction", "0.2", "--workers", "0", "--no-progress", "--device", "cpu"]) == 0
    model = load_checkpoint(tmp_path / "run" / "best.pt")
    assert [t.key for t in model.tasks] == ["tumour", *heads]
    assert model.preprocess.normalisation == PRESETS[preset].preprocess["normalisation"]
    assert model.net_config.roi_weighting == (preset == "breast-dce")

    image = cohort / "imagesTr" / "internal-0000.nii.gz"
    assert mtsa_main(["predict", str(image), "--model", str(tmp_path / "run" / "best.pt"), "--out", str(tmp_path / "pred"),
                      "--device", "cpu"]) == 0
    expected = terminology.TERMINOLOGIES[terminology_key]
    report = json.loads((tmp_path / "pred" / "internal-0000.json").read_text())
    assert report["heads"] == heads and report["gtv"]["segment"]["region"] == expected.region[2]
    (segment,) = slicerio.read_segmentation(str(tmp_path / "pred" / "internal-0000.seg.nrrd"))["segments"]
    assert segment["name"] == "Tumour" and tuple(segment["terminology"]["anatomicRegion"]) == expected.region
    assert tuple(segment["terminology"]["type"]) == expected.type

    assert mtsa_main(["evaluate", "--data", str(cohort), "--model", str(tmp_path / "run" / "best.pt"), "--out", str(tmp_path / "eval"),
                      "--cases", "all", "--n-boot", "20", "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    limits = best_possible(preset)
    assert {k: metrics["heads"][k]["best_possible"] for k in heads} == limits
    assert metrics["best_possible_accuracy"] is None  # no EGFR head
    table = (tmp_path / "eval" / "heads.md").read_text()
    first = limits[heads[0]]
    assert "Segmentation: Dice" in table and f"accuracy {first['accuracy']:.3f}, AUC {first['auc']:.3f}" in table
    if "ki-67" in heads:
        assert f"MAE {limits['ki-67']['mae']:.2f} %" in table
