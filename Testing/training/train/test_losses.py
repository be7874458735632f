"""The paper's losses (eqs. 5-9) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from MTSASegmenterLib.config import DEFAULT_TASKS, TaskSpec

from training.train.losses import (
    IGNORE,
    LossConfig,
    MultiTaskLoss,
    labelled_cross_entropy,
    focal_loss_sum,
    soft_dice_loss,
    tumour_slice_dice_loss,
)

GTV, EGFR = DEFAULT_TASKS
TARGET = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])  # one 2x2 slice, two tumour pixels


def test_soft_dice_at_half_probability() -> None:
    # p = 0.5 everywhere: sum(p y) = 1, sum(p + y) = 2 + 2 -> Dice 0.5.
    assert soft_dice_loss(torch.zeros(1, 1, 2, 2), TARGET, eps=0.0).item() == pytest.approx(0.5)


def test_soft_dice_pools_the_batch() -> None:
    # Second slice tumour-free and predicted empty: it adds nothing, the batch Dice stays that of slice 1.
    logits = torch.cat([torch.where(TARGET > 0, 20.0, -20.0), torch.full((1, 1, 2, 2), -20.0)])
    target = torch.cat([TARGET, torch.zeros(1, 1, 2, 2)])
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.0, abs=1e-5)


def test_tumour_slice_dice_weighs_a_small_lesion_like_a_large_one() -> None:
    # Slice 1: a 1-pixel lesion missed; slice 2: a 15-pixel lesion found. Pooled, the miss costs
    # 1/31 of the Dice; per tumour slice it costs half, and a tumour-free slice changes neither.
    small, large = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    small[0, 0, 0, 0], large[0, 0, 0, 0] = 1.0, 0.0
    target = torch.cat([small, large, torch.zeros(1, 1, 4, 4)])
    logits = torch.cat([torch.full((1, 1, 4, 4), -30.0), torch.where(large > 0, 30.0, -30.0), torch.full((1, 1, 4, 4), -30.0)])
    assert soft_dice_loss(logits, target).item() == pytest.approx(1 / 31, abs=1e-4)
    assert tumour_slice_dice_loss(logits, target).item() == pytest.approx(0.5, abs=1e-4)
    assert tumour_slice_dice_loss(logits[2:], target[2:]).item() == 0.0
    mixed = MultiTaskLoss(LossConfig(tumour_slice_dice=0.5), tasks=(GTV,)).gtv_loss(logits, target)[1]
    assert mixed.item() == pytest.approx(0.5 * (1 / 31 + 0.5), abs=1e-4)
    with pytest.raises(ValueError, match="tumour_slice_dice"):
        LossConfig(tumour_slice_dice=1.5)


def test_focal_summed_over_pixels_mean_over_batch() -> None:
    # p = 0.75 everywhere: tumour pixels 0.8 * 0.25^2 * -ln 0.75, background 0.2 * 0.75^2 * -ln 0.25.
    logits = torch.full((2, 1, 2, 2), math.log(3.0))
    target = TARGET.expand(2, -1, -1, -1)
    expected = 2 * 0.8 * 0.25**2 * -math.log(0.75) + 2 * 0.2 * 0.75**2 * -math.log(0.25)
    assert focal_loss_sum(logits, target, alpha=0.8, gamma=2.0).item() == pytest.approx(expected, rel=1e-6)


def test_focal_is_stable_for_confident_logits() -> None:
    logits = torch.tensor([[[[200.0, -200.0], [200.0, -200.0]]]], requires_grad=True)
    loss = focal_loss_sum(logits, TARGET)  # two pixels right, two wrong with certainty
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert loss.item() == pytest.approx(0.8 * 200 + 0.2 * 200, rel=1e-4)  # -log p_t = 200 at (1 - p_t) = 1


def test_cross_entropy_ignores_unlabelled_slices() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)], [5.0, -5.0]])
    assert labelled_cross_entropy(logits, torch.tensor([1, IGNORE])).item() == pytest.approx(-math.log(0.75))
    none = torch.zeros(2, 2, requires_grad=True)
    loss = labelled_cross_entropy(none, torch.tensor([IGNORE, IGNORE]))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(none.grad, torch.zeros(2, 2))


def _branches() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    seg = torch.full((2, 1, 2, 2), math.log(3.0))
    cls = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    return seg, cls, TARGET.expand(2, -1, -1, -1), torch.tensor([[1.0], [0.0]])


@pytest.mark.parametrize("sigmas", [(1.0, 1.0), (0.5, 2.0), (3.0, 0.2)])
def test_uncertainty_weighting_equals_paper_formula(sigmas: tuple[float, float]) -> None:
    seg, cls, mask, egfr = _branches()
    loss = MultiTaskLoss(LossConfig(weighting="uncertainty"))
    with torch.no_grad():
        loss.log_vars.copy_(torch.tensor([math.log(s * s) for s in sigmas]))
    total, parts = loss(seg, cls, mask, egfr)
    s1, s2 = sigmas
    paper = parts["gtv"] / (2 * s1**2) + parts["egfr"] / (2 * s2**2) + math.log(s1 * s2)  # eq. 9
    assert total.item() == pytest.approx(float(paper), rel=1e-6)
    assert tuple(loss.sigmas().values()) == pytest.approx(sigmas)


def test_uncertainty_starts_at_sigma_one_and_learns() -> None:
    seg, cls, mask, egfr = _branches()
    loss = MultiTaskLoss()
    assert loss.sigmas() == {"gtv": 1.0, "egfr": 1.0}
    total, parts = loss(seg, cls, mask, egfr)
    total.backward()
    # d/ds_i of 0.5 exp(-s_i) L_i + 0.5 s_i at s_i = 0 is 0.5 (1 - L_i).
    expected = torch.tensor([0.5 * (1 - parts["gtv"]), 0.5 * (1 - parts["egfr"])])
    assert torch.allclose(loss.log_vars.grad, expected, atol=1e-6)


def test_gtv_loss_is_dice_plus_beta_focal() -> None:
    seg, _, mask, _ = _branches()
    _, parts = MultiTaskLoss(tasks=[GTV])(seg, None, mask, torch.zeros(2, 0))
    assert parts["gtv"].item() == pytest.approx((parts["dice"] + parts["focal"] / 25000).item())


def test_equal_weighting_and_single_task_modes() -> None:
    seg, cls, mask, egfr = _branches()
    equal = MultiTaskLoss(LossConfig(weighting="equal"))
    total, parts = equal(seg, cls, mask, egfr)
    assert total.item() == pytest.approx(0.5 * parts["gtv"].item() + 0.5 * parts["egfr"].item())
    assert not equal.log_vars.requires_grad
    seg_only = MultiTaskLoss(tasks=[GTV])
    assert not seg_only.log_vars.requires_grad
    total, parts = seg_only(seg, None, mask, egfr)
    assert "egfr" not in parts and total.item() == pytest.approx(parts["gtv"].item())
    cls_only = MultiTaskLoss(tasks=[EGFR])
    total, parts = cls_only(None, cls, mask, egfr)
    assert "gtv" not in parts and total.item() == pytest.approx(parts["egfr"].item())
    with pytest.raises(ValueError):
        seg_only(None, None, mask, egfr)
    with pytest.raises(ValueError, match="weighting"):
        LossConfig(weighting="gradnorm")


def test_any_heads_share_the_classifier_and_each_gets_a_sigma() -> None:
    """A breast-style task list: two binary heads, a three-class head and Ki-67 regression, with
    unknown labels (NaN) left out of their head's loss only."""
    tasks = [GTV, TaskSpec("ER", "binary", ("negative", "positive")), TaskSpec("HER2", "binary", ("negative", "positive")),
             TaskSpec("Grade", "multiclass", ("1", "2", "3")), TaskSpec("Ki-67", "regression", unit="%", scale=100.0)]
    loss = MultiTaskLoss(tasks=tasks)
    seg = torch.full((2, 1, 2, 2), math.log(3.0))
    cls = torch.tensor([[0.0, math.log(3.0), 0.0, 0.0, 0.0, 0.0, 0.0, 0.3], [0.0, 0.0, 9.0, 9.0, 0.0, 0.0, 5.0, 0.1]])
    nan = float("nan")
    targets = torch.tensor([[1.0, nan, 2.0, 0.2], [0.0, nan, 2.0, nan]])
    total, parts = loss(seg, cls, TARGET.expand(2, -1, -1, -1), targets)
    assert parts["er"].item() == pytest.approx((-math.log(0.75) - math.log(0.5)) / 2, rel=1e-6)
    assert parts["her2"].item() == 0.0  # no label at all
    assert parts["grade"].item() == pytest.approx(
        float(torch.nn.functional.cross_entropy(cls[:, 4:7], torch.tensor([2, 2]))), rel=1e-6)
    assert parts["ki-67"].item() == pytest.approx(0.5 * 0.1**2, rel=1e-5)  # smooth L1, |0.3 - 0.2| < 1
    assert total.item() == pytest.approx(sum(0.5 * parts[t.key].item() for t in tasks), rel=1e-6)  # all sigmas 1
    assert loss.log_vars.shape == (5,) and set(loss.sigmas()) == {"gtv", "er", "her2", "grade", "ki-67"}
