"""What a model needs to see in a real lesion: tcga-fg-6692 predicted again with its lesion edited inside the
fusion's own labels (enhancing 4, core 1, oedema 2), scored against the tumour core (1 + 4) as `mtsa check-real` does.

    python benchmarks/real_lesion_edits.py [--model PT] [--data FOLDER]

Why: the bundled models miss most of tcga-fg-6692 (Dice 0.05-0.17) although the look probe finds synthetic
rims of the same brightness. Editing the real image says which of its properties stops the model: its faint
enhancement (1.22 x its oedema, median), its heterogeneity, or its oedema as bright as white matter. The scan is
only edited and predicted, never trained on (it is in the tuning set: model card). About 3 s per edit on 2 cores.
v13 (2026-12): none 0.17; oedema x 0.9 / 0.8 0.25 / 0.32; enhancing part uniform 1.2 / 1.4 / 1.6 x 0.00 / 0.52 /
0.70; its deviations from the oedema level x 2 0.25; core darkened 0.14. So the model wants enhancement of about
1.4 x its surroundings or a dark halo; tcga's lesion has neither. v14 (trained with iso-intense oedema, not
bundled): none 0.05, oedema x 0.8 0.11, enhancing part 1.4 / 1.6 x 0.32 / 0.62.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "MTSASegmenter")]

from MTSASegmenterLib.errors import run_command  # noqa: E402
from MTSASegmenterLib.inference.pipeline import predict_volume  # noqa: E402
from MTSASegmenterLib.io.imageio import read_image  # noqa: E402
from MTSASegmenterLib.metrics import dice  # noqa: E402
from MTSASegmenterLib.model.checkpoint import LoadedModel, load_checkpoint  # noqa: E402
from MTSASegmenterLib.resources import demo_model_path  # noqa: E402
from training.evaluation.real_cases import KNOWN_CASES, one_file, real_data_folder, reference_mask  # noqa: E402

CASE = next(case for case in KNOWN_CASES if case.name == "tcga-fg-6692")  # files and labels as check-real has them
ENHANCING, CORE, OEDEMA = 4, 1, 2
Edit = Callable[[np.ndarray, np.ndarray, float], np.ndarray]  # (image, fusion labels, oedema median) -> edited image


def on_label(label: int, change: Callable[[np.ndarray, float], np.ndarray]) -> Edit:
    """An edit of one label's voxels, given their values and the oedema median."""
    def edit(a: np.ndarray, seg: np.ndarray, ref: float) -> np.ndarray:
        a, inside = a.copy(), seg == label
        a[inside] = change(a[inside], ref)
        return a
    return edit


EDITS: dict[str, Edit] = {
    "none": lambda a, seg, ref: a,
    "oedema x 0.9": on_label(OEDEMA, lambda v, ref: 0.9 * v),
    "oedema x 0.8": on_label(OEDEMA, lambda v, ref: 0.8 * v),
    "enhancing uniform 1.2 x oedema": on_label(ENHANCING, lambda v, ref: np.full_like(v, 1.2 * ref)),
    "enhancing uniform 1.4 x oedema": on_label(ENHANCING, lambda v, ref: np.full_like(v, 1.4 * ref)),
    "enhancing uniform 1.6 x oedema": on_label(ENHANCING, lambda v, ref: np.full_like(v, 1.6 * ref)),
    "enhancing deviations x 2": on_label(ENHANCING, lambda v, ref: ref + 2.0 * (v - ref)),
    "core uniform 0.5 x oedema": on_label(CORE, lambda v, ref: np.full_like(v, 0.5 * ref)),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=demo_model_path())
    parser.add_argument("--data", type=Path, default=None, help="folder of real cases (default: $MTSA_REAL_DATA or ../shared/data/real)")
    args = parser.parse_args(argv)
    folder = (args.data or real_data_folder()) / CASE.name
    if not folder.is_dir():
        print(f"{folder} not found (set MTSA_REAL_DATA): nothing measured")
        return 0
    return run_command(lambda: measure(folder, load_checkpoint(args.model)))


def measure(folder: Path, model: LoadedModel) -> int:
    image = read_image(one_file(folder, CASE.image))
    truth = reference_mask(CASE, folder, image)
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(one_file(folder, CASE.reference))))
    original = sitk.GetArrayFromImage(image).astype(np.float32)
    ref = float(np.median(original[seg == OEDEMA]))
    ml = float(np.prod(image.GetSpacing())) / 1000.0
    print("| edit inside the fusion's labels | Dice | GTV mL inside / outside the tumour core |\n| --- | --- | --- |")
    for name, edit in EDITS.items():
        edited = sitk.GetImageFromArray(edit(original, seg, ref))
        edited.CopyInformation(image)
        pred = sitk.GetArrayFromImage(predict_volume(edited, model, device="cpu").mask) > 0
        print(f"| {name} | {dice(pred, truth):.3f} | {(pred & truth).sum() * ml:.2f} / {(pred & ~truth).sum() * ml:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
