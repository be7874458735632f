"""A checkpoint is data: loaded with weights_only=True, refused when it carries code or does not match."""

from __future__ import annotations

import os

import pytest
import torch
from helpers import TINY_NET, TINY_PREP
from MTSASegmenterLib.config import ModelInfo, NetConfig, PreprocessConfig
from MTSASegmenterLib.errors import CheckpointError, OutputError
from MTSASegmenterLib.model.checkpoint import load_checkpoint, save_checkpoint
from MTSASegmenterLib.model.network import MTSANet


def test_round_trip_keeps_weights_configs_and_provenance(tmp_path):
    torch.manual_seed(1)
    net = MTSANet(TINY_NET)
    info = ModelInfo(name="tiny", version="1.2.3", training={"seed": 1}, metrics={"dice": 0.5})
    path = save_checkpoint(tmp_path / "m.pt", net, TINY_NET, TINY_PREP, info=info)
    model = load_checkpoint(path)
    assert model.net_config == TINY_NET and model.preprocess == TINY_PREP
    assert model.info == info and [t.name for t in model.tasks] == ["GTV", "EGFR"]
    assert len(model.sha256) == 64
    x = torch.rand(2, 3, 64, 64)
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x)[0], model.net(x)[0])


class Payload:
    """Anything that is not plain data: unpickling it would run code."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_checkpoint_carrying_a_callable_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "mtsa-checkpoint", "format_version": 1, "hook": Payload()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)


def test_a_checkpoint_of_another_configuration_names_the_difference(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", MTSANet(TINY_NET), TINY_NET, TINY_PREP)
    payload = torch.load(path, weights_only=True)
    payload["net_config"]["base_width"] = 8  # weights are for width 4
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"shape .* in the checkpoint but .* in MTSANet"):
        load_checkpoint(path)


def test_unknown_configuration_fields_are_named(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", MTSANet(TINY_NET), TINY_NET, TINY_PREP)
    payload = torch.load(path, weights_only=True)
    payload["preprocess"]["bias_correction"] = True
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="bias_correction"):
        load_checkpoint(path)


def test_inconsistent_channels_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="3 input channels"):
        save_checkpoint(tmp_path / "m.pt", MTSANet(TINY_NET), TINY_NET, PreprocessConfig(input_size=64, context_slices=2))


def test_truncated_and_foreign_files_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", MTSANet(TINY_NET), TINY_NET, TINY_PREP)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not an MTSASegmenter checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing.pt")


def test_saving_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "m.pt"
    target.write_bytes(b"previous model")

    def broken_save(*args, **kwargs):
        raise OSError(28, "disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OutputError, match="disk full"):
        save_checkpoint(target, MTSANet(TINY_NET), TINY_NET, TINY_PREP)
    assert target.read_bytes() == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_paper_configuration_is_the_default_shape():
    cfg = NetConfig(in_channels=1)
    assert cfg.input_size == 384 and cfg.base_width == 32
