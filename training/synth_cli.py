"""``mtsa synth``: write a synthetic cohort (shared/docs/PHANTOM.md) and state its best possible EGFR accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from MTSASegmenterLib.cli import _progress_bar
from MTSASegmenterLib.errors import MTSAError


def main(argv: Sequence[str] | None = None, prog: str = "mtsa synth") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Generate a synthetic T1-CE brain-metastasis cohort.")
    parser.add_argument("--out", type=Path, required=True, help="cohort folder (cases.csv and volumes)")
    parser.add_argument("--cases", type=int, required=True, help="number of patients")
    parser.add_argument("--site", default="internal", choices=["internal", "external"], help="scanner variation (PHANTOM.md)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing cohort in --out")
    parser.add_argument("--domain-randomisation", type=float, default=0.0, metavar="0-1",
                        help="widen label-free appearance (contrast, vessels, blur) for sim-to-real training")
    parser.add_argument("--skull-stripped", type=float, default=0.0, metavar="0-1",
                        help="share of cases delivered skull-stripped, as many public data sets are")
    parser.add_argument("--thick-slices", type=float, default=0.0, metavar="0-1",
                        help="share of cases scanned with 0.9-6.5 mm slices whatever the site")
    parser.add_argument("--large-cysts", type=float, default=0.0, metavar="0-1",
                        help="share of cases with an extra 25-50 mm cystic lesion (these carry no EGFR label)")
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be at least 1")

    from .phantom import PhantomConfig, best_possible_accuracy, write_cohort

    config = PhantomConfig(domain_randomisation=args.domain_randomisation, skull_strip_probability=args.skull_stripped,
                           thick_slice_probability=args.thick_slices, large_cyst_probability=args.large_cysts)
    progress, close = _progress_bar(f"synth {args.site}")
    try:
        csv_path = write_cohort(args.out, args.cases, site=args.site, seed=args.seed, progress=progress, overwrite=args.overwrite, config=config)
    except FileExistsError as exc:
        raise MTSAError(str(exc)) from None
    finally:
        close()
    print(f"wrote {args.cases} {args.site} case(s) to {csv_path}")
    print(f"best possible patient-level EGFR accuracy on this cohort's biology: {best_possible_accuracy():.3f}")
    return 0
