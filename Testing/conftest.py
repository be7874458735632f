"""Shared fixtures: the real scans, a tiny untrained checkpoint, a tiny cohort with a one-epoch model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import TINY_NET, TINY_PREP, real_data_dir, write_tiny_cohort
from MTSASegmenterLib.config import NetConfig, PreprocessConfig
from MTSASegmenterLib.model.checkpoint import save_checkpoint
from MTSASegmenterLib.model.network import MTSANet

from training.train.config import TrainConfig
from training.train.loop import train


@pytest.fixture
def real_data() -> Path:
    folder = real_data_dir()
    if not folder.is_dir():
        pytest.skip(f"real scans not found at {folder} (set MTSA_REAL_DATA)")
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained but real checkpoint: small enough to predict whole volumes in a second."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    return save_checkpoint(path, MTSANet(TINY_NET), TINY_NET, TINY_PREP)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny cohort and a checkpoint trained one epoch on it (its split and cohort fingerprint recorded)."""
    root = tmp_path_factory.mktemp("eval")
    cohort = write_tiny_cohort(root / "cohort", n=5)
    cfg = TrainConfig(data=cohort, out=root / "run", net=NetConfig(in_channels=3, base_width=4, input_size=64),
                      preprocess=PreprocessConfig(input_size=64, spacing_mm=1.0), epochs=1, batch_size=4, val_fraction=0.25,
                      num_workers=0, progress_bar=False, device="cpu", augment=False)
    return cohort, train(cfg)
