"""``mtsa cohort check DIR``: what a cohort folder holds and everything wrong with it, before a long
training finds the first problem hours in.

Each case goes through the very readers training uses (``read_image``, ``read_mask``), so what is
refused here is what training would refuse: unreadable or non-finite images, masks off their
image's grid. Beyond them: masks without GTV voxels, GTV labels that no mask holds, labels CSV
rows without a case.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from MTSASegmenterLib.errors import EXIT_ERROR, InputError, run_command
from MTSASegmenterLib.io.imageio import read_image
from MTSASegmenterLib.progress import progress_bar

from .cohort import Case, read_cohort
from .formats import CASES_CSV, Scan, add_cohort_options, describe, detect_format, join_ints, scan_cohort
from .slices import read_mask


def scan_any(folder: Path, gtv_labels: Sequence[int] | None, labels: Path | None) -> Scan:
    """A cases.csv cohort as a Scan too (its reader stops at the first problem: that one is listed)."""
    if detect_format(folder) != CASES_CSV:
        return scan_cohort(folder, gtv_labels, labels)
    scan = Scan(folder, CASES_CSV, gtv_labels=tuple(gtv_labels or ()))
    try:
        scan.cases = read_cohort(folder, gtv_labels, labels)
    except InputError as exc:
        scan.problems.append(str(exc))
    return scan


def check_case(case: Case) -> tuple[list[str], set[int]]:
    """Problems of one case and the label values its mask holds."""
    try:
        image = read_image(case.image)
        mask = read_mask(replace(case, gtv_labels=()), image)
    except InputError as exc:
        return [str(exc)], set()  # it names the file, and so the case
    values = {int(v) for v in np.unique(sitk.GetArrayViewFromImage(mask))}
    gtv = [v for v in values if (v in case.gtv_labels if case.gtv_labels else v != 0)]
    if not gtv:
        wanted = f"labels {join_ints(case.gtv_labels)}" if case.gtv_labels else "non-zero voxels"
        return [f"case {case.case_id}: no GTV in its mask (GTV = {wanted}; the mask holds {join_ints(sorted(values))})"], values
    return [], values


def check(folder: Path, gtv_labels: Sequence[int] | None = None, labels: Path | None = None, progress: bool = True) -> Scan:
    """The scan of the folder with every case's problems added."""
    scan = scan_any(folder, gtv_labels, labels)
    update, close = progress_bar("checking cases") if progress else (lambda f, m: None, lambda: None)
    present: set[int] = set()
    try:
        for i, case in enumerate(scan.cases):
            update(i / max(1, len(scan.cases)), case.case_id)
            problems, values = check_case(case)
            scan.problems += problems
            present |= values
    finally:
        close()
    absent = [v for v in scan.gtv_labels if v not in present]
    if scan.cases and absent:  # with the default mapping, a sign of another label numbering; a given one is the user's
        (scan.problems if gtv_labels is None else scan.notes).append(
            f"GTV label(s) {join_ints(absent)} appear in no mask (labels found: {join_ints(sorted(present))}); check --gtv-labels")
    scan.notes.append(f"labels found in the masks: {join_ints(sorted(present)) or 'none'}")
    return scan


def report(scan: Scan) -> str:
    counts = describe(scan)
    gtv = f"mask label(s) {join_ints(scan.gtv_labels)}" if scan.gtv_labels else "every non-zero mask voxel"
    lines = [f"{scan.folder}: {scan.format}, {counts['cases']} case(s); GTV = {gtv}",
             "  labels: " + ("; ".join(f"{col} " + ", ".join(f"{n} {k}" for k, n in values.items())
                                       for col, values in counts["labels"].items()) or "none")
             + "; sites: " + ", ".join(f"{k} {n}" for k, n in counts["sites"].items())]
    lines += [f"  note: {n}" for n in scan.notes]
    lines += [f"  problem: {p}" for p in scan.problems]
    lines.append(f"{scan.folder}: " + (f"{len(scan.problems)} problem(s)" if scan.problems else "no problems found; ready for mtsa train"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str = "mtsa cohort") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Cohort folders: cases.csv, nnU-Net raw datasets, BraTS-style folders.")
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("check", help="list the cases a folder holds and everything wrong with it, before training")
    p.add_argument("folder", type=Path, metavar="DIR")
    add_cohort_options(p)
    p.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return run_command(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    scan = check(args.folder, args.gtv_labels, args.labels, progress=not args.no_progress)
    print(report(scan))
    if scan.problems:
        print(f"error: {args.folder}: {len(scan.problems)} problem(s) found (listed above); fix them before training", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
