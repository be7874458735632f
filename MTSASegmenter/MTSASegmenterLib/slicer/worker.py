"""The Slicer module's prediction process: ``PythonSlicer -m MTSASegmenterLib.slicer.worker``.

It runs in Slicer's Python but in a process of its own, so that the application stays
responsive and Cancel can simply end it. It imports neither slicer nor qt: it reads the volume
the module wrote to a temporary NRRD file (which keeps the node's geometry), predicts it with the
same ``predict_volume`` as ``mtsa predict``, and writes ``prediction.seg.nrrd`` and
``prediction.json`` into the output folder, all or nothing. Progress goes to stdout, one line per
update (``progress_line``); an error the user can act on as one ``error: ...`` line with exit
status 2 (``errors.EXIT_ERROR``), as every ``mtsa`` command does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..config import DEVICES
from ..errors import MTSAError, run_command

PROGRESS_TAG = "mtsa-progress"
SEGMENTATION_NAME = "prediction.seg.nrrd"
REPORT_NAME = "prediction.json"


def progress_line(fraction: float, message: str) -> str:
    return f"{PROGRESS_TAG} {min(max(float(fraction), 0.0), 1.0):.4f} {message}"


def parse_progress(line: str) -> tuple[float, str] | None:
    """``(fraction, message)`` of a progress line; None for any other output (kept for the log)."""
    parts = line.rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or parts[0] != PROGRESS_TAG:
        return None
    try:
        fraction = float(parts[1])
    except ValueError:
        return None
    return fraction, parts[2] if len(parts) > 2 else ""


def output_paths(folder: Path) -> tuple[Path, Path]:
    return folder / SEGMENTATION_NAME, folder / REPORT_NAME


def _emit(fraction: float, message: str) -> None:
    print(progress_line(fraction, message), flush=True)


def _predict(args: argparse.Namespace) -> None:
    try:  # the heavy imports: a broken or missing package must read as what it is
        from ..inference.pipeline import predict_volume
        from ..io.imageio import read_image
        from ..io.outputs import write_prediction_files
        from ..model.checkpoint import load_checkpoint
        from ..resources import demo_model_path
    except ImportError as error:
        name = getattr(error, "name", None) or "a required package"
        raise MTSAError(f"{name}: cannot be imported in this Python ({error}); install the module's requirements again") from error

    _emit(0.0, "loading the model")
    model = load_checkpoint(args.model or demo_model_path(), "cpu")
    _emit(0.02, "reading the volume")
    image = read_image(args.input)
    result = predict_volume(image, model, device=args.device, batch_size=args.batch_size,
                            progress=lambda f, m: _emit(0.03 + 0.92 * f, m), case=args.case)
    _emit(0.96, "writing the results")
    report = result.report.to_dict()
    write_prediction_files(list(output_paths(args.out)), result.mask, report, segment=result.segment)
    _emit(1.0, "done")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="MTSASegmenterLib.slicer.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help="the volume (NRRD written by the module)")
    parser.add_argument("--out", type=Path, required=True, help="folder for prediction.seg.nrrd and prediction.json")
    parser.add_argument("--case", default="", help="the case name the report carries (the volume node's name)")
    parser.add_argument("--model", type=Path, help="checkpoint (default: the bundled demo model)")
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--batch-size", type=int, default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        _predict(args)
        return 0

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
