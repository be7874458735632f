"""``mtsa demo``: one synthetic patient, predicted with the bundled model, shown beside the truth."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import SimpleITK as sitk
from MTSASegmenterLib.cli import summary_line
from MTSASegmenterLib.config import DEVICES
from MTSASegmenterLib.errors import run_command
from MTSASegmenterLib.progress import progress_bar
from MTSASegmenterLib.inference.pipeline import predict_volume
from MTSASegmenterLib.io.outputs import (
    atomic_outputs,
    check_writable,
    write_prediction_files,
)
from MTSASegmenterLib.io.overlay import write_overlay
from MTSASegmenterLib.metrics import dice
from MTSASegmenterLib.model.checkpoint import load_checkpoint
from MTSASegmenterLib.postprocess.lesions import find_lesions, lesion_detection
from MTSASegmenterLib.resources import demo_model_path


def main(argv: Sequence[str] | None = None, prog: str = "mtsa demo") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Predict one synthetic case and compare it with the truth.")
    parser.add_argument("--out", type=Path, default=Path("mtsa-demo"), help="output folder (default: ./mtsa-demo)")
    parser.add_argument("--seed", type=int, default=2023, help="which synthetic patient")
    parser.add_argument("--site", default="external", choices=["internal", "external"])
    parser.add_argument("--model", type=Path, help="checkpoint (default: the bundled demo model)")
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    return run_command(lambda: _run(args), interrupted=f"files already in {args.out} are complete; the rest were not written")


def _run(args: argparse.Namespace) -> int:
    from .phantoms.brain.generate import best_possible_accuracy, generate_case

    case = "demo_case"
    image_path, truth_path = args.out / f"{case}.nii.gz", args.out / f"{case}_truth.nii.gz"
    targets = [args.out / f"{case}.seg.nrrd", args.out / f"{case}.json", args.out / f"{case}_overlay.png"]
    check_writable([image_path, truth_path, *targets], args.overwrite)
    model = load_checkpoint(args.model or demo_model_path())

    print(f"generating synthetic patient (seed {args.seed}, {args.site} site) ...")
    phantom = generate_case(args.seed, site=args.site)
    with atomic_outputs([image_path, truth_path]) as (image_tmp, truth_tmp):
        sitk.WriteImage(phantom.image, str(image_tmp))
        sitk.WriteImage(phantom.mask, str(truth_tmp))

    progress, close = progress_bar(case)
    try:
        result = predict_volume(phantom.image, model, device=args.device, progress=progress, case=case, source=str(image_path))
    finally:
        close()
    write_prediction_files(
        targets, result.mask, result.report.to_dict(),
        picture=lambda path: write_overlay(path, result.grid, result.volume, result.mask, phantom.mask), segment=result.segment,
    )

    truth = sitk.GetArrayViewFromImage(phantom.mask) > 0
    predicted = sitk.GetArrayViewFromImage(result.mask) > 0
    spacing_zyx = phantom.image.GetSpacing()[::-1]
    detection = lesion_detection(predicted, truth, spacing_zyx)
    true_lesions = find_lesions(phantom.mask)
    print(summary_line(result.report))
    print(f"  image {'x'.join(map(str, phantom.image.GetSize()))} at {', '.join(f'{s:.2f}' for s in phantom.image.GetSpacing())} mm")
    print(f"  truth:     {len(true_lesions)} lesion(s), GTV {sum(les.volume_ml for les in true_lesions):.2f} mL, EGFR {phantom.egfr}")
    print(f"  predicted: {len(result.report.gtv.lesions)} lesion(s), GTV {result.report.gtv.volume_ml:.2f} mL, "
          f"EGFR {result.report.heads['egfr'].call}")
    print(f"  Dice {dice(predicted, truth):.3f}; lesions found {detection['n_detected']}/{detection['n_truth_lesions_evaluated']} "
          f"(>= 5 mm); false-positive lesions {detection['n_false_positive_lesions']}")
    print(f"  best possible EGFR accuracy on this synthetic biology: {best_possible_accuracy():.2f} (PHANTOM.md)")
    print(f"  files: {', '.join(str(p) for p in (image_path, truth_path, *targets))}")
    print("  synthetic data and a demo model: not for clinical use.")
    return 0
