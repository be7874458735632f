"""``mtsa synth``: write a synthetic cohort (PHANTOM.md, docs/PHANTOMS.md) and state its best possible scores."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from MTSASegmenterLib.progress import progress_bar
from MTSASegmenterLib.errors import MTSAError


SHARES = {  # flag -> (PhantomConfig field, help): knobs of the brain phantom, each a share of cases or lesions
    "--domain-randomisation": ("domain_randomisation", "share of cases whose look (tissue contrast and ordering, texture, lesion "
                               "appearance, vessels, blur) is drawn from wide distributions, for sim-to-real training; the lesion "
                               "biology stays exact"),
    "--skull-stripped": ("skull_strip_probability", "share of cases delivered skull-stripped, as many public data sets are"),
    "--thick-slices": ("thick_slice_probability", "share of cases scanned with 0.9-6.5 mm slices whatever the site"),
    "--fov-cut": ("fov_cut_probability", "share of scans covering only 60-90%% of the head"),
    "--large-cysts": ("large_cyst_probability", "share of cases with an extra 25-50 mm cystic lesion, its fluid core as dark as "
                      "CSF (these carry no EGFR label)"),
    "--small-lesions": ("small_lesion_probability", "share of cases with 1-3 extra 3-7 mm solid metastases (these carry no EGFR "
                        "label)"),
    "--parasagittal": ("parasagittal_probability", "share of lesions placed beside the midline, against the falx and the sagittal sinus"),
    "--periventricular": ("periventricular_probability", "share of lesions placed against the ventricles (and, in the atria, the "
                          "choroid plexus)"),
}


def _parser(prog: str, presets: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Generate a synthetic cohort: brain metastases (T1-CE MR, EGFR) by "
                                     "default, or the liver-CT or breast DCE-MRI cohort of another preset.")
    parser.add_argument("--preset", choices=list(presets), default="mtsa-net", help="which system's phantom (see presets.py)")
    parser.add_argument("--out", type=Path, required=True, help="cohort folder (cases.csv and volumes)")
    parser.add_argument("--cases", type=int, required=True, help="number of patients")
    parser.add_argument("--site", default="internal", choices=["internal", "external"], help="scanner variation (PHANTOM.md)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing cohort in --out")
    for flag, (field, text) in SHARES.items():
        parser.add_argument(flag, dest=field, type=float, default=0.0, metavar="0-1", help=text)
    parser.add_argument("--clear-falx", action="store_true",
                        help="no lesion crosses the falx, as no metastasis does (without it about one lesion in fourteen does: "
                             "the default keeps the cohorts made before this flag)")
    parser.add_argument("--max-matrix", type=int, metavar="N",
                        help="cap the in-plane matrix (quick test cohorts: the pixel size then leaves the site's range)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="processes making cases in parallel (the cohort is the same for any number)")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "mtsa synth") -> int:
    from .registry import PHANTOMS

    parser = _parser(prog, PHANTOMS)
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be at least 1")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.max_matrix is not None and args.max_matrix < 32:
        parser.error("--max-matrix must be at least 32")
    shares = {field: getattr(args, field) for field, _ in SHARES.values()}
    for flag, (field, _) in SHARES.items():
        if not 0.0 <= shares[field] <= 1.0:
            parser.error(f"{flag} must be a share between 0 and 1, not {shares[field]}")
    brain_only = [flag for flag, (field, _) in SHARES.items() if shares[field]] + ["--clear-falx"] * args.clear_falx
    if args.preset != "mtsa-net" and brain_only:
        parser.error(f"{', '.join(brain_only)}: knob(s) of the brain phantom (mtsa-net), not of {args.preset}")

    from .brain.generate import PhantomConfig
    from .registry import best_possible, write_cohort

    config = PhantomConfig(**shares, clear_falx=args.clear_falx, max_matrix=args.max_matrix)
    progress, close = progress_bar(f"synth {args.preset} {args.site}")
    try:
        csv_path = write_cohort(args.out, args.cases, site=args.site, seed=args.seed, progress=progress, overwrite=args.overwrite,
                                config=config, preset=args.preset, workers=args.workers)
    except FileExistsError as exc:
        raise MTSAError(str(exc)) from None
    finally:
        close()
    print(f"wrote {args.cases} {args.site} case(s) to {csv_path}")
    limits = ", ".join(f"{head} {metric} {value:.3f}" for head, scores in best_possible(args.preset).items() for metric, value in scores.items())
    print(f"best possible on this cohort's biology (Bayes, true lesion features): {limits}")
    return 0
