"""Helpers the tests share: small synthetic volumes and cohorts with known lesions, and rule-based
test doubles of a trained network (fixtures live in conftest.py)."""

from __future__ import annotations

import csv
import os
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from MTSASegmenterLib.config import (
    DEFAULT_TASKS,
    ModelInfo,
    NetConfig,
    PreprocessConfig,
)
from MTSASegmenterLib.model.checkpoint import LoadedModel

ROOT = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path:
    return Path(os.environ.get("MTSA_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))


def lesion_volume(
    size=(64, 72, 40), spacing=(1.5, 1.5, 2.5), centre_mm=(4.0, -6.0, 3.0), radius_mm=9.0, scale=1000.0
) -> tuple[sitk.Image, sitk.Image]:
    """A brain-like ellipsoid of tissue with one bright spherical lesion, axial LPS, and its mask."""
    z, y, x = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    origin = -0.5 * (np.array(size) - 1) * np.array(spacing)
    px, py, pz = (origin[0] + x * spacing[0], origin[1] + y * spacing[1], origin[2] + z * spacing[2])
    tissue = (px / 45) ** 2 + (py / 50) ** 2 + (pz / 45) ** 2 <= 1
    rng = np.random.default_rng(0)
    values = np.where(tissue, 1.0 + 0.05 * rng.standard_normal(tissue.shape), 0.0)
    lesion = (px - centre_mm[0]) ** 2 + (py - centre_mm[1]) ** 2 + (pz - centre_mm[2]) ** 2 <= radius_mm**2
    values[lesion] = 2.5
    image = sitk.GetImageFromArray((values * scale).astype(np.float32))
    mask = sitk.GetImageFromArray(lesion.astype(np.uint8))
    for img in (image, mask):
        img.SetSpacing(spacing)
        img.SetOrigin(tuple(float(o) for o in origin))
    return image, mask


class BrightnessNet(torch.nn.Module):
    """A deterministic stand-in for a trained MTSA-Net, for geometry tests: GTV = normalised intensity > 1.8.

    It runs through the real predictor and pipeline; only the learned weights are replaced by a rule
    whose answer is known, so that differences can only come from the geometry.
    """

    def __init__(self, context: int = 1):
        super().__init__()
        self.context = context
        self.calls = 0
        self.slices_seen = 0

    def forward(self, x: torch.Tensor):
        self.calls += 1
        self.slices_seen += x.shape[0]
        centre = x[:, self.context : self.context + 1]
        seg = (centre - 1.8) * 20.0
        area = (centre > 1.8).float().mean(dim=(1, 2, 3))
        cls = torch.stack([torch.zeros_like(area), area * 50.0 - 0.5], dim=1)
        return seg, cls


def randomise_batchnorm(net: torch.nn.Module, mean: float, bias: float) -> None:
    """Non-trivial BatchNorm statistics and affine parameters, so that folding them is really tested."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-mean, mean)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-bias, bias)


TINY_NET = NetConfig(in_channels=3, base_width=4, input_size=64)


TINY_PREP = PreprocessConfig(spacing_mm=3.0, input_size=64, min_slice_mm=3.0)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    """Rewrite a CSV (e.g. a cohort's cases.csv after editing its cells) with the first row's columns."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_tiny_cohort(folder: Path, n: int = 6, size: int = 40, depth: int = 12, seed: int = 0) -> Path:
    """A cohort folder of n small 'heads' (an ellipsoid of tissue) with one bright spherical lesion each."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:depth, :size, :size]
    head = ((zz - depth / 2) / (depth / 2)) ** 2 + ((yy - size / 2) / (size / 2.3)) ** 2 + ((xx - size / 2) / (size / 2.3)) ** 2 < 1
    rows = []
    for i in range(n):
        centre = (depth // 2 + rng.integers(-2, 3), size // 2 + rng.integers(-6, 7), size // 2 + rng.integers(-6, 7))
        lesion = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= 9
        values = np.where(head, 1000, 0) + np.where(lesion, 800, 0) + rng.normal(0, 20, head.shape)
        for name, array, dtype in (("img", values, np.int16), ("seg", lesion, np.uint8)):
            image = sitk.GetImageFromArray(np.clip(array, 0, None).astype(dtype))
            image.SetSpacing((1.0, 1.0, 1.5))
            sitk.WriteImage(image, str(folder / f"c{i}_{name}.nii.gz"))
        rows.append([f"c{i}", f"c{i}_img.nii.gz", f"c{i}_seg.nii.gz", ("mutant", "wild-type")[i % 2],
                     "internal" if i < n - 2 else "external", (date(2020, 1, 1) + timedelta(days=30 * i)).isoformat()])
    with open(folder / "cases.csv", "w", newline="") as f:
        csv.writer(f).writerows([["case_id", "image", "mask", "egfr", "site", "acquired"], *rows])
    return folder


EXACT_PREP = PreprocessConfig(spacing_mm=1.0, input_size=64, min_slice_mm=1.0)


def write_exact_cohort(folder: Path, n: int = 2) -> Path:
    """Volumes whose grid *is* the model grid (tissue everywhere, 1 mm, 64 x 64): resampling is exact,
    so the brightness rule predicts exactly the truth (two lesions of 9 mm)."""
    folder.mkdir(parents=True)
    zz, yy, xx = np.mgrid[:10, :64, :64]
    rows = [["case_id", "image", "mask", "egfr", "site", "acquired"]]
    for i in range(n):
        truth = ((zz - 4) ** 2 * 4 + (yy - 20) ** 2 + (xx - 20 - 3 * i) ** 2 <= 16) | ((zz - 6) ** 2 * 4 + (yy - 44) ** 2 + (xx - 40) ** 2 <= 16)
        for name, array in (("img", np.where(truth, 2500, 1000).astype(np.int16)), ("seg", truth.astype(np.uint8))):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing((1.0, 1.0, 2.0))
            sitk.WriteImage(image, str(folder / f"e{i}_{name}.nii.gz"))
        rows.append([f"e{i}", f"e{i}_img.nii.gz", f"e{i}_seg.nii.gz", ("mutant", "wild-type")[i % 2], "internal", "2021-01-01"])
    with open(folder / "cases.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return folder


def write_count_cohort(folder: Path, n: int = 6) -> Path:
    """``write_exact_cohort`` where the lesion count decides the label: mutant patients (even rows)
    keep both lesions, wild-type ones lose the second (its half of the volume becomes plain tissue)."""
    write_exact_cohort(folder, n)
    for i in range(1, n, 2):
        for path in (folder / f"e{i}_img.nii.gz", folder / f"e{i}_seg.nii.gz"):
            image = sitk.ReadImage(str(path))
            array = sitk.GetArrayFromImage(image)
            array[:, 32:, :] = 0 if path.name.endswith("_seg.nii.gz") else 1000
            out = sitk.GetImageFromArray(array)
            out.CopyInformation(image)
            sitk.WriteImage(out, str(path))
    return folder


class ClassOnlyNet(BrightnessNet):
    """Test double of a classification-only MTSA-Net: the brightness rule's EGFR head, no GTV."""

    def forward(self, x):
        return None, super().forward(x)[1]


def stand_in(net=None, tasks=DEFAULT_TASKS) -> LoadedModel:
    """A LoadedModel around a rule-based test double (BrightnessNet above)."""
    return LoadedModel(
        net=net or BrightnessNet(), net_config=NetConfig(in_channels=3, input_size=64), preprocess=EXACT_PREP,
        tasks=list(tasks), info=ModelInfo(name="brightness rule"), sha256="", path=Path("brightness-rule"), extra={},
    )
