"""`mtsa predict`: outputs on the input's own grid, and one clear error line per kind of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from helpers import TINY_NET, TINY_PREP, lesion_volume, stand_in
from MTSASegmenterLib.cli import main, summary_line
from MTSASegmenterLib.config import NetConfig, PreprocessConfig
from MTSASegmenterLib.inference.pipeline import predict_volume
from MTSASegmenterLib.model.checkpoint import save_checkpoint
from MTSASegmenterLib.model.network import MTSANet
from MTSASegmenterLib.model.presets import PRESETS

slicerio = pytest.importorskip("slicerio")


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def assert_on_grid(seg_path: Path, image: sitk.Image) -> None:
    seg = sitk.ReadImage(str(seg_path))
    assert seg.GetSize() == image.GetSize()
    assert np.allclose(seg.GetSpacing(), image.GetSpacing(), atol=1e-5)
    assert np.allclose(seg.GetOrigin(), image.GetOrigin(), atol=1e-4)
    assert np.allclose(seg.GetDirection(), image.GetDirection(), atol=1e-6)


def test_predict_writes_segmentation_and_report(tmp_path, capsys, tiny_checkpoint):
    image, _ = lesion_volume()
    path = tmp_path / "patient 1.nrrd"
    sitk.WriteImage(sitk.Cast(image, sitk.sitkInt16), str(path))
    out = tmp_path / "out"
    code, err = run(capsys, "predict", str(path), "--model", str(tiny_checkpoint), "--out", str(out), "--format", "both")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["patient 1.gtv.nii.gz", "patient 1.json", "patient 1.seg.nrrd"]
    assert_on_grid(out / "patient 1.seg.nrrd", image)
    assert_on_grid(out / "patient 1.gtv.nii.gz", image)
    report = json.loads((out / "patient 1.json").read_text())
    assert report["case"] == "patient 1" and report["input"]["size"] == list(image.GetSize())
    assert set(report["model"]) >= {"name", "version", "sha256"}
    egfr = report["egfr"]
    assert egfr["call"] in ("mutant", "wild-type", "indeterminate") and egfr["threshold"] == 0.5
    assert egfr["probability"] is None or 0 <= egfr["probability"] <= 1
    assert set(report["gtv"]) >= {"volume_ml", "lesions"} and set(report["timing"]) >= {"total_s", "inference_s"}
    # a second run refuses to overwrite, and leaves the files as they were
    before = (out / "patient 1.json").read_bytes()
    code, err = run(capsys, "predict", str(path), "--model", str(tiny_checkpoint), "--out", str(out))
    assert code != 0 and "exists; pass --overwrite" in err
    assert (out / "patient 1.json").read_bytes() == before
    code, err = run(capsys, "predict", str(path), "--model", str(tiny_checkpoint), "--out", str(out), "--overwrite")
    assert code == 0, err


def test_predict_prints_a_caution_for_thick_slices(tmp_path, capsys, tiny_checkpoint):
    for name, spacing, size in (("thin", (1.5, 1.5, 2.5), (64, 72, 40)), ("thick", (1.5, 1.5, 6.0), (64, 72, 16))):
        path = tmp_path / f"{name}.nrrd"
        sitk.WriteImage(lesion_volume(size=size, spacing=spacing)[0], str(path))
        assert main(["predict", str(path), "--model", str(tiny_checkpoint), "--out", str(tmp_path / "out")]) == 0
        lines = capsys.readouterr().out.splitlines()
        cautions = [line for line in lines if line.startswith("  caution: ")]
        assert (cautions == []) if name == "thin" else (len(cautions) == 1 and "6.0 mm slices" in cautions[0])


def preset_checkpoint(folder: Path, preset: str) -> Path:
    """A tiny untrained checkpoint with a preset's tasks, intensity mapping and network options."""
    spec = PRESETS[preset]
    net = NetConfig.from_dict({**TINY_NET.to_dict(), "num_classes": sum(t.outputs for t in spec.tasks), **spec.net})
    torch.manual_seed(0)
    return save_checkpoint(folder / f"{preset}.pt", MTSANet(net), net, PreprocessConfig.from_dict({**TINY_PREP.to_dict(), **spec.preprocess}),
                           spec.tasks)


def head_text(head: dict) -> str:
    if head["kind"] == "regression":
        return f"{head['name']} indeterminate" if head["value"] is None else f"{head['name']} {head['value']:.1f} {head['unit']}"
    probability = head.get("probability", (head.get("probabilities") or {}).get(head["call"]))
    return f"{head['name']} {head['call']}" + ("" if probability is None else f" (p={probability:.2f})")


@pytest.mark.parametrize("preset", ["hcc-tace", "breast-dce"])
def test_predict_prints_the_heads_of_a_liver_or_breast_model(preset, tmp_path, capsys):
    """Each of the model's own heads is printed, never MTSA-Net's 'EGFR n/a' (issue 14)."""
    path = tmp_path / "case.nrrd"
    sitk.WriteImage(lesion_volume()[0], str(path))
    checkpoint = preset_checkpoint(tmp_path, preset)
    assert main(["predict", str(path), "--model", str(checkpoint), "--out", str(tmp_path / "out")]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    report = json.loads((tmp_path / "out" / "case.json").read_text())
    assert report["heads"] == [t.key for t in PRESETS[preset].tasks if t.is_head] and "EGFR" not in line
    assert line.startswith("case: ") and line.endswith(" s on cpu")
    assert ", ".join(head_text(report[key]) for key in report["heads"]) in line


def test_summary_line_gives_a_preset_heads_answer():
    """A GTV is found (the brightness rule), so the liver model's response head answers with a probability."""
    model = stand_in(tasks=PRESETS["hcc-tace"].tasks)
    report = predict_volume(lesion_volume()[0], model, device="cpu", case="liver 1").report
    answer = report.heads["response"]
    assert answer.probability is not None and answer.call in ("non-response", "response")
    line = summary_line(report)
    assert line.startswith(f"liver 1: 1 lesion(s), GTV {report.gtv.volume_ml:.2f} mL, Response {answer.call} (p={answer.probability:.2f}), ")


def test_same_input_and_model_give_the_same_output(tmp_path, capsys, tiny_checkpoint):
    image, _ = lesion_volume()
    path = tmp_path / "c.nii.gz"
    sitk.WriteImage(image, str(path))
    reports = []
    for name in ("a", "b"):
        assert run(capsys, "predict", str(path), "--model", str(tiny_checkpoint), "--out", str(tmp_path / name))[0] == 0
        report = json.loads((tmp_path / name / "c.json").read_text())
        report.pop("timing")
        reports.append(report)
        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / name / "c.seg.nrrd")))
        reports[-1]["voxels"] = int(seg.sum())
    assert reports[0] == reports[1]


# ---- bad input: one test per case, each a one-line error naming the input, non-zero exit, no output


def write_array(path: Path, array: np.ndarray, spacing=None) -> Path:
    image = sitk.GetImageFromArray(array)
    if spacing:
        image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def nrrd_with_spacing(path: Path, spacing_x: float) -> Path:
    data = np.random.default_rng(0).random((20, 20, 20), dtype=np.float32)
    header = (
        "NRRD0004\ntype: float\ndimension: 3\nspace: left-posterior-superior\nsizes: 20 20 20\n"
        f"space directions: ({spacing_x},0,0) (0,1,0) (0,0,1)\nkinds: domain domain domain\n"
        "endian: little\nencoding: raw\nspace origin: (0,0,0)\n\n"
    )
    path.write_bytes(header.encode() + data.tobytes())
    return path


def noisy(shape=(20, 40, 40)) -> np.ndarray:
    return np.random.default_rng(0).random(shape, dtype=np.float32) * 100


def bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    with_nan, with_inf = noisy(), noisy()
    with_nan[3, 4, 5] = np.nan
    with_inf[1, 2, 3] = np.inf
    four_d = sitk.JoinSeries([sitk.GetImageFromArray(noisy()) for _ in range(3)])
    sitk.WriteImage(four_d, str(tmp / "fourd.nii.gz"))
    (tmp / "notes.nii.gz").write_text("this is not an image")
    return {
        "2D image": (write_array(tmp / "flat.nrrd", noisy((40, 40))), "2D"),
        "4D image": (tmp / "fourd.nii.gz", "4D"),
        "not an image": (tmp / "notes.nii.gz", "not an image"),
        "missing path": (tmp / "nowhere.nii.gz", "no such file"),
        "constant volume": (write_array(tmp / "flat.nii.gz", np.full((20, 40, 40), 7, np.int16)), "same value"),
        "NaN voxels": (write_array(tmp / "nan.nrrd", with_nan), "NaN or infinite"),
        "Inf voxels": (write_array(tmp / "inf.nrrd", with_inf), "NaN or infinite"),
        "zero spacing": (nrrd_with_spacing(tmp / "zero.nrrd", 0.0), "spacing"),
        "absurd spacing": (nrrd_with_spacing(tmp / "huge.nrrd", 1000.0), "spacing"),
        "smaller than a slice": (write_array(tmp / "tiny.nrrd", noisy((4, 8, 8))), "smaller than one"),
    }


@pytest.mark.parametrize("case", [
    "2D image", "4D image", "not an image", "missing path", "constant volume", "NaN voxels",
    "Inf voxels", "zero spacing", "absurd spacing", "smaller than a slice",
])
def test_bad_input_gets_one_line_and_no_output(case, tmp_path, capsys, tiny_checkpoint):
    (tmp_path / "in").mkdir()
    path, expected = bad_inputs(tmp_path / "in")[case]
    out = tmp_path / "out"
    code, err = run(capsys, "predict", str(path), "--model", str(tiny_checkpoint), "--out", str(out))
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert str(path) in lines[0] and expected in lines[0], lines[0]
    assert not out.exists() or not any(out.iterdir())


def test_truncated_checkpoint(tmp_path, capsys, tiny_checkpoint):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    image, _ = lesion_volume()
    sitk.WriteImage(image, str(tmp_path / "c.nrrd"))
    code, err = run(capsys, "predict", str(tmp_path / "c.nrrd"), "--model", str(broken), "--out", str(tmp_path / "out"))
    assert code != 0 and err.startswith(f"error: {broken}: damaged") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_unwritable_output_folder(tmp_path, capsys, tiny_checkpoint):
    if os.geteuid() == 0:  # root writes through permissions: use a file system that refuses everyone
        out = Path("/sys/mtsa-out")
        try:
            tempfile.TemporaryFile(dir="/sys").close()
            pytest.skip("no folder here refuses root (/sys is writable)")
        except OSError:
            pass
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        out = locked / "out"
    image, _ = lesion_volume()
    sitk.WriteImage(image, str(tmp_path / "c.nrrd"))
    code, err = run(capsys, "predict", str(tmp_path / "c.nrrd"), "--model", str(tiny_checkpoint), "--out", str(out))
    assert code != 0 and err.startswith(f"error: {out}: output folder") and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_console_script_exit_status(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "MTSASegmenterLib.cli", "predict", str(tmp_path / "none.nii.gz")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path / 'none.nii.gz'}: no such file or folder"


# ---- real scans: outputs lie on each input's grid (any checkpoint will do for geometry)


@pytest.mark.parametrize("scan", [
    "brats-met-00110/BraTS-MET-00110-000-t1c.nii.gz", "mr-gd/MR_Gd.nii.gz", "vs-seg-001-dicom",
])
def test_real_scans(scan, real_data, tmp_path, capsys, tiny_checkpoint):
    from MTSASegmenterLib.io.imageio import read_image

    source = real_data / scan
    code, err = run(capsys, "predict", str(source), "--model", str(tiny_checkpoint), "--out", str(tmp_path))
    assert code == 0, err
    (seg_path,) = tmp_path.glob("*.seg.nrrd")
    assert_on_grid(seg_path, read_image(source))
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert report["slices"]["predicted"] > 0
