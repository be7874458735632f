"""Cohorts as users have them: nnU-Net raw datasets and BraTS-style folders read into the same Case
objects as cases.csv (GTV label mapping, labels from a CSV), trained on and evaluated unchanged, and
``mtsa cohort check`` listing what is wrong."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import write_tiny_cohort
from MTSASegmenterLib.cli import main as mtsa
from MTSASegmenterLib.config import NetConfig, PreprocessConfig
from MTSASegmenterLib.errors import InputError
from MTSASegmenterLib.model.checkpoint import load_checkpoint
from scipy import ndimage

from training.data.cohort import cohort_fingerprint, read_cohort
from training.data.slices import SliceCache, read_mask
from training.evaluation.evaluate import select_cases
from training.train.config import TrainConfig
from training.train.loop import train

EGFR = ("mutant", "wild-type")


def labelled(binary: sitk.Image, core: int, ring: int, centre: int | None = None) -> sitk.Image:
    """The lesion as ``core`` (its inside as ``centre``: necrosis) and a one-voxel shell of oedema around it as ``ring``."""
    lesion = sitk.GetArrayFromImage(binary) > 0
    array = np.where(lesion, core, np.where(ndimage.binary_dilation(lesion, iterations=1), ring, 0)).astype(np.uint8)
    if centre is not None:
        array[ndimage.binary_erosion(lesion, iterations=1)] = centre
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(binary)
    return out


def write_labels(path: Path, ids, sites=None) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["case_id", "egfr", "site", "acquired"])
        for i, case_id in enumerate(ids):
            writer.writerow([case_id, EGFR[i % 2], (sites or ["A"] * len(ids))[i], f"2021-0{1 + i % 9}-01"])


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write_tiny_cohort(tmp_path / "tiny", n=6)


def as_nnunet(tiny: Path, folder: Path) -> Path:
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    ids = [f"BM_{i:03d}" for i in range(6)]
    for i, case_id in enumerate(ids):
        os.link(tiny / f"c{i}_img.nii.gz", folder / "imagesTr" / f"{case_id}_0000.nii.gz")
        sitk.WriteImage(labelled(sitk.ReadImage(str(tiny / f"c{i}_seg.nii.gz")), 2, 1), str(folder / "labelsTr" / f"{case_id}.nii.gz"))
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "T1c"}, "labels": {"background": 0, "edema": 1, "metastasis": 2},
        "numTraining": 6, "file_ending": ".nii.gz"}))
    write_labels(folder / "labels.csv", ids, ["A", "A", "A", "A", "B", "B"])
    return folder


def as_brats(tiny: Path, folder: Path) -> Path:
    ids = [f"BraTS-MET-{i:05d}-000" for i in range(6)]
    for i, case_id in enumerate(ids):
        (folder / case_id).mkdir(parents=True)
        os.link(tiny / f"c{i}_img.nii.gz", folder / case_id / f"{case_id}-t1c.nii.gz")
        sitk.WriteImage(labelled(sitk.ReadImage(str(tiny / f"c{i}_seg.nii.gz")), 3, 2, centre=1), str(folder / case_id / f"{case_id}-seg.nii.gz"))
    write_labels(folder / "labels.csv", ids)
    return folder


def gtv_of(case) -> np.ndarray:
    from MTSASegmenterLib.io.imageio import read_image

    return sitk.GetArrayFromImage(read_mask(case, read_image(case.image))) > 0


def test_nnunet_dataset_reads_as_cases(tiny, tmp_path):
    cases = read_cohort(as_nnunet(tiny, tmp_path / "Dataset501_BM"))
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(tiny / "c0_seg.nii.gz"))) > 0
    assert [c.case_id for c in cases] == [f"BM_{i:03d}" for i in range(6)]
    assert [c.labels.get("egfr") for c in cases] == ["mutant", "wild-type"] * 3 and cases[4].site == "B" and cases[1].acquired.isoformat() == "2021-02-01"
    assert cases[0].gtv_labels == (1, 2)  # every foreground label by default
    assert gtv_of(cases[0]).sum() > truth.sum()  # lesion and oedema
    only = read_cohort(tmp_path / "Dataset501_BM", gtv_labels=(2,))
    assert np.array_equal(gtv_of(only[0]), truth)
    assert cohort_fingerprint(tmp_path / "Dataset501_BM") != cohort_fingerprint(tmp_path / "Dataset501_BM", (2,))


def test_brats_folders_map_labels_to_the_gtv(tiny, tmp_path):
    cases = read_cohort(as_brats(tiny, tmp_path / "brats"))
    assert cases[0].gtv_labels == (1, 3) and cases[0].labels["egfr"] == "mutant"
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(tiny / "c0_seg.nii.gz"))) > 0
    assert np.array_equal(gtv_of(cases[0]), truth)  # oedema (2) is not GTV
    cache = SliceCache(tmp_path / "cache", PreprocessConfig(input_size=64, spacing_mm=1.0))
    with_oedema = read_cohort(tmp_path / "brats", gtv_labels=(2, 3))[0]
    assert cache.key(cases[0]) != cache.key(with_oedema)  # another mapping, another cache entry
    assert cache.get(cases[0]).tumour_slices != () and np.load(cache.get(cases[0]).mask_npy).max() == 1


def test_reading_stops_at_the_first_problem_naming_the_check(tiny, tmp_path):
    folder = as_nnunet(tiny, tmp_path / "ds")
    (folder / "labelsTr" / "BM_003.nii.gz").unlink()
    (folder / "labelsTr" / "BM_004.nii.gz").unlink()
    with pytest.raises(InputError, match=r"case BM_003: no mask labelsTr/BM_003.nii.gz \(and 1 more: mtsa cohort check .* lists them\)"):
        read_cohort(folder)
    with pytest.raises(InputError, match="not a cohort folder"):
        read_cohort(tmp_path / "tiny" / "..")


def test_cohort_check_lists_everything_wrong(tiny, tmp_path, capsys):
    folder = as_brats(tiny, tmp_path / "brats")
    (folder / "BraTS-MET-00002-000" / "BraTS-MET-00002-000-seg.nii.gz").unlink()
    other = sitk.ReadImage(str(folder / "BraTS-MET-00004-000" / "BraTS-MET-00004-000-seg.nii.gz"))
    other.SetSpacing((1.0, 1.0, 3.0))
    sitk.WriteImage(other, str(folder / "BraTS-MET-00004-000" / "BraTS-MET-00004-000-seg.nii.gz"))
    with open(folder / "labels.csv", "a") as f:
        f.write("BraTS-MET-00099-000,mutant,A,2021-01-01\n")
    assert mtsa(["cohort", "check", str(folder), "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert "BraTS-style folders, 5 case(s); GTV = mask label(s) 1,3" in out
    assert "case BraTS-MET-00002-000: no *-seg.nii.gz" in out
    assert "BraTS-MET-00004-000-seg.nii.gz: mask of case 'BraTS-MET-00004-000' is not on its image's grid" in out
    assert "case 'BraTS-MET-00099-000' has labels but no image and mask" in out
    assert "labels found in the masks: 0,1,2,3" in out
    assert err.strip() == f"error: {folder}: 3 problem(s) found (listed above); fix them before training"


def test_cohort_check_finds_gtv_labels_no_mask_holds(tiny, tmp_path, capsys):
    folder = as_brats(tiny, tmp_path / "brats")
    assert mtsa(["cohort", "check", str(folder), "--no-progress", "--gtv-labels", "1,4"]) == 0  # BraTS 2020 numbering
    out = capsys.readouterr().out
    assert "note: GTV label(s) 4 appear in no mask" in out and "no GTV in its mask" not in out  # label 1 is there: a warning
    assert mtsa(["cohort", "check", str(folder), "--no-progress", "--gtv-labels", "4"]) == 2
    assert "case BraTS-MET-00000-000: no GTV in its mask (GTV = labels 4; the mask holds 0,1,2,3)" in capsys.readouterr().out
    assert mtsa(["cohort", "check", str(folder), "--no-progress"]) == 0
    assert "no problems found; ready for mtsa train" in capsys.readouterr().out


def test_train_and_evaluate_take_an_nnunet_dataset(tiny, tmp_path):
    folder = as_nnunet(tiny, tmp_path / "Dataset501_BM")
    cfg = TrainConfig(data=folder, out=tmp_path / "run", gtv_labels=(2,), net=NetConfig(in_channels=3, base_width=4, input_size=64),
                      preprocess=PreprocessConfig(input_size=64, spacing_mm=1.0), epochs=1, batch_size=4, val_fraction=0.25,
                      num_workers=0, progress_bar=False, device="cpu", augment=False)
    model = load_checkpoint(train(cfg))
    assert model.info.training["cases_csv_sha256"] == cohort_fingerprint(folder, (2,))
    selection = select_cases(folder, model, "test", gtv_labels=(2,))
    assert selection.training_cohort and {c.case_id for c in selection.cases} == set(model.info.training["split"]["test"]["case_ids"])


def test_real_brats_case_checks(real_data, tmp_path, capsys):
    """BraTS-MET-00110 laid out as a BraTS folder, its AURORA reference (1 oedema, 2 enhancing) as the mask."""
    source = real_data / "brats-met-00110"
    if not source.is_dir():
        pytest.skip(f"{source} not found")
    case = tmp_path / "brats" / "BraTS-MET-00110-000"
    case.mkdir(parents=True)
    os.symlink(source / "BraTS-MET-00110-000-t1c.nii.gz", case / "BraTS-MET-00110-000-t1c.nii.gz")
    os.symlink(source / "t1c_segmentation_AURORA_prediction.nii.gz", case / "BraTS-MET-00110-000-seg.nii.gz")
    assert mtsa(["cohort", "check", str(tmp_path / "brats"), "--no-progress"]) == 2
    assert "GTV label(s) 3 appear in no mask (labels found: 0,1,2)" in capsys.readouterr().out
    assert mtsa(["cohort", "check", str(tmp_path / "brats"), "--no-progress", "--gtv-labels", "2"]) == 0
