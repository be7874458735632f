"""The papers' three systems as presets, and the breast paper's core / rim / surroundings weighting."""

from __future__ import annotations

import pytest
import torch
from MTSASegmenterLib.config import NetConfig
from MTSASegmenterLib.model.network import MTSANet, RegionWeighting
from MTSASegmenterLib.model.presets import PRESETS

from training.train.cli import build_parser, config_from_args


def _config(*extra: str):
    return config_from_args(build_parser().parse_args(["--data", "cohort", "--out", "run", "--input-size", "64", "--width", "4", *extra]))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_makes_a_trainable_configuration(name: str) -> None:
    cfg = _config("--preset", name)
    preset = PRESETS[name]
    assert cfg.tasks == preset.tasks and cfg.model_name == preset.name
    assert cfg.net.num_classes == sum(t.outputs for t in preset.tasks)
    for key, value in preset.preprocess.items():
        assert getattr(cfg.preprocess, key) == value
    net = MTSANet(cfg.net)
    seg, cls = net(torch.zeros(2, 3, 64, 64))
    assert seg.shape == (2, 1, 64, 64) and cls.shape == (2, cfg.net.num_classes)


def test_preset_intensity_mapping_and_options_can_be_overridden() -> None:
    hcc = _config("--preset", "hcc-tace", "--window", "-150", "200")
    assert hcc.preprocess.normalisation == "ct_window" and hcc.preprocess.window == (-150.0, 200.0) and hcc.preprocess.clip_max == 1.0
    breast = _config("--preset", "breast-dce", "--normalisation", "tissue_median")
    assert breast.preprocess.normalisation == "tissue_median" and breast.net.roi_weighting
    assert not _config("--preset", "breast-dce", "--task", "classification").net.roi_weighting  # needs the GTV
    assert _config("--roi-weighting").net.roi_weighting and not _config().net.roi_weighting
    assert _config("--preset", "hcc-tace", "--name", "Liver v2").model_name == "Liver v2"


def test_region_weighting_starts_as_identity_and_learns_per_region() -> None:
    cfg = NetConfig(in_channels=3, base_width=4, input_size=64)
    torch.manual_seed(0)
    plain = MTSANet(cfg).eval()
    weighted = MTSANet(NetConfig(**{**cfg.to_dict(), "strip_kernels": tuple(cfg.strip_kernels), "roi_weighting": True})).eval()
    missing, unexpected = weighted.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["regions.logits"] and not unexpected
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        seg0, cls0 = plain(x)
        seg1, cls1 = weighted(x)
    assert torch.equal(seg0, seg1) and torch.allclose(cls0, cls1, atol=1e-5)
    weighted.train()
    _, cls = weighted(x)
    cls.sum().backward()
    assert weighted.regions.logits.grad is not None and weighted.regions.logits.grad.abs().sum() > 0

    regions = RegionWeighting(rim_px=1, surroundings_px=3)
    p = torch.zeros(1, 1, 16, 16)
    p[..., 5:11, 5:11] = 1.0
    with torch.no_grad():
        regions.logits.copy_(torch.tensor([10.0, -20.0, -20.0, -20.0]))  # the core alone counts
        core_only = regions(p, 16)
    assert core_only[0, 0, 8, 8] == pytest.approx(10.0, abs=1e-3) and core_only[0, 0, 5, 5] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="roi_weighting"):
        MTSANet(NetConfig(in_channels=3, base_width=4, input_size=64, segmentation=False, roi_weighting=True))
