"""What one training run depends on: a frozen dataclass, stored whole in the checkpoint's provenance
and in ``last.pt`` (a resumed run must match it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import date
from math import cos, pi
from pathlib import Path
from typing import Any

from MTSASegmenterLib.config import (
    DEFAULT_TASKS,
    NetConfig,
    PreprocessConfig,
    TaskSpec,
    check_compatible,
)

from ..data.cohort import SPLIT_KINDS
from .losses import LossConfig

# Fields that may change between an interrupted run and its resumption.
# ``epochs`` and ``lr_decay_epochs`` only while the learning rate of the epochs already trained stays the same.
RESUMABLE = frozenset({"epochs", "lr_decay_epochs", "patience", "resume", "device", "num_workers", "progress_bar", "command", "cache_dir",
                       "max_minutes", "model_name"})


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; stored in the checkpoint's provenance."""

    data: Path
    out: Path
    split: str = "random"  # random | temporal | site
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    cutoff: date | None = None  # temporal split: test = acquired on or after this date
    test_sites: tuple[str, ...] | None = None  # site split: default every site but the most common
    gtv_labels: tuple[int, ...] | None = None  # nnU-Net / BraTS folders: the mask labels that are the GTV (data/formats.py)
    labels: Path | None = None  # nnU-Net / BraTS folders: the labels CSV (default: labels.csv in the folder)
    seed: int = 0
    epochs: int = 200  # at most; early stopping usually ends the run first
    patience: int = 20
    max_minutes: float | None = None  # wall-clock budget: no new epoch starts after it
    lr: float = 3e-4
    lr_decay_epochs: int = 0  # the last N epochs anneal the learning rate on a half cosine (0: constant, the paper's)
    batch_size: int = 16
    net: NetConfig = field(default_factory=NetConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    tasks: tuple[TaskSpec, ...] = DEFAULT_TASKS  # those the network's branches leave active are trained
    free_share: float = 0.0  # share of tumour-free tissue slices among training slices (paper: 0)
    augment: bool = True
    cache_dir: Path | None = None
    device: str = "auto"  # auto | cpu | cuda | mps
    amp: bool = True  # mixed precision, on CUDA only
    num_workers: int = 2
    resume: bool = False
    init: Path | None = None  # start from this checkpoint's network weights (fine-tuning); the optimiser starts afresh
    synthetic_only: bool = True  # the data are the phantom: the model is stamped not for clinical use
    model_name: str = "MTSA-Net"  # as checkpoint and reports name the model (a preset's name by default)
    command: str = ""
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if self.split not in SPLIT_KINDS:
            raise ValueError(f"split must be one of {', '.join(SPLIT_KINDS)}, got {self.split!r}")
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise ValueError("epochs, patience and batch_size must be positive")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.lr_decay_epochs <= self.epochs:
            raise ValueError(f"lr_decay_epochs must be in [0, epochs={self.epochs}], got {self.lr_decay_epochs}")
        for name in ("val_fraction", "test_fraction", "free_share"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if sum(t.kind == "segmentation" for t in self.tasks) != 1:
            raise ValueError("the task list needs exactly one segmentation task")
        check_compatible(self.net, self.preprocess, self.active_tasks)

    def learning_rate(self, epoch: int) -> float:
        return learning_rate(self.lr, self.epochs, self.lr_decay_epochs, epoch)

    @property
    def active_tasks(self) -> list[TaskSpec]:
        """The tasks this network trains: the segmentation if it segments, the heads if it classifies."""
        return [t for t in self.tasks if (self.net.segmentation if t.kind == "segmentation" else self.net.classification)]

    @property
    def stratify_task(self) -> TaskSpec | None:
        """The first classification head of the task list (trained or not): random draws keep its
        classes' proportions, so the split does not depend on which branches a variant trains."""
        return next((t for t in self.tasks if t.kind in ("binary", "multiclass")), None)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (NetConfig, PreprocessConfig)):
                value = value.to_dict()
            elif f.name == "tasks":
                value = [t.to_dict() for t in value]
            elif isinstance(value, LossConfig):
                value = asdict(value)
            elif isinstance(value, (Path, date)):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            d[f.name] = value
        return d


def learning_rate(lr: float, epochs: int, decay_epochs: int, epoch: int) -> float:
    """The learning rate of ``epoch`` (0-based): ``lr``, then over the last ``decay_epochs`` a half cosine
    that ends one step short of 0, so that the weights settle (nnU-Net anneals for the same reason).
    A function of the settings alone: a resumed run recomputes it, nothing is stored."""
    k = epoch - (epochs - decay_epochs)
    return lr if k < 0 else lr * 0.5 * (1 + cos(pi * (k + 1) / (decay_epochs + 1)))
