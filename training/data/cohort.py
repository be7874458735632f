"""A cohort folder (``cases.csv`` + volumes, see docs/PHANTOM.md) and its patient-level splits.

Splits are drawn over patients, never slices, so that no patient's slices leak from training into
validation or test. Three kinds, as in the paper and TRIPOD:

- ``random``: seeded draw of test, then validation, from all patients;
- ``temporal``: train on patients acquired before a cut-off date, test on those after it;
  validation drawn at random from the training group (the paper: cut-off 2021-05-01, 10 patients);
- ``site``: an external test set of whole sites (other scanners); validation drawn at random
  from the remaining sites.

Random draws are stratified by a classification head's classes (the trainer takes the first one:
EGFR for MTSA-Net) so that small validation sets hold every class. Label columns (``egfr`` of
PHANTOM.md, a preset's ``response``, ``er``...) are read as text; the head that reads a column
checks its cells (``Case.targets``).
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from MTSASegmenterLib.config import TaskSpec
from MTSASegmenterLib.errors import InputError

from .case import Case

COLUMNS = ("case_id", "image", "mask", "site", "acquired")  # PHANTOM.md's, less its label column (egfr)
NOT_LABELS = ("site", "acquired")  # cells kept in Case.labels that no head reads as a label
SPLIT_KINDS = ("random", "temporal", "site")
EGFR_COLUMN = "egfr"  # PHANTOM.md's label column, read by MTSA-Net's EGFR head


@dataclass(frozen=True)
class Split:
    """Disjoint patient groups."""

    kind: str
    train: tuple[Case, ...]
    val: tuple[Case, ...]
    test: tuple[Case, ...]

    def summary(self) -> dict[str, Any]:
        """Plain-data description for the checkpoint's provenance."""

        def group(cases: Sequence[Case]) -> dict[str, Any]:
            return {
                "cases": len(cases),
                "labels": label_counts(cases),
                "sites": dict(sorted(Counter(c.site for c in cases).items())),
                "case_ids": [c.case_id for c in cases],
            }

        return {"kind": self.kind, "train": group(self.train), "val": group(self.val), "test": group(self.test)}


def label_counts(cases: Sequence[Case]) -> dict[str, dict[str, int]]:
    """Per label column (``egfr``, a preset's ``response``, ``er``, ``ki67``...): the count of each
    class, or of labelled patients where the values are numbers."""
    out: dict[str, dict[str, int]] = {}
    for column in sorted({k for c in cases for k in c.labels} - set(NOT_LABELS)):
        values = [c.labels[column].strip() for c in cases if c.labels.get(column, "").strip()]
        out[column] = {"labelled": len(values)} if all(_is_number(v) for v in values) else dict(sorted(Counter(values).items()))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_cohort(folder: str | Path, gtv_labels: Sequence[int] | None = None, labels: str | Path | None = None) -> list[Case]:
    """Read and validate ``folder/cases.csv``, or an nnU-Net or BraTS folder (formats.py: ``gtv_labels``
    and the ``labels`` CSV are for those); errors are one line naming the file and row."""
    folder = Path(folder)
    csv_path = folder / "cases.csv"
    if not csv_path.is_file():
        from .formats import read_foreign

        return read_foreign(folder, gtv_labels, labels)
    if labels is not None:
        raise InputError(f"{labels}: --labels is for nnU-Net and BraTS folders; {csv_path} holds this cohort's labels")
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise InputError(f"{csv_path}: missing column(s) {', '.join(missing)} (needs {','.join(COLUMNS)} and any label columns)")
        cases: list[Case] = []
        seen: set[str] = set()
        for row_number, row in enumerate(reader, start=2):  # row 1 is the header
            where = f"{csv_path}: row {row_number}"
            values = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            case_id = values["case_id"]
            if not case_id:
                raise InputError(f"{where}: empty case_id")
            if case_id in seen:
                raise InputError(f"{where}: duplicate case_id {case_id!r}")
            seen.add(case_id)
            paths = {}
            for key in ("image", "mask"):
                if not values[key]:
                    raise InputError(f"{where}: empty {key} for case {case_id!r}")
                path = folder / values[key]
                if not path.exists():
                    raise InputError(f"{where}: {key} file {values[key]!r} of case {case_id!r} not found")
                paths[key] = path
            acquired = None
            if values["acquired"]:
                try:
                    acquired = date.fromisoformat(values["acquired"])
                except ValueError:
                    raise InputError(
                        f"{where}: acquired {values['acquired']!r} of case {case_id!r} is not an ISO date (YYYY-MM-DD)"
                    ) from None
            cases.append(
                Case(case_id, paths["image"], paths["mask"], values["site"], acquired,
                     {k: v for k, v in values.items() if k not in ("case_id", "image", "mask")})
            )
    if not cases:
        raise InputError(f"{csv_path}: no cases")
    return [replace(c, gtv_labels=tuple(gtv_labels)) for c in cases] if gtv_labels else cases


def cohort_fingerprint(folder: str | Path, gtv_labels: Sequence[int] | None = None, labels: str | Path | None = None) -> str:
    """sha256 of cases.csv (and of a GTV label mapping): names the training data in the provenance
    without copying it; nnU-Net and BraTS folders hash their listing (formats.fingerprint)."""
    csv_path = Path(folder) / "cases.csv"
    if not csv_path.is_file():
        from .formats import fingerprint

        return fingerprint(folder, gtv_labels, labels)
    mapping = f"gtv_labels={list(gtv_labels)}".encode() if gtv_labels else b""
    return hashlib.sha256(csv_path.read_bytes() + mapping).hexdigest()


def _stratified_draw(cases: Sequence[Case], n: int, rng: np.random.Generator, task: TaskSpec | None) -> tuple[list[Case], list[Case]]:
    """Draw ``n`` cases keeping the proportions of ``task``'s classes (unlabelled ones a stratum of
    their own, drawn first; then the classes in the head's order); returns (drawn, rest)."""
    strata: dict[float | None, list[Case]] = {}
    for c in cases:
        strata.setdefault(None if task is None else c.target(task), []).append(c)
    keys = sorted(strata, key=lambda k: (k is not None, k))
    # Largest-remainder apportionment of n over the strata.
    quotas = {k: n * len(strata[k]) / len(cases) for k in keys}
    counts = {k: int(quotas[k]) for k in keys}
    by_remainder = sorted(keys, key=lambda k: quotas[k] - counts[k], reverse=True)
    for k in by_remainder[: n - sum(counts.values())]:
        counts[k] += 1
    drawn: list[Case] = []
    for k in keys:
        order = rng.permutation(len(strata[k]))
        drawn += [strata[k][i] for i in order[: counts[k]]]
    drawn_ids = {c.case_id for c in drawn}
    return drawn, [c for c in cases if c.case_id not in drawn_ids]


def _count(fraction: float, n: int, what: str) -> int:
    if not 0 <= fraction < 1:
        raise ValueError(f"{what} must be in [0, 1), got {fraction}")
    return max(1, round(fraction * n)) if fraction > 0 else 0


def split_cohort(
    cases: Sequence[Case],
    kind: str = "random",
    seed: int = 0,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    cutoff: date | None = None,
    test_sites: Iterable[str] | None = None,
    stratify: TaskSpec | None = None,
) -> Split:
    """Split patients into train / validation / test.

    ``temporal`` without ``cutoff`` puts the latest ``test_fraction`` of patients (by date) into the
    test set; ``site`` without ``test_sites`` tests on every site but the most common one.
    ``val_fraction`` is a share of the patients left for training. Random draws keep the
    proportions of the ``stratify`` head's classes (the trainer passes the first classification head).
    """
    cases = list(cases)
    rng = np.random.default_rng(seed)
    if kind == "random":
        test, rest = _stratified_draw(cases, _count(test_fraction, len(cases), "test_fraction"), rng, stratify)
    elif kind == "temporal":
        undated = [c.case_id for c in cases if c.acquired is None]
        if undated:
            raise InputError(f"temporal split: case(s) without an 'acquired' date: {', '.join(undated[:5])}")
        if cutoff is None:
            dates = sorted(c.acquired for c in cases)  # type: ignore[type-var]
            cutoff = dates[len(dates) - _count(test_fraction, len(dates), "test_fraction")]
        rest = [c for c in cases if c.acquired < cutoff]  # type: ignore[operator]
        test = [c for c in cases if c.acquired >= cutoff]  # type: ignore[operator]
    elif kind == "site":
        sites = Counter(c.site for c in cases)
        if test_sites is None:
            main_site = sorted(sites, key=lambda s: (-sites[s], s))[0]
            test_sites = [s for s in sites if s != main_site]
        test_sites = set(test_sites)
        unknown = sorted(test_sites - set(sites))
        if unknown:
            raise InputError(f"site split: no case from site(s) {', '.join(unknown)}; sites are {', '.join(sorted(sites))}")
        rest = [c for c in cases if c.site not in test_sites]
        test = [c for c in cases if c.site in test_sites]
    else:
        raise ValueError(f"split kind must be one of {', '.join(SPLIT_KINDS)}, got {kind!r}")
    val, train = _stratified_draw(rest, _count(val_fraction, len(rest), "val_fraction"), rng, stratify)
    if not train:
        raise InputError(f"{kind} split of {len(cases)} case(s) leaves no training case")
    order = {c.case_id: i for i, c in enumerate(cases)}
    by_order = lambda group: tuple(sorted(group, key=lambda c: order[c.case_id]))  # noqa: E731
    return Split(kind, by_order(train), by_order(val), by_order(test))


def egfr_head(tasks: Sequence[TaskSpec]) -> TaskSpec | None:
    """MTSA-Net's EGFR head: the binary head that reads the ``egfr`` column. Table 3's EGFR columns,
    fit-head's patient-level model and the image oracle are about this head; other presets have none."""
    return next((t for t in tasks if t.kind == "binary" and t.label_column == EGFR_COLUMN), None)
