"""The three synthetic cohorts, one per preset, and the one writer of cohort folders.

Each phantom names the cases.csv columns its labels go to (the preset's heads read them) and its
best possible scores (the Bayes classifier or estimator that sees the true lesion features), which
`mtsa synth` prints and `mtsa evaluate` sets beside every score on that cohort (from phantom.json).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from MTSASegmenterLib.io.outputs import atomic_outputs

from .brain.generate import PhantomConfig

FIRST_DAY, LAST_DAY = dt.date(2018, 1, 1), dt.date(2022, 12, 31)
SITE_NAMES = ("internal", "external")
Scores = dict[str, dict[str, float]]  # head key -> {"accuracy", "auc"} or {"mae"}


@dataclass(frozen=True)
class Phantom:
    description: str
    label_columns: tuple[str, ...]
    generate: Callable[[int, str, PhantomConfig], Any]  # -> case with image, mask, labels
    limits: Callable[[], Scores]


def _brain(seed: int, site: str, config: PhantomConfig):
    from .brain.generate import generate_case

    return generate_case(seed, site, config=config)


def _brain_limits() -> Scores:
    from .brain.biology import best_possible_accuracy

    return {"egfr": {"accuracy": best_possible_accuracy()}}


def _liver(seed: int, site: str, config: PhantomConfig):
    from .liver import generate_case

    return generate_case(seed, site, config.max_matrix)


def _liver_limits() -> Scores:
    from .liver import best_possible

    return best_possible()


def _breast(seed: int, site: str, config: PhantomConfig):
    from .breast import generate_case

    return generate_case(seed, site, config.max_matrix)


def _breast_limits() -> Scores:
    from .breast import best_possible

    return best_possible()


PHANTOMS: dict[str, Phantom] = {
    "mtsa-net": Phantom("T1-CE brain MR, metastases, EGFR (docs/PHANTOM.md)", ("egfr",), _brain, _brain_limits),
    "hcc-tace": Phantom("arterial-phase liver CT, HCC, response to TACE (docs/PHANTOMS.md)", ("response",), _liver, _liver_limits),
    "breast-dce": Phantom("single-phase breast DCE-MRI, ER / PR / HER2 / Ki-67 (docs/PHANTOMS.md)", ("er", "pr", "her2", "ki67"),
                          _breast, _breast_limits),
}


@lru_cache(maxsize=None)
def best_possible(preset: str) -> Scores:
    """The phantom's limits, simulated once per process."""
    return PHANTOMS[preset].limits()


def cohort_preset(folder: Path) -> str | None:
    """The preset whose phantom wrote this folder (phantom.json), or None for any other cohort."""
    try:
        return json.loads((Path(folder) / "phantom.json").read_text(encoding="utf-8")).get("preset")
    except (OSError, ValueError, AttributeError):
        return None


def _write_case(out_dir: Path, preset: str, site: str, seed: int, i: int, config: PhantomConfig) -> tuple[Any, ...]:
    """Generate and write case i; its cases.csv row. Depends on (seed, site, i) alone, so the order
    or the process the cases are made in never changes a cohort."""
    phantom = PHANTOMS[preset]
    site_code = sum(ord(ch) << (8 * k) for k, ch in enumerate(site[:8]))
    case_seed = int(np.random.SeedSequence([seed, site_code, i]).generate_state(1)[0])
    case_id = f"{site}-{i:04d}"
    case = phantom.generate(case_seed, site, config)
    image_rel, mask_rel = f"imagesTr/{case_id}.nii.gz", f"labelsTr/{case_id}.nii.gz"
    with atomic_outputs([out_dir / image_rel, out_dir / mask_rel]) as (image_tmp, mask_tmp):
        sitk.WriteImage(case.image, str(image_tmp), useCompression=True)
        sitk.WriteImage(case.mask, str(mask_tmp), useCompression=True)
    days = (LAST_DAY - FIRST_DAY).days
    acquired = FIRST_DAY + dt.timedelta(days=int(np.random.default_rng(case_seed).integers(days + 1)))
    return (case_id, image_rel, mask_rel, *(case.labels[c] for c in phantom.label_columns), site, acquired.isoformat())


def _case_rows(out_dir: Path, n_cases: int, site: str, seed: int, config: PhantomConfig, preset: str,
               workers: int) -> Iterator[tuple[Any, ...]]:
    """The cases' rows in case order, made by ``workers`` processes (1: in this one)."""
    if workers == 1:
        yield from (_write_case(out_dir, preset, site, seed, i, config) for i in range(n_cases))
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_write_case, out_dir, preset, site, seed, i, config) for i in range(n_cases)]
        try:
            for future in futures:
                yield future.result()
        finally:  # a failed case or an interruption: make no more of them
            for future in futures:
                future.cancel()


def write_cohort(out_dir: Path, n_cases: int, site: str = "internal", seed: int = 0,
                 progress: Callable[[float, str], None] | None = None, overwrite: bool = False,
                 config: PhantomConfig | None = None, preset: str = "mtsa-net", workers: int = 1) -> Path:
    """Write n_cases to out_dir (imagesTr/, labelsTr/, phantom.json, cases.csv written last); returns cases.csv.

    Case i's seed derives from (seed, site, i), so internal and external cohorts with the same
    seed hold different patients; acquisition dates spread over 2018-2022 for temporal splits.
    ``config`` knobs other than max_matrix shape the brain phantom only. ``workers`` processes
    make the cases (the cohort is the same for any number).
    """
    if preset not in PHANTOMS:
        raise ValueError(f"preset must be one of {', '.join(PHANTOMS)}, not {preset!r}")
    if site not in SITE_NAMES:
        raise ValueError(f"site must be one of {', '.join(SITE_NAMES)}, not {site!r}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    phantom, config = PHANTOMS[preset], config or PhantomConfig()
    out_dir = Path(out_dir)
    csv_path = out_dir / "cases.csv"
    if csv_path.exists() and csv_path.stat().st_size > 0 and not overwrite:
        raise FileExistsError(f"{csv_path} exists; pass overwrite=True to replace the cohort")
    (out_dir / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out_dir / "labelsTr").mkdir(parents=True, exist_ok=True)
    rows = []
    for row in _case_rows(out_dir, n_cases, site, seed, config, preset, workers):
        rows.append(row)
        if progress:
            progress(len(rows) / n_cases, f"case {row[0]}")
    info = {"preset": preset, "description": phantom.description, "site": site, "seed": seed, "cases": n_cases, "config": asdict(config)}
    (out_dir / "phantom.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    with atomic_outputs([csv_path]) as (tmp,), open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("case_id", "image", "mask", *phantom.label_columns, "site", "acquired"))
        writer.writerows(rows)
    if progress:
        progress(1.0, f"{n_cases} cases in {out_dir}")
    return csv_path
