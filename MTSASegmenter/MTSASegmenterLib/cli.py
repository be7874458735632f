"""The ``mtsa`` command: predict, info, and the training-side demo, synth, train, fit-head, evaluate, ablations,
check-real and cohort.

Errors the user can fix are printed as one ``error: ...`` line on stderr with a non-zero status;
tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .config import DEVICES
from .errors import MTSAError, run_command
from .progress import progress_bar

if TYPE_CHECKING:
    from .inference.report import Report


FORMATS = {"seg": ".seg.nrrd", "nifti": ".gtv.nii.gz", "dicom-seg": ".seg.dcm", "rtstruct": ".rtstruct.dcm"}
FORMAT_ALIASES = {"both": ("seg", "nifti")}
DICOM_FORMATS = ("dicom-seg", "rtstruct")


def parse_formats(text: str) -> tuple[str, ...]:
    """``seg,rtstruct`` -> ('seg', 'rtstruct'); ``both`` is ``seg,nifti``."""
    names: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        for name in FORMAT_ALIASES.get(part, (part,)):
            if name not in FORMATS:
                raise argparse.ArgumentTypeError(f"{part!r} is not one of {', '.join(FORMATS)} (or both)")
            names += [name] if name not in names else []
    return tuple(names)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="segment the GTV and answer the model's heads (EGFR for the bundled model) for each image")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="a file SimpleITK reads, or a DICOM series folder")
    p.add_argument("--model", type=Path, help="checkpoint (default: the bundled demo model)")
    p.add_argument("--out", type=Path, default=Path("."), help="output folder (default: current folder)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--batch-size", type=int, default=None, help="slices per batch (default: 4 on CPU, 16 on GPU)")
    p.add_argument("--format", default=("seg",), type=parse_formats, metavar="LIST",
                   help="comma-separated: seg (.seg.nrrd, default), nifti (.gtv.nii.gz), dicom-seg (.seg.dcm), "
                        "rtstruct (.rtstruct.dcm); both = seg,nifti. The DICOM ones need a DICOM series input")
    p.add_argument("--series", metavar="UID", help="SeriesInstanceUID to read from a DICOM folder that holds several")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_predict)


def output_paths(case: str, out: Path, formats: Sequence[str]) -> list[Path]:
    return [out / f"{case}{FORMATS[f]}" for f in formats] + [out / f"{case}.json"]


def check_inputs(images: Sequence[str], formats: Sequence[str], series: str | None) -> None:
    """Refuse, before any work, a missing input and DICOM options asked of an input that is not DICOM."""
    from .io.dicom_series import is_dicom_input

    wanted = [f for f in formats if f in DICOM_FORMATS]
    for path in images:
        if not Path(path).exists():
            raise MTSAError(f"{path}: no such file or folder")
        if wanted and not is_dicom_input(path):
            raise MTSAError(f"{path}: --format {wanted[0]} needs a DICOM series input (a folder of DICOM files); this is not DICOM")
        if series and not Path(path).is_dir():
            raise MTSAError(f"{path}: --series picks one series of a DICOM folder; this is not a folder")


def cmd_predict(args: argparse.Namespace) -> int:
    from .inference.pipeline import case_name, predict_volume
    from .io.dicom_common import Algorithm, DicomSource, require_references
    from .io.imageio import read_input
    from .io.outputs import check_writable, write_prediction_files
    from .model.checkpoint import load_checkpoint
    from .resources import demo_model_path

    if args.batch_size is not None and args.batch_size < 1:
        raise MTSAError(f"--batch-size {args.batch_size}: must be at least 1")
    cases = [case_name(p) for p in args.images]
    duplicates = sorted({c for c in cases if cases.count(c) > 1})
    if duplicates:
        raise MTSAError(f"inputs {', '.join(duplicates)}: several inputs share a case name; predict them into separate --out folders")
    targets = {p: output_paths(c, args.out, args.format) for p, c in zip(args.images, cases)}
    check_writable([t for ts in targets.values() for t in ts], args.overwrite)
    check_inputs(args.images, args.format, args.series)
    dicom_outputs = any(f in DICOM_FORMATS for f in args.format)
    model = load_checkpoint(args.model or demo_model_path())
    for path, case in zip(args.images, cases):
        start = time.perf_counter()
        image, series = read_input(path, args.series)
        source = None
        if dicom_outputs and series is not None:
            require_references(series)
            source = DicomSource(series, Algorithm(model.info.name, model.info.version, model.sha256))
        progress, close = progress_bar(case)
        try:
            result = predict_volume(image, model, device=args.device, batch_size=args.batch_size, progress=progress, case=case,
                                    source=str(path), started=start)
        finally:
            close()
        write_prediction_files(targets[path], result.mask, result.report.to_dict(), segment=result.segment, dicom=source)
        print(summary_line(result.report))
        for caution in result.report.input.cautions():
            print(f"  caution: {caution}")
    return 0


def summary_line(report: Report) -> str:
    """One line per case: the GTV, each of the model's heads, the time."""
    heads = "".join(f"{answer.text()}, " for answer in report.heads.values())
    return (f"{report.case}: {len(report.gtv.lesions)} lesion(s), GTV {report.gtv.volume_ml:.2f} mL, "
            f"{heads}{report.timing.total_s:.1f} s on {report.device}")


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a checkpoint or a network configuration (parameters, GFLOPs per slice)")
    p.add_argument("--model", type=Path, help="checkpoint (default: the bundled demo model)")
    p.add_argument("--paper", action="store_true", help="describe the paper's full-size network instead")
    p.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    from .config import NetConfig
    from .model.complexity import describe

    if args.paper:
        print(describe(NetConfig(in_channels=1, base_width=32, input_size=384)))
        return 0
    from .model.checkpoint import load_checkpoint
    from .resources import demo_model_path

    model = load_checkpoint(args.model or demo_model_path())
    print(describe(model.net_config))
    print(json.dumps({"path": str(model.path), "sha256": model.sha256, "info": model.info.to_dict(),
                      "preprocess": model.preprocess.to_dict(), "tasks": [t.to_dict() for t in model.tasks]}, indent=2))
    return 0


def _add_training_commands(sub: argparse._SubParsersAction) -> None:
    """Training-side commands import ``training`` only when run, so prediction stays lean."""
    for name, module, help_text in (
        ("synth", "training.phantoms.cli", "generate a synthetic cohort (brain MR of PHANTOM.md; --preset: liver CT, breast DCE-MRI)"),
        ("demo", "training.demo", "predict one synthetic case with the bundled model and compare with the truth"),
        ("train", "training.train.cli", "train MTSA-Net on a cohort folder"),
        ("fit-head", "training.train.fit_head", "fit the GTV component filter and the lesion-feature patient model of a trained network"),
        ("evaluate", "training.evaluation.cli", "evaluate a checkpoint on a cohort folder"),
        ("ablations", "training.train.ablations", "train and evaluate the paper's baselines and ablations (Tables 3-5)"),
        ("check-real", "training.evaluation.real_cases", "predict the real scans of MTSA_REAL_DATA and compare with their references"),
        ("cohort", "training.data.cohort_check", "check a cohort folder (cases.csv, nnU-Net raw dataset, BraTS folders) before training"),
    ):
        p = sub.add_parser(name, help=help_text, add_help=False)  # the module's own parser answers --help
        p.set_defaults(func=None, module=module, command=name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtsa", description="MTSA-Net: brain-metastasis GTV and EGFR status from T1-CE MR")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_predict(sub)
    _add_info(sub)
    _add_training_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)

    def body() -> int:
        if args.func is None:
            import importlib

            return int(importlib.import_module(args.module).main(rest, prog=f"mtsa {args.command}") or 0)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args.func(args)

    return run_command(body, interrupted="no output was written for the case in progress")


if __name__ == "__main__":
    sys.exit(main())
