"""The paper's losses (eqs. 5-9): L_GTV = Dice + beta * Focal, L_EGFR = cross-entropy, joined by
uncertainty weighting (Kendall et al. 2018) or by equal weights; any further head adds its own
term (cross-entropy for a classification head, smooth L1 for a regression head) and its own sigma.

The focal term is *summed* over the pixels of each slice, as eq. 7 writes it, and averaged over
the batch; that is why beta is as small as 1/25000 (the paper's value, tuned for 384 x 384
slices: at smaller inputs the focal term weighs proportionally less). The Dice term is soft and
pooled over the whole batch, so a batch whose slices are partly tumour-free still has a
well-defined Dice; ``tumour_slice_dice`` moves a share of it to a mean over the tumour slices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from MTSASegmenterLib.config import DEFAULT_TASKS, TaskSpec, head_slices, head_tasks
from torch import nn

IGNORE = -1  # class target of slices that carry no label (tumour-free slices, unknown status)
WEIGHTINGS = ("uncertainty", "equal")


def soft_dice_loss(seg_logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Eq. 6 over the batch: 1 - 2 sum(p y) / (sum(p + y) + eps)."""
    p = torch.sigmoid(seg_logits.float())
    y = target.float()
    return 1 - 2 * (p * y).sum() / ((p + y).sum() + eps)


def tumour_slice_dice_loss(seg_logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Eq. 6 per slice, mean over the slices that hold tumour (0, attached, when none does).

    Why: pooled over the batch, a 5 mm lesion's pixels are lost beside a 30 mm one's, so the
    network can leave small lesions out at little cost; per slice, each lesion slice counts alike.
    """
    p = torch.sigmoid(seg_logits.float()).flatten(1)
    y = target.float().flatten(1)
    tumour = y.sum(1) > 0
    if not bool(tumour.any()):
        return seg_logits.float().sum() * 0.0
    per_slice = 1 - 2 * (p * y).sum(1) / ((p + y).sum(1) + eps)
    return per_slice[tumour].mean()


def focal_loss_sum(
    seg_logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.8, gamma: float = 2.0
) -> torch.Tensor:
    """Eq. 7 (Lin et al.'s binary focal loss) summed over each slice's pixels, mean over the batch.

    alpha weighs the tumour pixels, 1 - alpha the background ones.
    """
    x = seg_logits.float()
    y = target.float()
    log_p = F.logsigmoid(x)  # log p(tumour), stable for large |x|
    log_q = F.logsigmoid(-x)  # log p(background)
    log_pt = y * log_p + (1 - y) * log_q
    alpha_t = y * alpha + (1 - y) * (1 - alpha)
    per_pixel = -alpha_t * (1 - log_pt.exp()) ** gamma * log_pt
    return per_pixel.flatten(1).sum(1).mean()


def labelled_cross_entropy(cls_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 8 (the paper's EGFR loss, here every classification head's): cross-entropy, mean over the
    labelled slices (target != IGNORE); 0 (still attached to the graph) when none is labelled."""
    labelled = target != IGNORE
    if not bool(labelled.any()):
        return cls_logits.float().sum() * 0.0
    return F.cross_entropy(cls_logits.float()[labelled], target[labelled])


def head_loss(task: TaskSpec, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One head's loss over the slices whose target is known (finite); 0 when none is."""
    known = torch.isfinite(target)
    if task.kind == "regression":
        if not bool(known.any()):
            return logits.float().sum() * 0.0
        return F.smooth_l1_loss(logits.float()[known, 0], target[known].float())
    return labelled_cross_entropy(logits, torch.where(known, target, torch.full_like(target, IGNORE)).long())


@dataclass(frozen=True)
class LossConfig:
    """Loss hyper-parameters; defaults are the paper's."""

    weighting: str = "uncertainty"  # "uncertainty" (eq. 9) | "equal" (0.5 / 0.5)
    beta: float = 1 / 25000
    focal_alpha: float = 0.8
    focal_gamma: float = 2.0
    dice_eps: float = 1e-5
    tumour_slice_dice: float = 0.0  # share of the Dice term taken per tumour slice instead of over the batch (0: the paper's)

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if not 0 <= self.focal_alpha <= 1:
            raise ValueError(f"focal_alpha must be in [0, 1], got {self.focal_alpha}")
        if not 0 <= self.tumour_slice_dice <= 1:
            raise ValueError(f"tumour_slice_dice must be in [0, 1], got {self.tumour_slice_dice}")


class MultiTaskLoss(nn.Module):
    """L_joint of eq. 9 over every task, with learnable s = log sigma^2 (initialised to 0, i.e. sigma = 1).

    sum_i 0.5 exp(-s_i) L_i + 0.5 s_i equals eq. 9 at the same sigmas, but stays finite and smooth
    wherever s goes, where 1 / sigma^2 does not. "equal" takes the mean of the task losses (0.5 / 0.5
    for MTSA-Net's two). With a single task the loss is that task's plain loss: nothing to weigh.
    """

    def __init__(self, config: LossConfig = LossConfig(), tasks: Sequence[TaskSpec] = DEFAULT_TASKS) -> None:
        super().__init__()
        self.config = config
        self.tasks = list(tasks)
        self.heads = head_tasks(self.tasks)
        self.columns = head_slices(self.tasks)
        # Frozen unless used: DDP rejects trainable parameters that take no part in the loss.
        learn = len(self.tasks) > 1 and config.weighting == "uncertainty"
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)), requires_grad=learn)

    def gtv_loss(self, seg_logits: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(L_GTV, Dice loss, summed focal loss)."""
        c = self.config
        dice = soft_dice_loss(seg_logits, mask, c.dice_eps)
        if c.tumour_slice_dice:
            per_slice = tumour_slice_dice_loss(seg_logits, mask, c.dice_eps)
            dice = (1 - c.tumour_slice_dice) * dice + c.tumour_slice_dice * per_slice
        focal = focal_loss_sum(seg_logits, mask, c.focal_alpha, c.focal_gamma)
        return dice + c.beta * focal, dice, focal

    def forward(
        self,
        seg_logits: torch.Tensor | None,
        cls_logits: torch.Tensor | None,
        mask: torch.Tensor,
        targets: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its parts (detached, for logging without a device sync per step).

        ``targets`` is [B, heads] in head order: class index or scaled value, NaN where unknown.
        """
        parts: dict[str, torch.Tensor] = {}
        losses: list[torch.Tensor] = []
        for task in self.tasks:
            if task.kind == "segmentation":
                if seg_logits is None:
                    raise ValueError("the network returned no segmentation logits for the GTV task")
                value, dice, focal = self.gtv_loss(seg_logits, mask)
                parts.update(dice=dice.detach(), focal=focal.detach())
            else:
                if cls_logits is None:
                    raise ValueError(f"the network returned no classifier logits for the {task.name} head")
                value = head_loss(task, cls_logits[:, self.columns[task.name]], targets[:, self.heads.index(task)])
            parts[task.key] = value.detach()
            losses.append(value)
        if not losses:
            raise ValueError("no task to train")
        stacked = torch.stack(losses)
        if len(losses) == 1:
            total = stacked[0]
        elif self.config.weighting == "equal":
            total = stacked.mean()
        else:
            s = self.log_vars
            total = (0.5 * torch.exp(-s) * stacked).sum() + 0.5 * s.sum()
        parts["total"] = total.detach()
        return total, parts

    def sigmas(self) -> dict[str, float]:
        """{task key: sigma}, for the log."""
        s = self.log_vars.detach()
        return {task.key: float(torch.exp(0.5 * v)) for task, v in zip(self.tasks, s)}
