"""Prediction over slices: batches, progress, cancel, tissue skipping, bounded memory, devices."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from helpers import BrightnessNet
from MTSASegmenterLib.errors import Cancelled, MTSAError
from MTSASegmenterLib.inference.predictor import (
    available_devices,
    predict_slices,
    select_device,
)


def volume(n_slices: int, size: int = 32) -> np.ndarray:
    v = np.zeros((n_slices, size, size), np.float32)
    v[:, 4:28, 4:28] = 1.0
    v[:, 12:16, 12:16] = 3.0
    return v


def test_batches_progress_and_outputs():
    net = BrightnessNet()
    seen = []
    out = predict_slices(net, volume(10), np.arange(10), 1, torch.device("cpu"), 4, lambda f, m: seen.append(f))
    assert net.calls == 3 and seen == sorted(seen) and seen[-1] == 1.0
    assert out.gtv_probability.shape == (10, 32, 32)
    assert (out.gtv_probability[:, 13, 13] > 0.99).all() and (out.gtv_probability[:, 6, 6] < 0.01).all()
    assert sorted(out.class_logits) == list(range(10))
    lesion_area = (volume(10)[0] > 1.8).mean()  # the stand-in's mutant logit is 50 * area - 0.5
    assert all(np.allclose(v, [0.0, 50 * lesion_area - 0.5], atol=1e-5) for v in out.class_logits.values())


def test_only_listed_slices_are_predicted():
    net = BrightnessNet()
    out = predict_slices(net, volume(10), np.array([2, 5]), 1, torch.device("cpu"), 8)
    assert net.slices_seen == 2 and sorted(out.class_logits) == [2, 5]
    assert out.gtv_probability[0].max() == 0.0


def test_cancel_stops_between_batches():
    net = BrightnessNet()
    calls = iter([False, True])
    with pytest.raises(Cancelled):
        predict_slices(net, volume(10), np.arange(10), 1, torch.device("cpu"), 2, should_cancel=lambda: next(calls))
    assert net.calls == 1


def test_peak_memory_does_not_grow_with_the_number_of_slices():
    """Beyond the volume and its probability map, the working set is one batch, whatever the slice count."""
    extra = []
    for n in (20, 160):
        v = volume(n, 64)
        tracemalloc.start()
        predict_slices(BrightnessNet(), v, np.arange(n), 1, torch.device("cpu"), 4)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        extra.append(peak - v.nbytes)  # the output map is as large as the volume
    assert extra[1] - extra[0] < 0.5 * (volume(160, 64).nbytes - volume(20, 64).nbytes) + 2e6, extra


def test_devices():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in available_devices()
    if "cuda" not in available_devices():
        with pytest.raises(MTSAError, match="cuda.*not available"):
            select_device("cuda")
    with pytest.raises(MTSAError, match="unknown"):
        select_device("tpu")


class LeftHalfNet(BrightnessNet):
    """Test double of a network that sees lesions only in the left half of the picture (a biased one)."""

    def forward(self, x: torch.Tensor):
        seg, cls = super().forward(x)
        seg = seg.clone()
        seg[..., x.shape[-1] // 2:] = -20.0
        cls = cls + torch.tensor([0.0, 1.0]) * (x[..., : x.shape[-1] // 2].mean(dim=(1, 2, 3)) * 10)[:, None]
        return seg, cls


def test_flip_averaging_mirrors_back_and_averages_both_outputs():
    v = volume(4)
    v[:, 20:24, 6:10] = 3.0  # a second lesion, in the left half only
    net = LeftHalfNet()
    plain = predict_slices(net, v, np.arange(4), 1, torch.device("cpu"), 4, prepare=False)
    both = predict_slices(net, v, np.arange(4), 1, torch.device("cpu"), 4, prepare=False, flip=True)
    mirrored = predict_slices(net, v[..., ::-1].copy(), np.arange(4), 1, torch.device("cpu"), 4, prepare=False)
    np.testing.assert_allclose(both.gtv_probability, (plain.gtv_probability + mirrored.gtv_probability[..., ::-1]) / 2, atol=1e-6)
    assert (both.gtv_probability[:, 13, 13] > 0.49).all() and (both.gtv_probability[:, 21, 7] > 0.49).all()
    for z in range(4):
        np.testing.assert_allclose(both.class_logits[z], (plain.class_logits[z] + mirrored.class_logits[z]) / 2, atol=1e-5)
    assert net.slices_seen == 4 * 4  # plain, twice for the average, mirrored


def test_gamma_view_grows_what_the_plain_view_marks_and_adds_nothing_of_its_own():
    v = volume(4)
    v[:, 11:17, 11:17] = 1.5  # a faint margin around the bright core (12:16): below the stand-in's 1.8, above it raised to 1.5
    v[:, 12:16, 12:16] = 3.0
    v[:, 20:24, 6:10] = 1.5  # a faint structure on its own
    net = BrightnessNet()
    plain = predict_slices(net, v, np.arange(4), 1, torch.device("cpu"), 4, prepare=False)
    both = predict_slices(net, v, np.arange(4), 1, torch.device("cpu"), 4, prepare=False, gammas=(1.5,), clip_max=4.0)
    raised = predict_slices(net, np.minimum(v**1.5, 4.0), np.arange(4), 1, torch.device("cpu"), 4, prepare=False)
    margin = np.zeros(v.shape, bool)
    margin[:, 11:17, 11:17] = True
    np.testing.assert_allclose(both.gtv_probability[margin], raised.gtv_probability[margin], atol=1e-6)
    assert (plain.gtv_probability[:, 11, 11] < 0.5).all() and (both.gtv_probability[:, 11, 11] > 0.5).all()
    np.testing.assert_array_equal(both.gtv_probability[~margin], plain.gtv_probability[~margin])
    assert (raised.gtv_probability[:, 21, 7] > 0.5).all() and (both.gtv_probability[:, 21, 7] < 0.5).all()
    for z in range(4):
        np.testing.assert_array_equal(both.class_logits[z], plain.class_logits[z])
    assert net.slices_seen == 4 * 4  # plain, plain and raised, raised
