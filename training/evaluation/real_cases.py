"""``mtsa check-real``: the model on real scans with a reference, case by case, as a new user would try it.

Synthetic scores say how well a model learned the phantom; this says whether it finds real
metastases. Each known case of ``$MTSA_REAL_DATA`` (default ``../shared/data/real``; public scans,
never part of the repository) is predicted through the same pipeline as ``mtsa predict`` and
compared with its reference; a scan without lesions is a false-positive check. Per case: Dice,
reference lesions found, predicted and false-positive lesions, false-positive volume, what the
component filter dropped, and an overlay strip (reference yellow, prediction green).

The references are not expert ground truth (an algorithm's or a fusion's prediction, see the data
README), and a handful of scans is a check, not a validation.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import SimpleITK as sitk
from MTSASegmenterLib.config import DEVICES
from MTSASegmenterLib.errors import MTSAError, run_command
from MTSASegmenterLib.inference.pipeline import predict_volume
from MTSASegmenterLib.io.imageio import read_image
from MTSASegmenterLib.io.overlay import draw_overlay
from MTSASegmenterLib.metrics import dice
from MTSASegmenterLib.model.checkpoint import LoadedModel, load_checkpoint
from MTSASegmenterLib.postprocess.lesions import label_components, lesion_detection
from MTSASegmenterLib.resources import demo_model_path

from ..data.slices import read_mask_file

DEFAULT_FOLDER = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
STRIP_SLICES = 5


@dataclass(frozen=True)
class RealCase:
    """A scan and its reference: ``labels`` are the reference's values that make up the GTV
    (empty tuple with no reference file: the scan has no lesion, every prediction is false)."""

    name: str
    image: str  # glob inside the case folder
    reference: str = ""  # glob inside the case folder
    labels: tuple[int, ...] = ()
    what: str = ""


KNOWN_CASES: tuple[RealCase, ...] = (
    RealCase("brats-met-00110", "*-t1c.nii.gz", "*AURORA_prediction.nii.gz", (2,),
             "cystic metastasis vs AURORA's lesion label (2)"),
    RealCase("tcga-fg-6692", "*_t1c_bet.nii.gz", "*_fusion_seg.nii.gz", (1, 4),
             "ring-enhancing lesion vs the fusion's tumour core (1 + 4)"),
    RealCase("mr-gd", "MR_Gd.nii.gz", what="no metastasis: any GTV is false"),
)


def real_data_folder() -> Path:
    return Path(os.environ.get("MTSA_REAL_DATA", DEFAULT_FOLDER))


def one_file(folder: Path, pattern: str) -> Path:
    """The single file of a case folder matching ``pattern``; refused, naming both, if none or several."""
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise MTSAError(f"{folder}: expected one file matching {pattern!r}, found {len(found)}")
    return found[0]


@dataclass
class CaseResult:
    name: str
    what: str
    dice: float | None  # None without a reference lesion
    reference_lesions: int
    detected: int
    predicted_lesions: int
    false_positive_lesions: int
    false_positive_ml: float
    predicted_ml: float
    reference_ml: float
    dropped: int
    seconds: float
    dropped_text: str = ""  # what the component filter removed and why

    def row(self) -> str:
        d = "  n/a" if self.dice is None else f"{self.dice:5.3f}"
        return (f"| {self.name} | {d} | {self.detected}/{self.reference_lesions} | {self.predicted_lesions} | "
                f"{self.false_positive_lesions} | {self.false_positive_ml:.2f} | {self.predicted_ml:.2f} / {self.reference_ml:.2f} | "
                f"{self.dropped} | {self.seconds:.1f} |")


HEADER = ("| case | Dice | reference lesions found | predicted lesions | false-positive lesions | false-positive mL | "
          "GTV mL predicted / reference | components dropped | s |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def reference_mask(case: RealCase, folder: Path, image: sitk.Image) -> np.ndarray:
    """The reference GTV on the image's grid [z, y, x] (empty for a scan without lesions)."""
    if not case.reference:
        return np.zeros(sitk.GetArrayViewFromImage(image).shape, bool)
    ref = read_mask_file(one_file(folder, case.reference), image, "reference")
    return np.isin(sitk.GetArrayViewFromImage(ref), case.labels)


def check_case(case: RealCase, folder: Path, model: LoadedModel, device: str, strip: Path | None) -> CaseResult:
    image = read_image(one_file(folder, case.image))
    truth = reference_mask(case, folder, image)
    prediction = predict_volume(image, model, device=device, case=case.name, source=str(folder))
    predicted = sitk.GetArrayViewFromImage(prediction.mask) > 0
    spacing_zyx = image.GetSpacing()[::-1]
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    detection = lesion_detection(predicted, truth, spacing_zyx, min_diameter_mm=0.0)
    labels, _ = label_components(predicted)
    false_labels = np.setdiff1d(np.unique(labels[predicted & ~truth]), np.unique(labels[predicted & truth]))
    report = prediction.report
    if strip is not None:
        write_strip(strip, prediction, image, truth)
    return CaseResult(
        name=case.name, what=case.what, dice=float(dice(predicted, truth)) if truth.any() else None,
        reference_lesions=int(detection["n_truth_lesions"]), detected=int(detection["n_detected"]),
        predicted_lesions=int(detection["n_pred_lesions"]), false_positive_lesions=int(detection["n_false_positive_lesions"]),
        false_positive_ml=float(np.isin(labels, false_labels[false_labels > 0]).sum() * voxel_ml),
        predicted_ml=float(predicted.sum() * voxel_ml), reference_ml=float(truth.sum() * voxel_ml),
        dropped=report.gtv.postprocessing.components_dropped if report.gtv.postprocessing else 0,
        seconds=report.timing.total_s, dropped_text=describe_dropped(case.name, report.gtv.postprocessing),
    )


def describe_dropped(name: str, postprocessing) -> str:
    """One line on what the component filter removed: how much, and the largest removal's rating and reasons."""
    if postprocessing is None or not postprocessing.dropped:
        return f"{name}: the component filter dropped {postprocessing.components_dropped if postprocessing else 0} component(s)"
    largest = max(postprocessing.dropped, key=lambda d: d.volume_ml)
    reasons = ", ".join(f"{k} {v:+.2f}" for k, v in largest.reasons.items())
    total = sum(d.volume_ml for d in postprocessing.dropped)
    return (f"{name}: the component filter dropped {postprocessing.components_dropped} component(s), {total:.2f} mL in all; "
            f"the largest, {largest.volume_ml:.2f} mL at RAS ({', '.join(f'{c:.0f}' for c in largest.centroid_ras)}), "
            f"rated {largest.rating:.2f} ({reasons})")


def strip_slices(pred: np.ndarray, truth: np.ndarray, n: int = STRIP_SLICES) -> list[int]:
    """Model slices to show: spread over the reference lesion (else the prediction, else the volume)."""
    for mask in (truth, pred):
        z = np.flatnonzero(mask.any(axis=(1, 2)))
        if z.size:
            return sorted({int(v) for v in np.linspace(z[0], z[-1], min(n, z.size)).round()})
    return [int(v) for v in np.linspace(0, pred.shape[0] - 1, n + 2).round()[1:-1]]


def write_strip(path: Path, prediction, image: sitk.Image, truth: np.ndarray) -> None:
    """Axial slices of the model grid side by side: reference yellow, prediction green."""
    grid = prediction.grid
    truth_image = sitk.GetImageFromArray(truth.astype(np.uint8))
    truth_image.CopyInformation(image)
    pred_grid, truth_grid = grid.mask_to_grid(prediction.mask), grid.mask_to_grid(truth_image)
    pictures = [draw_overlay(prediction.volume[z], pred_grid[z], truth_grid[z], scale=2) for z in strip_slices(pred_grid, truth_grid)]
    if not cv2.imwrite(str(path), cv2.hconcat(pictures)):
        raise MTSAError(f"{path}: could not write the overlay strip")


def run(folder: Path, model: LoadedModel, out: Path | None, device: str = "auto",
        cases: Sequence[RealCase] | None = None) -> list[CaseResult]:
    """Every known case present in ``folder``; cases absent there are skipped, saying so."""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    results = []
    for case in KNOWN_CASES if cases is None else cases:
        if not (folder / case.name).is_dir():
            print(f"{case.name}: not in {folder}, skipped")
            continue
        strip = None if out is None else out / f"{case.name}_strip.png"
        results.append(check_case(case, folder / case.name, model, device, strip))
    return results


def main(argv: list[str] | None = None, prog: str = "mtsa check-real") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Predict the real scans of MTSA_REAL_DATA and compare with their references.")
    parser.add_argument("--data", type=Path, default=None, help="folder of real cases (default: $MTSA_REAL_DATA or ../shared/data/real)")
    parser.add_argument("--model", type=Path, help="checkpoint (default: the bundled demo model)")
    parser.add_argument("--out", type=Path, help="folder for the overlay strips (default: none written)")
    parser.add_argument("--device", default="auto", choices=DEVICES)
    args = parser.parse_args(argv)
    folder = args.data or real_data_folder()
    if not folder.is_dir():
        print(f"real scans not found at {folder} (set MTSA_REAL_DATA): nothing checked")
        return 0

    def body() -> int:
        results = run(folder, load_checkpoint(args.model or demo_model_path()), args.out, args.device)
        print(HEADER)
        for r in results:
            print(r.row())
        for r in results:
            print(r.dropped_text)
        return 0

    return run_command(body)
