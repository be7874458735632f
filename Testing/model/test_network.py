"""MTSA-Net shapes, MSA attention, classifier tokens, BN fusion, determinism and complexity (small sizes)."""

from __future__ import annotations

import pytest
import torch
from helpers import randomise_batchnorm
from MTSASegmenterLib.config import NetConfig
from MTSASegmenterLib.model.complexity import complexity, describe
from MTSASegmenterLib.model.network import MSAModule, MTSANet, fuse_batchnorm


def small(**kw) -> NetConfig:
    return NetConfig(**{"in_channels": 1, "base_width": 4, "input_size": 64, **kw})


def build(cfg: NetConfig, seed: int = 0) -> MTSANet:
    torch.manual_seed(seed)
    return MTSANet(cfg)


@pytest.mark.parametrize("size", [64, 96, 160])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shapes(size: int, channels: int) -> None:
    cfg = small(in_channels=channels, input_size=size, num_classes=3)
    model = build(cfg).eval()
    with torch.inference_mode():
        seg, cls = model(torch.randn(2, channels, size, size))
    assert seg.shape == (2, 1, size, size)
    assert cls.shape == (2, 3)
    assert torch.isfinite(seg).all() and torch.isfinite(cls).all()


def test_untrained_network_starts_at_the_gtv_prior() -> None:
    """An untrained network calls almost nothing tumour (p ~ GTV_PRIOR), not half of every slice."""
    model = build(small(in_channels=3)).train()
    seg, _ = model(torch.randn(4, 3, 64, 64))
    p = torch.sigmoid(seg.detach())
    assert 0.002 < float(p.median()) < 0.05
    assert float((p > 0.5).float().mean()) < 0.01


def test_paper_size_on_meta_device() -> None:
    cfg = NetConfig(in_channels=1, base_width=32, input_size=384)
    with torch.device("meta"):
        seg, cls = MTSANet(cfg).eval()(torch.empty(1, 1, 384, 384))
    assert seg.shape == (1, 1, 384, 384) and cls.shape == (1, 2)


def test_train_mode_backward_and_channels_last() -> None:
    model = build(small(in_channels=3))
    x = torch.randn(2, 3, 64, 64)
    seg, cls = model(x)
    (seg.mean() + cls.mean()).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.inference_mode():
        a = model(x)
        b = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a[1], b[1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("segmentation", [True, False])
def test_single_task_baselines(segmentation: bool) -> None:
    model = build(small(segmentation=segmentation, classification=not segmentation)).eval()
    with torch.inference_mode():
        seg, cls = model(torch.randn(1, 1, 64, 64))
    if segmentation:
        assert seg.shape == (1, 1, 64, 64) and cls is None and model.classifier is None
    else:
        assert seg is None and cls.shape == (1, 2) and model.decoder is None


def test_predict_proba() -> None:
    model = build(small()).eval()
    with torch.inference_mode():
        seg, cls = model.predict_proba(torch.randn(2, 1, 64, 64))
    assert ((seg >= 0) & (seg <= 1)).all()
    torch.testing.assert_close(cls.sum(dim=1), torch.ones(2))


def test_msa_attention_multiplies_input() -> None:
    torch.manual_seed(0)
    msa = MSAModule(6, (5, 7, 11))
    assert len(msa.branches) == 3
    f = torch.randn(2, 6, 16, 16)
    with torch.no_grad():
        msa.attention.weight.zero_()
        msa.attention.bias.zero_()
        assert torch.count_nonzero(msa(f)) == 0
        msa.attention.bias.fill_(2.0)  # attention map of 2 everywhere: output is 2 * input
        torch.testing.assert_close(msa(f), 2 * f)


@pytest.mark.parametrize("size", [64, 160])
def test_classifier_has_16_tokens(size: int) -> None:
    model = build(small(input_size=size)).eval()
    with torch.inference_mode():
        bottleneck = model.encoder(torch.randn(2, 1, size, size))[-1]
        tokens = model.classifier.tokens(bottleneck)
    assert bottleneck.shape[-1] == size // 16
    assert tokens.shape == (2, 16, 4 * 16)


def test_fuse_batchnorm_matches() -> None:
    model = build(small(in_channels=3))
    randomise_batchnorm(model, mean=1.0, bias=0.5)
    model.eval()
    fused = fuse_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # original untouched
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        for a, b in zip(model(x), fused(x)):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_deterministic_initialisation() -> None:
    a, b, c = build(small()), build(small()), build(small(), seed=1)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.classifier.pos, c.classifier.pos)


@pytest.mark.parametrize(
    "kw",
    [
        {"input_size": 100},
        {"input_size": 48},
        {"base_width": 0},
        {"segmentation": False, "classification": False},
        {"strip_kernels": (4, 7)},
        {"strip_kernels": (1,)},
        {"transformer_heads": 3},
        {"transformer_layers": 0},
        {"num_classes": 0},
        {"dropout": 1.0},
    ],
)
def test_invalid_config_raises(kw: dict) -> None:
    with pytest.raises(ValueError):
        MTSANet(small(**kw))


def test_complexity() -> None:
    params, gflops = complexity(small(input_size=64))
    model = build(small(input_size=64))
    assert params == sum(p.numel() for p in model.parameters())
    assert 0 < gflops < 1
    params_128, gflops_128 = complexity(small(input_size=128))
    assert params_128 > params  # the patch embedding grows with the patch size
    assert 3.5 < gflops_128 / gflops < 4.5  # convolutions dominate: ~quadratic in the input size
    full_params, full_gflops = complexity(NetConfig(in_channels=1, base_width=32, input_size=384))
    assert 5e6 < full_params < 1e8 and 10 < full_gflops < 200
    seg_only, _ = complexity(NetConfig(in_channels=1, base_width=32, input_size=384, classification=False))
    assert seg_only < full_params


def test_describe() -> None:
    text = describe(NetConfig(in_channels=3, base_width=16, input_size=160))
    assert text.startswith("MTSA-Net 160x160x3, width 16: ")
    assert text.endswith(" GFLOPs per slice") and " M parameters, " in text
