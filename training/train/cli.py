"""``mtsa train``: the command line of the trainer (options shared with ``mtsa ablations``).

Several GPUs: ``torchrun --nproc_per_node N -m training.train.cli --data ... --out ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path

from MTSASegmenterLib.config import (
    DEVICES,
    NORMALISATIONS,
    NetConfig,
    PreprocessConfig,
    TaskSpec,
    head_tasks,
)
from MTSASegmenterLib.errors import InputError, MTSAError, run_command
from MTSASegmenterLib.model.presets import PRESETS

from ..data.formats import add_cohort_options
from ..data.cohort import SPLIT_KINDS
from .config import TrainConfig
from .loop import train
from .losses import WEIGHTINGS, LossConfig


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options of one training run that ``mtsa train`` and ``mtsa ablations`` share: everything but
    the branches, the loss weighting and focal alpha (an ablation sets those per variant) and --resume."""
    p.add_argument("--data", type=Path, required=True, help="cohort folder: cases.csv, an nnU-Net raw dataset or BraTS-style folders")
    add_cohort_options(p)
    p.add_argument("--split", choices=SPLIT_KINDS, default="random")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--cutoff", type=date.fromisoformat, help="temporal split: first test date (YYYY-MM-DD)")
    p.add_argument("--test-sites", help="site split: comma-separated test sites")
    p.add_argument("--epochs", type=int, default=200, help="at most (early stopping, --patience)")
    p.add_argument("--patience", type=int, default=20)
    p.add_argument("--max-minutes", type=float, help="wall-clock budget; no epoch starts after it")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--lr-decay-epochs", type=int, default=0, metavar="N",
                   help="anneal the learning rate over the last N of --epochs (half cosine; 0: constant, the paper's); "
                        "take final.pt, the last epoch's weights, rather than best.pt then")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--input-size", type=int, default=384, help="model grid size S (multiple of 16)")
    p.add_argument("--width", type=int, default=32, help="channels of the first MSA block")
    p.add_argument("--spacing", type=float, default=1.0, help="in-plane spacing of the model grid (mm)")
    p.add_argument("--context", type=int, default=1, help="neighbour slices on each side (channels = 2*context+1)")
    p.add_argument("--min-slice-mm", type=float, default=1.0, help="thinnest axial slice spacing of the model grid (mm)")
    p.add_argument("--max-slice-mm", type=float, default=0.0, metavar="MM",
                   help="train and predict scans with slices thicker than MM on slices interpolated to at most MM apart "
                        "(0: native slices; see mtsa fit-head); a fine-tune (--init) may change it")
    p.add_argument("--preset", choices=sorted(PRESETS), default="mtsa-net",
                   help="task list, intensity mapping and network options of one of the papers' systems (see presets.py)")
    p.add_argument("--normalisation", choices=NORMALISATIONS,
                   help="intensity mapping (default: the preset's): tissue median (MR, the paper), tissue percentiles (MR) or a CT window (HU)")
    p.add_argument("--window", type=float, nargs=2, metavar=("LOW", "HIGH"), help="ct_window: HU range (default -100 250)")
    p.add_argument("--percentiles", type=float, nargs=2, metavar=("LOW", "HIGH"), help="percentile: tissue percentiles (default 1 99)")
    p.add_argument("--roi-weighting", action="store_true", help="core / rim / surroundings weighting of the classifier's input")
    p.add_argument("--tasks", type=Path, help="JSON list of tasks (config.TaskSpec fields); default: the preset's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--beta", type=float, default=1 / 25000, help="weight of the summed focal loss")
    p.add_argument("--tumour-slice-dice", type=float, default=LossConfig.tumour_slice_dice, metavar="0-1",
                   help="share of the Dice loss taken per tumour slice rather than over the batch, so small lesions weigh as much as large ones")
    p.add_argument("--free-share", type=float, default=0.0, help="share of tumour-free tissue slices")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--cache-dir", type=Path)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--no-amp", action="store_true")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--real-data", action="store_true", help="the cohort is not synthetic (clears the not-for-clinical-use stamp)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--name", help="the model's name in its checkpoint and reports (default: the preset's, e.g. MTSA-Net)")


def build_parser(prog: str = "mtsa train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Train MTSA-Net on a cohort folder (cases.csv + volumes).")
    add_run_options(p)
    p.add_argument("--out", type=Path, required=True, help="output folder (best.pt, last.pt, log.csv, tb/)")
    p.add_argument("--task", choices=("both", "segmentation", "classification"), default="both",
                   help="train the GTV and the heads (both), or one branch only (the paper's baselines)")
    p.add_argument("--weighting", choices=WEIGHTINGS, default=LossConfig.weighting)
    p.add_argument("--focal-alpha", type=float, default=LossConfig.focal_alpha)
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--init", type=Path, metavar="PT",
                   help="start from this checkpoint's network weights (fine-tuning on your cohort); it must have the run's "
                        "network and preprocessing options")
    return p


def read_tasks(path: Path) -> tuple[TaskSpec, ...]:
    """A task list from JSON; errors name the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise ValueError("expected a JSON list of tasks")
        return tuple(TaskSpec.from_dict(t) for t in data)
    except OSError as exc:
        raise MTSAError(f"{path}: cannot read the task list ({exc.strerror})") from None
    except (ValueError, TypeError, MTSAError) as exc:
        raise MTSAError(f"{path}: not a valid task list ({exc})") from None


def config_from_args(args: argparse.Namespace, command: str = "") -> TrainConfig:
    """The run's configuration; an inconsistent one is refused as bad input (``InputError``)."""
    try:
        return _config(args, command)
    except ValueError as exc:
        raise InputError(f"configuration: {exc}") from None


def _config(args: argparse.Namespace, command: str) -> TrainConfig:
    preset = PRESETS[args.preset]
    tasks = read_tasks(args.tasks) if args.tasks else preset.tasks
    segmentation, classification = args.task != "classification", args.task != "segmentation"
    net = NetConfig(
        in_channels=2 * args.context + 1, base_width=args.width, input_size=args.input_size,
        num_classes=max(1, sum(t.outputs for t in head_tasks(tasks))), segmentation=segmentation, classification=classification,
        roi_weighting=(args.roi_weighting or preset.net.get("roi_weighting", False)) and segmentation and classification,
    )
    intensity = dict(preset.preprocess)
    if args.normalisation:
        intensity = {"normalisation": args.normalisation, "clip_max": 1.0 if args.normalisation == "ct_window" else PreprocessConfig.clip_max}
    intensity.update({k: tuple(v) for k, v in (("window", args.window), ("percentiles", args.percentiles)) if v})
    preprocess = PreprocessConfig(
        spacing_mm=args.spacing, input_size=args.input_size, context_slices=args.context, min_slice_mm=args.min_slice_mm,
        max_slice_mm=args.max_slice_mm, **intensity
    )
    return TrainConfig(
        data=args.data, out=args.out, split=args.split, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
        cutoff=args.cutoff, gtv_labels=args.gtv_labels, labels=args.labels, test_sites=tuple(s.strip() for s in args.test_sites.split(",")) if args.test_sites else None,
        seed=args.seed, epochs=args.epochs, patience=args.patience, max_minutes=args.max_minutes, lr=args.lr,
        lr_decay_epochs=args.lr_decay_epochs, batch_size=args.batch_size,
        net=net, preprocess=preprocess,
        loss=LossConfig(weighting=args.weighting, beta=args.beta, focal_alpha=args.focal_alpha,
                        tumour_slice_dice=args.tumour_slice_dice), tasks=tasks,
        free_share=args.free_share, augment=not args.no_augment, cache_dir=args.cache_dir, device=args.device,
        amp=not args.no_amp, num_workers=args.workers, resume=args.resume, init=args.init, synthetic_only=not args.real_data,
        model_name=args.name or preset.name, command=command, progress_bar=not args.no_progress,
    )


def main(argv: list[str] | None = None, prog: str = "mtsa train") -> int:
    """Exit 0 with the best checkpoint's path on stdout; ``errors.run_command``'s exit-code rule otherwise."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)

    def body() -> int:
        best = train(config_from_args(args, command=" ".join([prog, *argv])))
        if os.environ.get("RANK", "0") == "0":
            print(best)
        return 0

    code = run_command(body, interrupted=f"{args.out}/last.pt holds the last finished epoch; --resume continues")
    if code == 0 and int(os.environ.get("WORLD_SIZE", "1")) > 1 and __name__ == "__main__":
        # Under torchrun, gloo's worker threads can abort the interpreter's finalisation after a
        # finished run (SIGABRT, "terminate called without an active exception"; seen on a busy
        # 2-core CPU): everything is written and the process group destroyed, so leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return code


if __name__ == "__main__":
    sys.exit(main())
