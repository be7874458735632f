"""The prepared inference network (folded BatchNorm, channels-last, cached) gives the plain network's answer."""

from __future__ import annotations

import numpy as np
import torch
from helpers import TINY_NET, randomise_batchnorm
from MTSASegmenterLib.inference.predictor import inference_net, predict_slices
from MTSASegmenterLib.metrics import dice
from MTSASegmenterLib.model.network import MTSANet

CPU = torch.device("cpu")


def trained_looking_net() -> MTSANet:
    """Random weights with non-trivial BatchNorm statistics (so folding changes the arithmetic) and a
    GTV bias that puts about half the pixels above 0.5 (so the masks compared are not empty)."""
    torch.manual_seed(0)
    net = MTSANet(TINY_NET).eval()
    randomise_batchnorm(net, mean=0.5, bias=0.2)
    with torch.no_grad():
        seg, _ = net(torch.rand(2, TINY_NET.in_channels, 64, 64) * 2)
        net.decoder.head.bias -= seg.median()
    return net


def test_prepared_network_gives_the_plain_masks():
    net = trained_looking_net()
    volume = np.random.default_rng(1).random((12, 64, 64), dtype=np.float32) * 2
    slices = np.arange(1, 11)
    plain = predict_slices(net, volume, slices, 1, CPU, 4, prepare=False)
    fast = predict_slices(net, volume, slices, 1, CPU, 4)
    reference = plain.gtv_probability >= 0.5
    assert 0.2 < reference.mean() < 0.8
    assert dice(fast.gtv_probability >= 0.5, reference) >= 0.999
    np.testing.assert_allclose(fast.gtv_probability, plain.gtv_probability, atol=1e-4)
    for z in slices:
        np.testing.assert_allclose(fast.class_logits[z], plain.class_logits[z], atol=1e-4)


def test_prepared_once_per_set_of_weights_and_the_original_untouched():
    net = trained_looking_net().train()
    prepared = inference_net(net, CPU)
    assert not prepared.training and not any(isinstance(m, torch.nn.BatchNorm2d) for m in prepared.modules())
    assert prepared.encoder.stages[0][0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert inference_net(net, CPU) is prepared
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert net.encoder.stages[0][0][0].weight.is_contiguous()
    with torch.no_grad():  # an optimiser step, as in training between validation runs
        net.decoder.head.bias += 1.0
    assert inference_net(net, CPU) is not prepared
