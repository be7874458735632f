"""One patient of a cohort, however the cohort folder is laid out (cases.csv, nnU-Net, BraTS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from MTSASegmenterLib.config import TaskSpec
from MTSASegmenterLib.errors import InputError


@dataclass(frozen=True)
class Case:
    """One patient: absolute paths, site, date, and every cell of its cases.csv row that is not a
    path or an id (the heads read their labels there: ``labels["egfr"]`` for MTSA-Net)."""

    case_id: str
    image: Path
    mask: Path
    site: str
    acquired: date | None
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    gtv_labels: tuple[int, ...] = ()  # the mask's labels that are the GTV (BraTS: 1, 3); () = every non-zero voxel

    def target(self, task: TaskSpec) -> float | None:
        """The head's target (class index or value / scale; None where unknown); a bad cell is
        refused naming the case and the column."""
        try:
            return task.encode(self.labels.get(task.label_column, ""))
        except ValueError as exc:
            raise InputError(f"case {self.case_id!r}: column {task.label_column!r}: {exc}") from None

    def targets(self, heads: Sequence[TaskSpec]) -> np.ndarray:
        """Training targets in head order (NaN where unknown)."""
        values = (self.target(task) for task in heads)
        return np.array([np.nan if v is None else v for v in values], dtype=np.float32)
