"""``mtsa evaluate``: score a checkpoint on a cohort folder through the same pipeline as ``mtsa predict``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from MTSASegmenterLib.config import DEVICES
from MTSASegmenterLib.errors import InputError, run_command
from MTSASegmenterLib.model.checkpoint import load_checkpoint

from ..data.formats import add_cohort_options, detect_format
from .evaluate import EvalSettings, evaluate_model, select_cases


def build_parser(prog: str = "mtsa evaluate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Evaluate a checkpoint on a cohort folder (cases.csv + volumes).")
    p.add_argument("--data", type=Path, required=True, help="cohort folder: cases.csv, an nnU-Net raw dataset or BraTS-style folders")
    add_cohort_options(p)
    p.add_argument("--model", type=Path, required=True, help="checkpoint (best.pt of mtsa train)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--cases", choices=("test", "all"), default="test",
                   help="test (default): the split's test cases on the training cohort, every case of another cohort; all: every case")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--cohort", choices=("auto", "synthetic", "real"), default="auto",
                   help="is the cohort the synthetic phantom? auto: as the checkpoint's synthetic_only stamp")
    return p


def main(argv: list[str] | None = None, prog: str = "mtsa evaluate") -> int:
    """Exit 0 and one summary line on success; ``errors.run_command``'s exit-code rule otherwise."""
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        if args.n_boot < 1:
            raise InputError(f"--n-boot {args.n_boot}: must be at least 1")
        if detect_format(args.data) is None:
            raise InputError(f"{args.data}: not a cohort folder (no cases.csv, nnU-Net raw dataset or BraTS-style folders)")
        model = load_checkpoint(args.model)
        synthetic = model.info.synthetic_only if args.cohort == "auto" else args.cohort == "synthetic"
        settings = EvalSettings(device=args.device, n_boot=args.n_boot, seed=args.seed, synthetic=synthetic)
        summary = evaluate_model(model, select_cases(args.data, model, args.cases, args.gtv_labels, args.labels), args.out, settings, data=args.data)
        print(summary_line(summary) + f"; written to {args.out}")
        return 0

    return run_command(body)


def summary_line(summary: dict[str, Any]) -> str:
    parts = [f"{summary['model']['name']}: {summary['patients']} patient(s)"]
    if summary["gtv"] and summary["gtv"]["dice"]["value"] is not None:
        parts.append(f"Dice {summary['gtv']['dice']['value']:.3f}")
    egfr = summary["egfr"]
    if egfr and "accuracy" in egfr:
        limits = [(label, value) for label, value in (("image oracle", (summary["image_oracle"] or {}).get("accuracy")),
                                                      ("best possible", summary["best_possible_accuracy"])) if value is not None]
        parts.append(f"EGFR accuracy {egfr['accuracy']['value']:.3f}"
                     + (f" ({', '.join(f'{label} {value:.3f}' for label, value in limits)})" if limits else ""))
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
