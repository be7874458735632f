"""Shared fixtures: small synthetic volumes with a known lesion, small checkpoints, the real scans."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from MTSASegmenterLib.checkpoint import save_checkpoint
from MTSASegmenterLib.config import NetConfig, PreprocessConfig
from MTSASegmenterLib.network import MTSANet

ROOT = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path:
    return Path(os.environ.get("MTSA_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))


@pytest.fixture
def real_data() -> Path:
    folder = real_data_dir()
    if not folder.is_dir():
        pytest.skip(f"real scans not found at {folder} (set MTSA_REAL_DATA)")
    return folder


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


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained but real checkpoint: small enough to predict whole volumes in a second."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    return save_checkpoint(path, MTSANet(TINY_NET), TINY_NET, TINY_PREP)
