"""Training slices: a per-case cache of the model-grid volume, and a Dataset over (case, z).

Reading and resampling a volume costs far more than a training step on its slices, so each case is
preprocessed once, with exactly the prediction path's ``ModelGrid`` (training and prediction cannot
disagree), and stored as two ``.npy`` files that DataLoader workers memory-map. The cache key is a
hash of the PreprocessConfig, of the model grid's code version (``GRID_VERSION``) and of both files'
path, size and mtime: change any and the case is rebuilt.

Slices follow the paper: every tumour-bearing slice; optionally a share of tumour-free tissue
slices (re-drawn each epoch), which teach the decoder what is *not* GTV (bright vessels, dura).
Tumour-free slices carry no head target (EGFR for MTSA-Net): the paper's classifier only ever sees
tumour slices, and the patient-level call aggregates only slices with predicted GTV.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import SimpleITK as sitk
import torch
from MTSASegmenterLib.config import PreprocessConfig
from MTSASegmenterLib.errors import InputError
from MTSASegmenterLib.inference.preprocess import GRID_VERSION, ModelGrid, stack_context
from MTSASegmenterLib.io.imageio import read_image
from MTSASegmenterLib.io.outputs import atomic_outputs
from torch.utils.data import Dataset

from .cohort import Case
from .formats import binary_gtv

CACHE_FORMAT = 1  # bump when what is stored changes


@dataclass(frozen=True)
class CachedCase:
    """One preprocessed case on disk, with its slice inventory."""

    case_id: str
    image_npy: Path  # float32 [Z, S, S], normalised
    mask_npy: Path  # uint8 [Z, S, S]
    tumour_slices: tuple[int, ...]
    free_slices: tuple[int, ...]  # tissue slices without tumour


def read_mask_file(path: Path, image: sitk.Image, what: str) -> sitk.Image:
    """The label mask at ``path``, refused (one line naming it and ``what`` it is) unless it is
    readable and on ``image``'s grid."""
    try:
        mask = sitk.ReadImage(str(path))
    except RuntimeError:
        raise InputError(f"{path}: {what} is not an image SimpleITK can read") from None
    same_grid = (
        mask.GetSize() == image.GetSize()
        and np.allclose(mask.GetSpacing(), image.GetSpacing(), rtol=1e-3)
        and np.allclose(mask.GetOrigin(), image.GetOrigin(), atol=1e-2)
        and np.allclose(mask.GetDirection(), image.GetDirection(), atol=1e-3)
    )
    if not same_grid:
        raise InputError(f"{path}: {what} is not on its image's grid (size, spacing, origin or direction differ)")
    return mask


def read_mask(case: Case, image: sitk.Image) -> sitk.Image:
    """The case's GTV mask (its ``gtv_labels`` as 1), refused unless readable and on the image's grid."""
    mask = read_mask_file(case.mask, image, f"mask of case {case.case_id!r}")
    return binary_gtv(mask, case.gtv_labels) if case.gtv_labels else mask


class SliceCache:
    """Model-grid volumes of cases, built on first use and reused while inputs and config are unchanged."""

    def __init__(self, folder: str | Path, preprocess: PreprocessConfig) -> None:
        self.folder = Path(folder)
        self.preprocess = preprocess

    def key(self, case: Case) -> str:
        def file_id(path: Path) -> list[Any]:
            st = path.stat()
            return [str(path.resolve()), st.st_size, st.st_mtime_ns]

        data = {
            "format": CACHE_FORMAT,
            "grid_version": GRID_VERSION,
            "preprocess": self.preprocess.to_dict(),
            "image": file_id(case.image),
            "mask": file_id(case.mask),
        }
        if case.gtv_labels:  # a multi-label mask's GTV mapping (formats.py); absent, keys stay as before
            data["gtv_labels"] = list(case.gtv_labels)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def get(self, case: Case) -> CachedCase:
        """The cached case, preprocessing it first if needed."""
        stem = f"{re.sub(r'[^A-Za-z0-9._-]', '_', case.case_id)}-{self.key(case)}"
        meta_path = self.folder / f"{stem}.json"
        image_npy, mask_npy = self.folder / f"{stem}.image.npy", self.folder / f"{stem}.mask.npy"
        if not meta_path.exists():
            image = read_image(case.image)
            mask = read_mask(case, image)
            grid = ModelGrid.for_image(image, self.preprocess)
            volume = grid.image_to_grid(image)
            labels = grid.mask_to_grid(mask)
            tumour = np.flatnonzero(labels.any(axis=(1, 2)))
            free = np.setdiff1d(grid.tissue_slices(volume), tumour)
            # All or nothing, renamed in order with the metadata last: an entry without its
            # metadata is rebuilt, so a half-written one is never taken for a complete one.
            with atomic_outputs([image_npy, mask_npy, meta_path]) as (image_tmp, mask_tmp, meta_tmp):
                np.save(image_tmp, np.ascontiguousarray(volume))
                np.save(mask_tmp, np.ascontiguousarray(labels))
                meta_tmp.write_text(json.dumps({"case_id": case.case_id, "tumour": tumour.tolist(), "free": free.tolist()}))
        meta = json.loads(meta_path.read_text())
        return CachedCase(case.case_id, image_npy, mask_npy, tuple(meta["tumour"]), tuple(meta["free"]))


def select_slices(
    cases: Sequence[CachedCase], free_share: float, rng: np.random.Generator
) -> list[tuple[int, int, bool]]:
    """(case index, z, has tumour): all tumour slices plus, per case, tumour-free slices making up
    about ``free_share`` of that case's slices (0 = the paper's tumour slices only)."""
    if not 0 <= free_share < 1:
        raise ValueError(f"free_share must be in [0, 1), got {free_share}")
    index: list[tuple[int, int, bool]] = []
    for ci, case in enumerate(cases):
        index += [(ci, z, True) for z in case.tumour_slices]
        n_free = min(len(case.free_slices), round(free_share / (1 - free_share) * len(case.tumour_slices)))
        if n_free:
            chosen = rng.choice(len(case.free_slices), size=n_free, replace=False)
            index += [(ci, case.free_slices[i], False) for i in sorted(chosen)]
    return index


Augment = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


class SliceDataset(Dataset):
    """2.5D samples: ``{"image": [C,S,S] float32, "mask": [1,S,S] float32, "targets": [heads] float32, "case": int, "z": int}``.

    ``targets`` holds each case's head targets (``Case.targets``); a tumour-free slice gets NaN for
    all of them, as does an unknown label: the genotype is read from the tumour only.

    Augmentation is seeded by (seed, epoch, sample index), so results do not depend on the number
    of workers. Call ``set_epoch`` before each epoch to re-draw the tumour-free slices and the
    augmentation (workers must not be persistent, so that they see the new epoch).
    """

    def __init__(
        self,
        cases: Sequence[CachedCase],
        context: int,
        free_share: float = 0.0,
        augment: Augment | None = None,
        seed: int = 0,
        targets: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.cases = list(cases)
        self.targets = [np.asarray(t, np.float32) for t in targets] if targets is not None else [np.zeros(0, np.float32)] * len(self.cases)
        if len(self.targets) != len(self.cases):
            raise ValueError("one target vector per case is needed")
        self.context = context
        self.free_share = free_share
        self.augment = augment
        self.seed = seed
        self._volumes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.index = select_slices(self.cases, self.free_share, np.random.default_rng([self.seed, epoch]))

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict[str, Any]:
        # Memory maps are reopened in each worker rather than pickled.
        return {**self.__dict__, "_volumes": {}}

    def _volume(self, ci: int) -> tuple[np.ndarray, np.ndarray]:
        if ci not in self._volumes:
            case = self.cases[ci]
            self._volumes[ci] = (np.load(case.image_npy, mmap_mode="r"), np.load(case.mask_npy, mmap_mode="r"))
        return self._volumes[ci]

    def __getitem__(self, i: int) -> dict[str, Any]:
        ci, z, has_tumour = self.index[i]
        volume, labels = self._volume(ci)
        image = stack_context(volume, np.array([z]), self.context)[0]
        mask = np.asarray(labels[z])
        if self.augment is not None:
            image, mask = self.augment(image, mask, np.random.default_rng([self.seed, self.epoch, i]))
        targets = self.targets[ci] if has_tumour else np.full_like(self.targets[ci], np.nan)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
            "mask": torch.from_numpy(np.ascontiguousarray(mask[None], dtype=np.float32)),
            "targets": torch.from_numpy(targets.copy()),
            "case": ci,
            "z": z,
        }
