"""Size and cost of an MTSA-Net configuration, without allocating its weights.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no memory, no
arithmetic), which counts a multiply-add as 2 FLOPs and covers convolutions, transposed
convolutions and matrix products (linear layers, attention); element-wise work (BatchNorm, ReLU,
the attention re-weighting, pooling) is not counted, as is customary for reported GFLOPs.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..config import NetConfig
from .network import MTSANet


def complexity(cfg: NetConfig) -> tuple[int, float]:
    """(number of parameters, GFLOPs for one forward pass of one slice at ``cfg.input_size``)."""
    with torch.device("meta"):
        model = MTSANet(cfg).eval()
        x = torch.empty(1, cfg.in_channels, cfg.input_size, cfg.input_size)
    parameters = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return parameters, counter.get_total_flops() / 1e9


def describe(cfg: NetConfig) -> str:
    """One line for ``mtsa info``, e.g. 'MTSA-Net 384x384x1, width 32: 12.3 M parameters, 45.6 GFLOPs per slice'."""
    parameters, gflops = complexity(cfg)
    variant = "" if cfg.segmentation and cfg.classification else (
        " (segmentation only)" if cfg.segmentation else " (classification only)"
    )
    s = cfg.input_size
    return (
        f"MTSA-Net{variant} {s}x{s}x{cfg.in_channels}, width {cfg.base_width}: "
        f"{parameters / 1e6:.1f} M parameters, {gflops:.1f} GFLOPs per slice"
    )
