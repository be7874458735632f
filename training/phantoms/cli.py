"""``mtsa synth``: write a synthetic cohort (PHANTOM.md, docs/PHANTOMS.md) and state its best possible scores."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from MTSASegmenterLib.progress import progress_bar
from MTSASegmenterLib.errors import MTSAError


def main(argv: Sequence[str] | None = None, prog: str = "mtsa synth") -> int:
    from .registry import PHANTOMS

    parser = argparse.ArgumentParser(prog=prog, description="Generate a synthetic cohort: brain metastases (T1-CE MR, EGFR) by "
                                     "default, or the liver-CT or breast DCE-MRI cohort of another preset.")
    parser.add_argument("--preset", choices=list(PHANTOMS), default="mtsa-net", help="which system's phantom (see presets.py)")
    parser.add_argument("--out", type=Path, required=True, help="cohort folder (cases.csv and volumes)")
    parser.add_argument("--cases", type=int, required=True, help="number of patients")
    parser.add_argument("--site", default="internal", choices=["internal", "external"], help="scanner variation (PHANTOM.md)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing cohort in --out")
    parser.add_argument("--domain-randomisation", type=float, default=0.0, metavar="0-1",
                        help="share of cases whose look (tissue contrast and ordering, texture, lesion appearance, vessels, blur) "
                             "is drawn from wide distributions, for sim-to-real training; the lesion biology stays exact")
    parser.add_argument("--skull-stripped", type=float, default=0.0, metavar="0-1",
                        help="share of cases delivered skull-stripped, as many public data sets are")
    parser.add_argument("--thick-slices", type=float, default=0.0, metavar="0-1",
                        help="share of cases scanned with 0.9-6.5 mm slices whatever the site")
    parser.add_argument("--fov-cut", type=float, default=0.0, metavar="0-1",
                        help="share of scans covering only 60-90%% of the head")
    parser.add_argument("--large-cysts", type=float, default=0.0, metavar="0-1",
                        help="share of cases with an extra 25-50 mm cystic lesion, its fluid core as dark as CSF (these carry no EGFR label)")
    parser.add_argument("--max-matrix", type=int, metavar="N",
                        help="cap the in-plane matrix (quick test cohorts: the pixel size then leaves the site's range)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="processes making cases in parallel (the cohort is the same for any number)")
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be at least 1")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.max_matrix is not None and args.max_matrix < 32:
        parser.error("--max-matrix must be at least 32")
    brain_only = [f for f, v in (("--domain-randomisation", args.domain_randomisation), ("--skull-stripped", args.skull_stripped),
                                 ("--thick-slices", args.thick_slices), ("--fov-cut", args.fov_cut),
                                 ("--large-cysts", args.large_cysts)) if v]
    if args.preset != "mtsa-net" and brain_only:
        parser.error(f"{', '.join(brain_only)}: knob(s) of the brain phantom (mtsa-net), not of {args.preset}")

    from .brain.generate import PhantomConfig
    from .registry import best_possible, write_cohort

    config = PhantomConfig(domain_randomisation=args.domain_randomisation, skull_strip_probability=args.skull_stripped,
                           thick_slice_probability=args.thick_slices, fov_cut_probability=args.fov_cut,
                           large_cyst_probability=args.large_cysts,
                           max_matrix=args.max_matrix)
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
