"""How much a model's GTV depends on where lesions sit: the same synthetic patients (their look, scan and
lesion biology) with their lesions placed as usual, all of them beside the midline, against the falx and
the sagittal sinus, which enhance as a lesion does, or all against the ventricles (the choroid plexus in the
atria enhances too; brats-met-00110's cyst lies there). Each arm scored by Dice and by lesions found, and each
missed lesion by the step that lost it (network or component filter, as `mtsa evaluate`'s missed_lesions.csv).

    python benchmarks/lesion_placement_probe.py [--model PT] [--cases 12] [--seed 700]

Why: v13 missed a plain 10 mm ring-enhancing lesion beside the sagittal sinus (peak probability 0.0003), and
v8 one beside the falx. Every arm keeps every lesion off the falx (PhantomConfig.clear_falx), as real metastases
are. Figures, 12 external-site patients (seeds 700-711, about 6 min on 2 cores), placed as usual / beside the
midline: v18 24 / 21 of 25 lesions found, Dice 0.845 / 0.798 (v18t: the same counts, 0.848 / 0.798; at today's
code 24 / 20, 0.833 / 0.785; P3tf, bundled since: 24 / 20, 0.850 / 0.788, and 21 of 25, Dice 0.769, against
the ventricles; on seeds 800-811 P3tf 20 / 19 / 20 of 23, Dice 0.847 / 0.795 / 0.826);
v13 24 / 20, Dice 0.855 / 0.772. Before the arms cleared the falx (some lesions then crossed it): v18 24 / 19, v13
24 / 20 (model card, "v18").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "MTSASegmenter")]

from MTSASegmenterLib.inference.pipeline import predict_volume  # noqa: E402
from MTSASegmenterLib.metrics import dice  # noqa: E402
from MTSASegmenterLib.model.checkpoint import load_checkpoint  # noqa: E402
from MTSASegmenterLib.postprocess.lesions import lesion_detection  # noqa: E402
from MTSASegmenterLib.resources import demo_model_path  # noqa: E402
from training.evaluation.scores import NETWORK, POSTPROCESSING, missed_by_prediction  # noqa: E402
from training.phantoms.brain.generate import PhantomConfig, generate_case  # noqa: E402

ARMS = {  # name -> the PhantomConfig placement shares
    "placed as usual": {},
    "beside the midline": {"parasagittal_probability": 1.0},
    "against the ventricles": {"periventricular_probability": 1.0},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=demo_model_path())
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--seed", type=int, default=700)
    parser.add_argument("--site", choices=("internal", "external"), default="external")
    args = parser.parse_args(argv)
    model = load_checkpoint(args.model)
    print("| lesions | mean Dice | lesions found (>= 5 mm) | missed: network / component filter |\n| --- | --- | --- | --- |")
    for name, shares in ARMS.items():
        scores, found, evaluated, causes = [], 0, 0, []
        for seed in range(args.seed, args.seed + args.cases):
            case = generate_case(seed, args.site, config=PhantomConfig(clear_falx=True, **shares))
            prediction = predict_volume(case.image, model, device="cpu")
            pred, truth = sitk.GetArrayFromImage(prediction.mask) > 0, sitk.GetArrayFromImage(case.mask) > 0
            spacing = case.image.GetSpacing()[::-1]
            scores.append(dice(pred, truth))
            detection = lesion_detection(pred, truth, spacing)
            found, evaluated = found + detection["n_detected"], evaluated + detection["n_truth_lesions_evaluated"]
            causes += [m.cause for m in missed_by_prediction(prediction, case.image, pred, truth)]
        print(f"| {name} | {np.mean(scores):.3f} | {found}/{evaluated} | {causes.count(NETWORK)} / {causes.count(POSTPROCESSING)} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
