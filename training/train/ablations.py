"""``mtsa ablations``: train and evaluate the paper's baselines and ablations (Zhou et al. 2023, Tables 3-5).

Variants (keys for ``--only``): ``mtsa`` (MTSA-Net: uncertainty weights, focal alpha 0.8),
``seg-only``, ``cls-only``, ``equal`` (0.5 / 0.5 weights), ``alpha-0.7``, ``alpha-0.9``. Each is
trained with ``training.train.loop.train`` into ``OUT/<key>/``, all sharing one slice cache
(``OUT/slice_cache``) so the volumes are preprocessed once, and evaluated with
``training.evaluation.evaluate`` into ``OUT/<key>/eval/``: on ``--test-data`` (an external cohort: all its
cases) or else on the test split of ``--data`` that each checkpoint records.

Tables in ``OUT``: ``table3`` (MTSA-Net vs segmentation-only vs classification-only), ``table4``
(alpha 0.7 / 0.8 / 0.9; 0.8 is MTSA-Net), ``table5`` (equal vs uncertainty weights), each as .md
and .csv with the cohort's best possible EGFR accuracy beside every accuracy; a table is written
when at least one of its rows ran. Single-task models leave the other task's columns "—"; a
classification-only model's EGFR call is the mean slice probability over tissue slices (see
``training.evaluation.summary.RULES``).

Runs resume: re-running with the same ``--out`` continues an interrupted variant and does not
retrain a finished one (a changed setting is refused by the trainer, naming it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from MTSASegmenterLib.errors import InputError, run_command
from MTSASegmenterLib.model.checkpoint import load_checkpoint

from ..data.formats import detect_format
from ..evaluation.evaluate import EvalSettings, evaluate_model, select_cases
from ..evaluation.summary import NOT_CLINICAL
from ..evaluation.tables import write_table
from .cli import add_run_options, config_from_args
from .config import TrainConfig
from .loop import train
from .losses import LossConfig


@dataclass(frozen=True)
class Variant:
    """How one variant differs from MTSA-Net."""

    key: str
    segmentation: bool = True
    classification: bool = True
    weighting: str = "uncertainty"
    focal_alpha: float = 0.8


VARIANTS: tuple[Variant, ...] = (
    Variant("mtsa"),
    Variant("seg-only", classification=False),
    Variant("cls-only", segmentation=False),
    Variant("equal", weighting="equal"),
    Variant("alpha-0.7", focal_alpha=0.7),
    Variant("alpha-0.9", focal_alpha=0.9),
)

# (file stem, title, rows as (variant key, row label)), in the paper's order.
TABLES: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("table3", "Methods compared (the paper's Table 3)",
     (("seg-only", "Segmentation only"), ("cls-only", "Classification only"), ("mtsa", "MTSA-Net"))),
    ("table4", "Focal-loss alpha (the paper's Table 4)",
     (("alpha-0.7", "γ = 2, α = 0.7"), ("mtsa", "γ = 2, α = 0.8 (MTSA-Net)"), ("alpha-0.9", "γ = 2, α = 0.9"))),
    ("table5", "Loss weighting (the paper's Table 5)",
     (("equal", "Equal weights (0.5 / 0.5)"), ("mtsa", "Uncertainty weights (MTSA-Net)"))),
)


def variant_config(base: TrainConfig, variant: Variant) -> TrainConfig:
    """The base run with the variant's network heads and loss, in its own output folder."""
    return replace(
        base,
        out=Path(base.out) / variant.key,
        net=replace(base.net, segmentation=variant.segmentation, classification=variant.classification,
                    roi_weighting=base.net.roi_weighting and variant.segmentation and variant.classification),
        loss=replace(base.loss, weighting=variant.weighting, focal_alpha=variant.focal_alpha),
    )


def chosen_variants(only: str | None) -> list[Variant]:
    if not only:
        return list(VARIANTS)
    keys = [k.strip() for k in only.split(",") if k.strip()]
    known = {v.key for v in VARIANTS}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise InputError(f"--only {','.join(unknown)}: unknown variant(s); choose from {', '.join(v.key for v in VARIANTS)}")
    return [v for v in VARIANTS if v.key in keys]


def run_ablations(
    base: TrainConfig, variants: Sequence[Variant], settings: EvalSettings, test_data: Path | None = None
) -> tuple[dict[str, dict[str, Any]], list[Path]]:
    """Train and evaluate each variant and write the tables into ``base.out``; returns the
    evaluation summaries by variant key and the tables written (.md paths)."""
    summaries: dict[str, dict[str, Any]] = {}
    for i, variant in enumerate(variants, start=1):
        print(f"[{i}/{len(variants)}] {variant.key}: training", file=sys.stderr)
        cfg = variant_config(base, variant)
        model = load_checkpoint(train(cfg))
        data = test_data or Path(base.data)
        print(f"[{i}/{len(variants)}] {variant.key}: evaluating on {data}", file=sys.stderr)
        summaries[variant.key] = evaluate_model(
            model, select_cases(data, model, "test", base.gtv_labels, base.labels if test_data is None else None), cfg.out / "eval",
            settings, name=variant.key, data=data
        )
    notes = [
        f"Each model trained at most {base.epochs} epoch(s) (early stopping after {base.patience} without improvement"
        + (f", at most {base.max_minutes:g} min" if base.max_minutes is not None else "")
        + f"), input {base.net.input_size} px at {base.preprocess.spacing_mm:g} mm, width {base.net.base_width}, seed {base.seed}.",
        *([NOT_CLINICAL] if settings.synthetic else []),
    ]
    written = []
    for stem, title, rows in TABLES:
        ran = [(label, summaries[key]) for key, label in rows if key in summaries]
        if ran:
            write_table(Path(base.out) / stem, ran, title, notes)
            written.append(Path(base.out) / f"{stem}.md")
    return summaries, written


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Train and evaluate MTSA-Net's baselines and ablations (the paper's Tables 3-5).")
    add_run_options(p)  # every variant is trained as mtsa train would train it with these options
    p.add_argument("--out", type=Path, required=True, help="output folder: one sub-folder per variant, the tables")
    p.add_argument("--test-data", type=Path, help="external test cohort (default: the test split of --data)")
    p.add_argument("--only", help=f"comma-separated variants ({', '.join(v.key for v in VARIANTS)}); default all")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    # MTSA-Net's own settings: each variant then changes its branches, weighting or alpha; runs resume, and start from random weights
    p.set_defaults(task="both", weighting=LossConfig.weighting, focal_alpha=LossConfig.focal_alpha, resume=True, init=None)
    return p


def main(argv: list[str] | None = None, prog: str = "mtsa ablations") -> int:
    """Exit 0 with the table paths on stdout; ``errors.run_command``'s exit-code rule otherwise."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)

    def body() -> int:
        variants = chosen_variants(args.only)
        if args.test_data is not None and detect_format(args.test_data) is None:
            raise InputError(f"{args.test_data}: not a cohort folder (no cases.csv, nnU-Net raw dataset or BraTS-style folders)")
        base = config_from_args(args, command=" ".join([prog, *argv]))
        if base.cache_dir is None:  # one slice cache for all variants: the volumes are preprocessed once
            base = replace(base, cache_dir=args.out / "slice_cache")
        settings = EvalSettings(device=args.device, n_boot=args.n_boot, seed=args.seed, synthetic=not args.real_data,
                                progress_bar=not args.no_progress)
        _, tables = run_ablations(base, variants, settings, args.test_data)
        print("\n".join(str(t) for t in tables))
        return 0

    return run_command(body, interrupted="finished variants are kept; re-running the same command continues")


if __name__ == "__main__":
    sys.exit(main())
