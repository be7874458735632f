"""``mtsa check-real``: the per-case figures on cases whose answer is known, the strips, skipping and errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import SimpleITK as sitk
from helpers import stand_in

from training.evaluation import real_cases
from training.evaluation.real_cases import RealCase, run


def _write_case(folder: Path, lesions: list[tuple[int, int, int]], reference_labels: dict[int, int] | None) -> None:
    """A 64 x 64 x 10 volume on the model grid of the brightness rule (exact resampling): bright 9 mm
    balls at ``lesions``; the reference, when given, labels ball i with ``reference_labels[i]``."""
    folder.mkdir(parents=True)
    zz, yy, xx = np.mgrid[:10, :64, :64]
    balls = [(zz - z) ** 2 * 4 + (yy - y) ** 2 + (xx - x) ** 2 <= 16 for z, y, x in lesions]
    image = np.full(zz.shape, 1000, np.int16)
    for ball in balls:
        image[ball] = 2500
    out = sitk.GetImageFromArray(image)
    out.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(out, str(folder / "scan_t1c.nii.gz"))
    if reference_labels is not None:
        labels = np.zeros(zz.shape, np.uint8)
        for i, value in reference_labels.items():
            labels[balls[i]] = value
        ref = sitk.GetImageFromArray(labels)
        ref.CopyInformation(out)
        sitk.WriteImage(ref, str(folder / "scan_seg.nii.gz"))


CASES = (RealCase("two-lesions", "*_t1c.nii.gz", "*_seg.nii.gz", (1, 4)), RealCase("no-lesion", "*_t1c.nii.gz"),
         RealCase("not-there", "*_t1c.nii.gz"))


def test_figures_per_case_on_known_answers(tmp_path: Path, capsys) -> None:
    # two-lesions: the reference marks ball 0 (label 4) and not ball 1 (label 2, outside the GTV labels)
    _write_case(tmp_path / "data" / "two-lesions", [(4, 20, 20), (6, 44, 40)], {0: 4, 1: 2})
    _write_case(tmp_path / "data" / "no-lesion", [(5, 30, 30)], None)
    results = run(tmp_path / "data", stand_in(), tmp_path / "out", device="cpu", cases=CASES)
    assert "not-there: not in" in capsys.readouterr().out
    two, none = results
    assert (two.reference_lesions, two.detected, two.predicted_lesions, two.false_positive_lesions) == (1, 1, 2, 1)
    ball_ml = two.reference_ml
    assert two.dice == pytest.approx(2 * ball_ml / (ball_ml + two.predicted_ml)) and two.false_positive_ml == pytest.approx(
        two.predicted_ml - ball_ml)
    assert none.dice is None and none.false_positive_lesions == 1 and none.predicted_ml > 0
    assert none.false_positive_ml == pytest.approx(none.predicted_ml)
    for name in ("two-lesions", "no-lesion"):
        strip = cv2.imread(str(tmp_path / "out" / f"{name}_strip.png"))
        assert strip is not None and strip.shape[1] > strip.shape[0]
    assert "| two-lesions | 0." in two.row()


def test_without_the_folder_it_says_so_and_succeeds(tmp_path: Path, capsys) -> None:
    assert real_cases.main(["--data", str(tmp_path / "absent")]) == 0
    assert "nothing checked" in capsys.readouterr().out


def test_an_ambiguous_case_folder_is_a_one_line_error(tmp_path: Path, monkeypatch, capsys) -> None:
    _write_case(tmp_path / "two-lesions", [(4, 20, 20)], {0: 1})
    (tmp_path / "two-lesions" / "other_t1c.nii.gz").write_bytes(b"")
    monkeypatch.setattr(real_cases, "KNOWN_CASES", CASES[:1])
    monkeypatch.setattr(real_cases, "load_checkpoint", lambda path: stand_in())
    assert real_cases.main(["--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "two-lesions" in err and "found 2" in err and "\n" not in err
