"""The paper's losses (eqs. 5-9): L_GTV = Dice + beta * Focal, L_EGFR = cross-entropy, joined by
uncertainty weighting (Kendall et al. 2018) or by equal weights.

The focal term is *summed* over the pixels of each slice, as eq. 7 writes it, and averaged over
the batch; that is why beta is as small as 1/25000 (the paper's value, tuned for 384 x 384
slices: at smaller inputs the focal term weighs proportionally less). The Dice term is soft and
pooled over the whole batch, so a batch whose slices are partly tumour-free still has a
well-defined Dice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -1  # EGFR target of slices that carry no label (tumour-free slices, unknown status)
WEIGHTINGS = ("uncertainty", "equal")


def soft_dice_loss(seg_logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Eq. 6 over the batch: 1 - 2 sum(p y) / (sum(p + y) + eps)."""
    p = torch.sigmoid(seg_logits.float())
    y = target.float()
    return 1 - 2 * (p * y).sum() / ((p + y).sum() + eps)


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


def egfr_cross_entropy(cls_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 8, mean over the labelled slices; 0 (still attached to the graph) when none is labelled."""
    labelled = target != IGNORE
    if not bool(labelled.any()):
        return cls_logits.float().sum() * 0.0
    return F.cross_entropy(cls_logits.float()[labelled], target[labelled])


@dataclass(frozen=True)
class LossConfig:
    """Loss hyper-parameters; defaults are the paper's."""

    weighting: str = "uncertainty"  # "uncertainty" (eq. 9) | "equal" (0.5 / 0.5)
    beta: float = 1 / 25000
    focal_alpha: float = 0.8
    focal_gamma: float = 2.0
    dice_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if not 0 <= self.focal_alpha <= 1:
            raise ValueError(f"focal_alpha must be in [0, 1], got {self.focal_alpha}")


class MultiTaskLoss(nn.Module):
    """L_joint of eq. 9 with learnable s = log sigma^2 (initialised to 0, i.e. sigma = 1).

    0.5 exp(-s1) L1 + 0.5 exp(-s2) L2 + 0.5 (s1 + s2) equals eq. 9 at the same sigmas, but stays
    finite and smooth wherever s goes, where 1 / sigma^2 does not. With one branch absent
    (the network returned None) the loss is that branch's plain loss: there is nothing to weigh.
    """

    def __init__(self, config: LossConfig = LossConfig(), two_tasks: bool = True) -> None:
        super().__init__()
        self.config = config
        # Frozen unless used: DDP rejects trainable parameters that take no part in the loss.
        learn = two_tasks and config.weighting == "uncertainty"
        self.log_vars = nn.Parameter(torch.zeros(2), requires_grad=learn)

    def gtv_loss(self, seg_logits: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(L_GTV, Dice loss, summed focal loss)."""
        c = self.config
        dice = soft_dice_loss(seg_logits, mask, c.dice_eps)
        focal = focal_loss_sum(seg_logits, mask, c.focal_alpha, c.focal_gamma)
        return dice + c.beta * focal, dice, focal

    def forward(
        self,
        seg_logits: torch.Tensor | None,
        cls_logits: torch.Tensor | None,
        mask: torch.Tensor,
        egfr: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its parts (detached, for logging without a device sync per step)."""
        parts: dict[str, torch.Tensor] = {}
        l_gtv = l_egfr = None
        if seg_logits is not None:
            l_gtv, dice, focal = self.gtv_loss(seg_logits, mask)
            parts.update(gtv=l_gtv.detach(), dice=dice.detach(), focal=focal.detach())
        if cls_logits is not None:
            l_egfr = egfr_cross_entropy(cls_logits, egfr)
            parts["egfr"] = l_egfr.detach()
        if l_gtv is None and l_egfr is None:
            raise ValueError("the network returned neither segmentation nor classification logits")
        if l_egfr is None:
            total = l_gtv
        elif l_gtv is None:
            total = l_egfr
        elif self.config.weighting == "equal":
            total = 0.5 * l_gtv + 0.5 * l_egfr
        else:
            s = self.log_vars
            total = 0.5 * torch.exp(-s[0]) * l_gtv + 0.5 * torch.exp(-s[1]) * l_egfr + 0.5 * s.sum()
        parts["total"] = total.detach()
        return total, parts

    def sigmas(self) -> tuple[float, float]:
        """(sigma_GTV, sigma_EGFR), for the log."""
        s = self.log_vars.detach()
        return float(torch.exp(0.5 * s[0])), float(torch.exp(0.5 * s[1]))
