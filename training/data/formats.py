"""Cohorts as users already have them: an nnU-Net raw dataset or BraTS-style case folders, read
into the same ``Case`` objects as a ``cases.csv`` cohort, so trainer and evaluator need no change.

- nnU-Net (v2 raw): ``dataset.json``, ``imagesTr/<case>_0000<ending>`` (channel 0: the T1-CE
  scan), ``labelsTr/<case><ending>``; the GTV is every foreground label unless ``--gtv-labels``.
- BraTS: one folder per case holding ``*-t1c.nii.gz`` (or ``_t1ce``) and ``*-seg.nii.gz``; the GTV
  is labels 1 and 3 (BraTS 2023: necrotic core + enhancing tumour, the tumour core) unless
  ``--gtv-labels`` (BraTS 2020 numbers enhancing tumour 4: ``--gtv-labels 1,4``).

Labels other than the mask (egfr, site, acquired, a preset's columns) come from a CSV with a
``case_id`` column: ``--labels FILE``, by default ``labels.csv`` in the folder. Scanning collects
every problem (``mtsa cohort check`` lists them); reading for training stops at the first.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import SimpleITK as sitk
from MTSASegmenterLib.errors import InputError

from MTSASegmenterLib.model.presets import PRESETS

from .case import Case

EGFR = next(t for t in PRESETS["mtsa-net"].tasks if t.label_column == "egfr")  # checks the egfr cells

NNUNET, BRATS, CASES_CSV = "nnU-Net raw dataset", "BraTS-style folders", "cases.csv"
BRATS_GTV_LABELS = (1, 3)
BRATS_IMAGE = re.compile(r".*[-_]t1ce?\.nii(\.gz)?$", re.IGNORECASE)
BRATS_MASK = re.compile(r".*[-_]seg\.nii(\.gz)?$", re.IGNORECASE)
NOT_FOREGROUND = {"background", "ignore"}


@dataclass
class Scan:
    """What a folder holds: its format, the cases that could be formed, and every problem found."""

    folder: Path
    format: str
    cases: list[Case] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    gtv_labels: tuple[int, ...] = ()
    notes: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)  # every case found, complete or not


def detect_format(folder: Path) -> str | None:
    folder = Path(folder)
    if (folder / "cases.csv").is_file():
        return CASES_CSV
    if (folder / "dataset.json").is_file() and (folder / "imagesTr").is_dir():
        return NNUNET
    if folder.is_dir() and any(sub.is_dir() and any(BRATS_IMAGE.match(f.name) for f in sub.iterdir()) for sub in folder.iterdir()):
        return BRATS
    return None


def scan_cohort(folder: str | Path, gtv_labels: Sequence[int] | None = None, labels: str | Path | None = None) -> Scan:
    """An nnU-Net or BraTS folder's cases (with their CSV labels) and its problems; raises only when
    the folder is neither."""
    folder = Path(folder)
    kind = detect_format(folder)
    if kind == NNUNET:
        scan = _scan_nnunet(folder, gtv_labels)
    elif kind == BRATS:
        scan = _scan_brats(folder, gtv_labels)
    else:
        raise InputError(f"{folder}: not a cohort folder: no cases.csv, no nnU-Net raw dataset (dataset.json + imagesTr/), "
                         "no BraTS-style case folders (<case>/*-t1c.nii.gz)")
    _attach_labels(scan, Path(labels) if labels else folder / "labels.csv", explicit=labels is not None)
    if not scan.cases and not scan.problems:
        scan.problems.append(f"{folder}: no cases found")
    return scan


def read_foreign(folder: str | Path, gtv_labels: Sequence[int] | None = None, labels: str | Path | None = None) -> list[Case]:
    scan = scan_cohort(folder, gtv_labels, labels)
    if scan.problems:
        more = f" (and {len(scan.problems) - 1} more: mtsa cohort check {folder} lists them)" if len(scan.problems) > 1 else ""
        raise InputError(scan.problems[0] + more)
    return scan.cases


def fingerprint(folder: str | Path, gtv_labels: Sequence[int] | None = None, labels: str | Path | None = None) -> str:
    """sha256 over the cases (ids, files, labels) and the GTV mapping: names the data like cases.csv's hash."""
    cases = read_foreign(folder, gtv_labels, labels)
    rows = [[c.case_id, str(c.image.relative_to(Path(folder))), str(c.mask.relative_to(Path(folder))), sorted(c.labels.items()),
             list(c.gtv_labels)] for c in cases]
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def binary_gtv(mask: sitk.Image, gtv_labels: Sequence[int]) -> sitk.Image:
    """The GTV (1) of a multi-label mask: the voxels whose label is one of ``gtv_labels``."""
    out = sitk.GetImageFromArray(np.isin(sitk.GetArrayViewFromImage(mask), list(gtv_labels)).astype(np.uint8))
    out.CopyInformation(mask)
    return out


def _scan_nnunet(folder: Path, gtv_labels: Sequence[int] | None) -> Scan:
    scan = Scan(folder, NNUNET)
    try:
        meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
        declared = {str(k): v for k, v in meta.get("labels", {}).items()}
        ending = str(meta.get("file_ending", ".nii.gz"))
    except (ValueError, AttributeError) as exc:
        scan.problems.append(f"{folder / 'dataset.json'}: not a readable nnU-Net dataset.json ({exc})")
        return scan
    foreground = sorted({int(v) for k, v in declared.items() if k.lower() not in NOT_FOREGROUND and isinstance(v, int) and v > 0})
    scan.gtv_labels = tuple(gtv_labels) if gtv_labels else tuple(foreground)
    unknown = sorted(set(scan.gtv_labels) - set(foreground))
    if unknown:
        scan.problems.append(f"{folder / 'dataset.json'}: GTV label(s) {join_ints(unknown)} are not among its labels {declared}")
    images = {p.name[: -len(f"_0000{ending}")]: p for p in sorted((folder / "imagesTr").glob(f"*_0000{ending}"))}
    scan.ids = set(images)
    for case_id, image in images.items():
        mask = folder / "labelsTr" / f"{case_id}{ending}"
        if mask.is_file():
            scan.cases.append(Case(case_id, image, mask, "", None, {}, scan.gtv_labels))
        else:
            scan.problems.append(f"case {case_id}: no mask labelsTr/{mask.name}")
    for mask in sorted((folder / "labelsTr").glob(f"*{ending}")) if (folder / "labelsTr").is_dir() else []:
        if mask.name[: -len(ending)] not in images:
            scan.problems.append(f"case {mask.name[: -len(ending)]}: mask labelsTr/{mask.name} has no image imagesTr/*_0000{ending}")
    expected = meta.get("numTraining")
    if isinstance(expected, int) and expected != len(images):
        scan.problems.append(f"{folder / 'dataset.json'}: numTraining is {expected} but imagesTr holds {len(images)} case(s)")
    return scan


def _scan_brats(folder: Path, gtv_labels: Sequence[int] | None) -> Scan:
    scan = Scan(folder, BRATS, gtv_labels=tuple(gtv_labels) if gtv_labels else BRATS_GTV_LABELS)
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        scan.ids.add(sub.name)
        images = sorted(f for f in sub.iterdir() if BRATS_IMAGE.match(f.name))
        masks = sorted(f for f in sub.iterdir() if BRATS_MASK.match(f.name))
        if len(images) != 1 or len(masks) != 1:
            found = "no" if not images or not masks else "several"
            what = "*-t1c.nii.gz" if len(images) != 1 else "*-seg.nii.gz"
            scan.problems.append(f"case {sub.name}: {found} {what} in {sub}")
            continue
        scan.cases.append(Case(sub.name, images[0], masks[0], "", None, {}, scan.gtv_labels))
    return scan


def _attach_labels(scan: Scan, path: Path, explicit: bool) -> None:
    """Fill each case's egfr, site, acquired and other label columns from the labels CSV."""
    if not path.is_file():
        if explicit:
            scan.problems.append(f"{path}: labels file not found")
        else:
            scan.notes.append(f"no {path.name}: every case's EGFR and other labels are unknown")
        return
    rows, problems = read_labels(path)
    scan.problems += problems
    scan.problems += [f"{path}: case {case_id!r} has labels but no image and mask" for case_id in rows if case_id not in scan.ids]
    missing = [c.case_id for c in scan.cases if c.case_id not in rows]
    if missing:
        scan.notes.append(f"{len(missing)} case(s) without a row in {path.name} (labels unknown): {', '.join(missing[:5])}")
    for i, case in enumerate(scan.cases):
        values = rows.get(case.case_id, {})
        acquired = values.get("acquired", "")
        scan.cases[i] = Case(case.case_id, case.image, case.mask, values.get("site", ""),
                             date.fromisoformat(acquired) if acquired else None, values, case.gtv_labels)


def read_labels(path: Path) -> tuple[dict[str, dict[str, str]], list[str]]:
    """case_id -> its other cells, and the problems (values the trainer would refuse), by row."""
    rows: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if "case_id" not in [h.strip() for h in reader.fieldnames or []]:
            return rows, [f"{path}: no case_id column"]
        for number, row in enumerate(reader, start=2):
            values = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            case_id, where = values.pop("case_id"), f"{path}: row {number}"
            if not case_id or case_id in rows:
                problems.append(f"{where}: {'empty' if not case_id else 'duplicate'} case_id {case_id!r}")
                continue
            try:
                EGFR.encode(values.get("egfr", ""))
            except ValueError as exc:
                problems.append(f"{where}: egfr of case {case_id!r}: {exc}")
            try:
                date.fromisoformat(values["acquired"]) if values.get("acquired") else None
            except ValueError:
                problems.append(f"{where}: acquired {values['acquired']!r} of case {case_id!r} is not an ISO date (YYYY-MM-DD)")
                values["acquired"] = ""
            rows[case_id] = values
    return rows, problems


def parse_labels(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated label numbers, e.g. 1,3") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: label numbers of 1 or more, e.g. 1,3")
    return values


def add_cohort_options(p: argparse.ArgumentParser) -> None:
    """``--gtv-labels`` and ``--labels``: what an nnU-Net or BraTS folder needs beyond its files."""
    p.add_argument("--gtv-labels", type=parse_labels, metavar="N,N", default=None,
                   help="nnU-Net/BraTS folders: mask labels that are the GTV (default: nnU-Net every foreground label, BraTS 1,3)")
    p.add_argument("--labels", type=Path, metavar="CSV", default=None,
                   help="nnU-Net/BraTS folders: case_id,egfr,site,acquired,... (default: labels.csv in the folder)")


def join_ints(values: Sequence[int]) -> str:
    """``(1, 3)`` -> ``'1,3'``, as --gtv-labels takes them."""
    return ",".join(str(v) for v in values)


def describe(scan: Scan) -> dict[str, Any]:
    """Counts for the check's summary line: cases, each label column's values (a preset's too), sites."""
    columns = sorted({k for c in scan.cases for k in c.labels} - {"site", "acquired"})
    labels = {col: dict(Counter(c.labels.get(col, "") or "unknown" for c in scan.cases)) for col in columns}
    sites: dict[str, int] = {}
    for c in scan.cases:
        sites[c.site or "(none)"] = sites.get(c.site or "(none)", 0) + 1
    return {"cases": len(scan.cases), "labels": labels, "sites": dict(sorted(sites.items()))}
