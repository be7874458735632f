"""``mtsa predict`` on DICOM series with the bundled model: DICOM outputs beside the .seg.nrrd, the
same mask whatever the folder's file names, strays and duplicates, and DICOM options refused for
other inputs before any work."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_helpers import copy_series, mr_volume, shuffled_names, write_mr_series
from dicom_readback import dice, rtstruct_filled, seg_with_highdicom, source_headers
from MTSASegmenterLib.cli import main
from MTSASegmenterLib.resources import demo_model_path

PHANTOM = Path(__file__).resolve().parents[1] / "MTSASegmenter" / "Resources" / "Testing" / "phantom_case.nrrd"
FORMATS = "seg,dicom-seg,rtstruct"


@pytest.fixture(scope="module")
def phantom_series(tmp_path_factory) -> tuple[list[Path], sitk.Image]:
    """The bundled synthetic case (one known lesion) written as an MR DICOM series."""
    volume = sitk.ReadImage(str(PHANTOM))
    return write_mr_series(volume, tmp_path_factory.mktemp("dicom") / "phantom"), volume


def predict(folder: Path, out: Path, *extra: str) -> np.ndarray:
    assert main(["predict", str(folder), "--out", str(out), "--device", "cpu", *extra]) == 0
    return sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{folder.name}.seg.nrrd"))) > 0


def test_dicom_outputs_match_the_segmentation(phantom_series, tmp_path):
    files, volume = phantom_series
    folder = files[0].parent
    mask = predict(folder, tmp_path, "--format", FORMATS)
    assert mask.sum() > 100  # the phantom's lesion was found
    sources = source_headers(folder)
    assert dice(seg_with_highdicom(tmp_path / "phantom.seg.dcm", sources, volume), mask) >= 0.99
    assert dice(rtstruct_filled(tmp_path / "phantom.rtstruct.dcm", sources, volume), mask) >= 0.85
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phantom.json", "phantom.rtstruct.dcm", "phantom.seg.dcm", "phantom.seg.nrrd"]


def test_file_names_strays_and_duplicates_change_nothing(phantom_series, tmp_path):
    files, _ = phantom_series
    clean = predict(files[0].parent, tmp_path / "clean")
    messy = tmp_path / "phantom"
    copies = copy_series(files, messy, shuffled_names(len(files), seed=1))
    shutil.copy(copies[30], messy / "duplicate_of_a_slice.dcm")
    (messy / "notes.txt").write_text("acquired after contrast\n")
    (messy / "thumbnail.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    assert np.array_equal(predict(messy, tmp_path / "messy"), clean)


def test_series_option_picks_one_of_several(phantom_series, tmp_path, capfd):
    files, _ = phantom_series
    folder = tmp_path / "phantom"
    copy_series(files, folder)
    write_mr_series(mr_volume(), folder, description="localiser", prefix="LOC")
    assert main(["predict", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert "pick one with --series UID" in capfd.readouterr().err
    uid = pydicom.dcmread(files[0]).SeriesInstanceUID
    assert predict(folder, tmp_path / "out", "--series", uid, "--format", FORMATS).sum() > 100


@pytest.mark.parametrize("options", [["--format", "seg,dicom-seg"], ["--format", "rtstruct"], ["--series", "1.2.3"]])
def test_dicom_options_are_refused_for_other_inputs_before_any_work(tmp_path, capfd, options):
    out = tmp_path / "out"
    code = main(["predict", str(PHANTOM), "--out", str(out), "--model", str(tmp_path / "no_model_here.pt"), *options])
    err = capfd.readouterr().err.strip()
    assert code == 2 and err.startswith(f"error: {PHANTOM}: --") and "\n" not in err, err  # before the model is even looked for
    assert not out.exists()


def test_the_real_series_end_to_end(real_data, tmp_path):
    folder = real_data / "vs-seg-001-dicom"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    mask = predict(folder, tmp_path, "--format", FORMATS, "--model", str(demo_model_path()))
    grid = sitk.ReadImage(str(tmp_path / "vs-seg-001-dicom.seg.nrrd"))
    assert grid.GetSize() == (512, 512, 120)
    sources = source_headers(folder)
    assert dice(seg_with_highdicom(tmp_path / "vs-seg-001-dicom.seg.dcm", sources, grid), mask) >= 0.99
    assert dice(rtstruct_filled(tmp_path / "vs-seg-001-dicom.rtstruct.dcm", sources, grid), mask) >= 0.85
