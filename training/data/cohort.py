"""A cohort folder (``cases.csv`` + volumes, see docs/PHANTOM.md) and its patient-level splits.

Splits are drawn over patients, never slices, so that no patient's slices leak from training into
validation or test. Three kinds, as in the paper and TRIPOD:

- ``random``: seeded draw of test, then validation, from all patients;
- ``temporal``: train on patients acquired before a cut-off date, test on those after it;
  validation drawn at random from the training group (the paper: cut-off 2021-05-01, 10 patients);
- ``site``: an external test set of whole sites (other scanners); validation drawn at random
  from the remaining sites.

Random draws are stratified by EGFR label so that small validation sets hold both classes.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from MTSASegmenterLib.config import TaskSpec
from MTSASegmenterLib.errors import InputError

COLUMNS = ("case_id", "image", "mask", "egfr", "site", "acquired")  # PHANTOM.md; egfr may be absent
REQUIRED = tuple(c for c in COLUMNS if c != "egfr")
EGFR_LABELS = {"wild-type": 0, "mutant": 1, "": None}
SPLIT_KINDS = ("random", "temporal", "site")


@dataclass(frozen=True)
class Case:
    """One patient: absolute paths, EGFR label (1 mutant, 0 wild-type, None unknown), site, date,
    and every cell of its cases.csv row that is not a path or an id (the heads read their labels there)."""

    case_id: str
    image: Path
    mask: Path
    egfr: int | None
    site: str
    acquired: date | None
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    gtv_labels: tuple[int, ...] = ()  # the mask's labels that are the GTV (BraTS: 1, 3); () = every non-zero voxel

    def targets(self, heads: Sequence[TaskSpec]) -> np.ndarray:
        """Training targets in head order (class index or value / scale; NaN where unknown)."""
        out = np.full(len(heads), np.nan, dtype=np.float32)
        for i, task in enumerate(heads):
            try:
                value = task.encode(self.labels.get(task.label_column, ""))
            except ValueError as exc:
                raise InputError(f"case {self.case_id!r}: column {task.label_column!r}: {exc}") from None
            if value is not None:
                out[i] = value
        return out


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
                "mutant": sum(c.egfr == 1 for c in cases),
                "wild_type": sum(c.egfr == 0 for c in cases),
                "labels": label_counts(cases),
                "sites": dict(sorted(Counter(c.site for c in cases).items())),
                "case_ids": [c.case_id for c in cases],
            }

        return {"kind": self.kind, "train": group(self.train), "val": group(self.val), "test": group(self.test)}


def label_counts(cases: Sequence[Case]) -> dict[str, dict[str, int]]:
    """Per label column other than PHANTOM.md's own (a preset's ``response``, ``er``, ``ki67``...):
    the count of each class, or of labelled patients where the values are numbers."""
    out: dict[str, dict[str, int]] = {}
    for column in sorted({k for c in cases for k in c.labels} - set(COLUMNS)):
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
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise InputError(f"{csv_path}: missing column(s) {', '.join(missing)} (expected {','.join(COLUMNS)})")
        cases: list[Case] = []
        seen: set[str] = set()
        for row_number, row in enumerate(reader, start=2):  # row 1 is the header
            where = f"{csv_path}: row {row_number}"
            values = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            values.update({k: values.get(k, "") for k in COLUMNS})
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
            if values["egfr"] not in EGFR_LABELS:
                raise InputError(
                    f"{where}: egfr {values['egfr']!r} of case {case_id!r} is not 'mutant', 'wild-type' or empty"
                )
            acquired = None
            if values["acquired"]:
                try:
                    acquired = date.fromisoformat(values["acquired"])
                except ValueError:
                    raise InputError(
                        f"{where}: acquired {values['acquired']!r} of case {case_id!r} is not an ISO date (YYYY-MM-DD)"
                    ) from None
            cases.append(
                Case(case_id, paths["image"], paths["mask"], EGFR_LABELS[values["egfr"]], values["site"], acquired,
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


def _stratum(case: Case, column: str) -> int | str | None:
    return case.egfr if column == "egfr" else case.labels.get(column, "").strip() or None


def _stratified_draw(cases: Sequence[Case], n: int, rng: np.random.Generator, column: str = "egfr") -> tuple[list[Case], list[Case]]:
    """Draw ``n`` cases keeping the proportions of ``column``'s labels (unlabelled ones a stratum of
    their own); returns (drawn, rest)."""
    strata: dict[int | str | None, list[Case]] = {}
    for c in cases:
        strata.setdefault(_stratum(c, column), []).append(c)
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
    stratify: str = "egfr",
) -> Split:
    """Split patients into train / validation / test.

    ``temporal`` without ``cutoff`` puts the latest ``test_fraction`` of patients (by date) into the
    test set; ``site`` without ``test_sites`` tests on every site but the most common one.
    ``val_fraction`` is a share of the patients left for training. Random draws keep the
    proportions of the ``stratify`` column's labels (the first classification head's).
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
