"""MTSA-Net (Zhou et al., J Transl Med 2023): shared MSA encoder, GTV decoder, CNN-Transformer EGFR head.

Choices where the paper is silent or ambiguous (each also noted at the class concerned):

- MSA module (Eq. 1): the paper follows SegNeXt's MSCA, whose attention is
  ``Conv1x1(sum_i Scale_i(DWConv(F)))`` with ``Scale_0`` the identity. Eq. 1 writes that identity
  branch as ``Conv3x3(F)``, so one depth-wise 3x3 convolution (the paper's 3x3 in place of SegNeXt's
  5x5) gives branch 0 and feeds the strip branches; a second, separate convolution would have no
  kernel size in the paper. All convolutions before the 1x1 are depth-wise, as in MSCA.
- An MSA block is one 3x3 conv-BN-ReLU followed by one MSA module (Fig. 2b), without a residual
  connection (none is drawn); each of the five encoder stages is one MSA block.
- Downsampling is 2x2 max-pooling (the U-Net convention; parameter-free), not strided convolution.
- Decoder stage: 2x2 transposed convolution (stride 2) halving the channels, concatenation with the
  encoder feature of the same size, one 3x3 conv-BN-ReLU.
- Classifier tokens: each of the 16 patches (4x4 grid) of the bottleneck is flattened and linearly
  embedded into one token (a conv with kernel = stride = patch size), width = bottleneck channels;
  "a 6^2 length sequence" is read as the 6x6 patch flattened into one token. Pre-norm Transformer
  blocks (MLP ratio 4, GELU) end with a LayerNorm; the average pooling of the 4x4 token grid with
  kernel 4 is the mean over the 16 tokens. The reducing MLP is Linear(d, d/4)-ReLU-Dropout-
  Linear(d/4, num_classes).
- When bottleneck size / 4 is not an integer (input 160 -> 10x10), the bottleneck is first
  adaptive-average-pooled to the nearest multiple of 4 (ties go down: 10 -> 8), so that there are
  always 16 equal patches.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..config import STAGES, NetConfig

GRID = 4  # the classifier's patch grid is GRID x GRID = 16 tokens
GTV_PRIOR = 0.01  # initial GTV probability of every pixel (see Decoder)


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    # No conv bias: BatchNorm's shift replaces it (and fuse_batchnorm restores one).
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class MSAModule(nn.Module):
    """Multi-scale attention (Eq. 1, Fig. 2a): ``Out = Conv1x1(L + sum_k Strip_k(L)) * F``, ``L = DW3x3(F)``.

    ``Strip_k`` is a depth-wise k x 1 then 1 x k convolution pair. Following SegNeXt's MSCA, branch 0
    (local context) is the depth-wise 3x3 output itself and it is also what the strip branches see.
    """

    def __init__(self, channels: int, strip_kernels: tuple[int, ...]) -> None:
        super().__init__()
        c = channels
        self.local = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c, c, (k, 1), padding=(k // 2, 0), groups=c),
                nn.Conv2d(c, c, (1, k), padding=(0, k // 2), groups=c),
            )
            for k in strip_kernels
        )
        self.attention = nn.Conv2d(c, c, 1)

    def forward(self, f: Tensor) -> Tensor:
        local = self.local(f)
        s = local
        for branch in self.branches:
            s = s + branch(local)
        return self.attention(s) * f


def msa_block(cin: int, cout: int, strip_kernels: tuple[int, ...]) -> nn.Sequential:
    """Fig. 2b: 3x3 conv, BN, ReLU, MSA module."""
    return nn.Sequential(conv_bn_relu(cin, cout), MSAModule(cout, strip_kernels))


class Encoder(nn.Module):
    """Five MSA blocks; stages 2-5 start with a 2x2 max-pool. Returns every stage's output (skips)."""

    def __init__(self, in_channels: int, widths: list[int], strip_kernels: tuple[int, ...]) -> None:
        super().__init__()
        blocks = [msa_block(a, b, strip_kernels) for a, b in zip([in_channels] + widths[:-1], widths)]
        self.stages = nn.ModuleList([blocks[0]] + [nn.Sequential(nn.MaxPool2d(2), b) for b in blocks[1:]])

    def forward(self, x: Tensor) -> list[Tensor]:
        feats: list[Tensor] = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class UpStage(nn.Module):
    """Transposed conv (stride 2, halves channels), concatenate the skip, 3x3 conv-BN-ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.conv = conv_bn_relu(2 * cout, cout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class Decoder(nn.Module):
    """Four up-stages back to full resolution, then a 1x1 conv to one GTV logit per pixel.

    The head's bias starts at the logit of GTV_PRIOR, the prior initialisation of the focal-loss
    paper (Lin et al. 2017, sec. 3.3): with PyTorch's default (p = 0.5 everywhere) the background
    fills the soft Dice's denominator, and the first quarter of a CPU run went into pushing it down.
    """

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(UpStage(widths[i + 1], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], 1, 1)
        nn.init.constant_(self.head.bias, math.log(GTV_PRIOR / (1 - GTV_PRIOR)))

    def forward(self, feats: list[Tensor]) -> Tensor:
        x = feats[-1]
        for i, stage in enumerate(self.stages):
            x = stage(x, feats[-2 - i])
        return self.head(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention (Eqs. 2-4): fused Q/K/V projection, scaled dot product, output projection."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class TransformerBlock(nn.Module):
    """Pre-norm Transformer layer: x + MSA(LN(x)), then x + MLP(LN(x)) with MLP ratio 4 and GELU."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim), nn.Dropout(dropout)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Classifier(nn.Module):
    """Hybrid CNN-Transformer classifier on the bottleneck: every head's outputs side by side
    (MTSA-Net's one head: EGFR); see the module docstring for the choices.

    bottleneck [B,C,m,m] -> (adaptive pool to g = nearest multiple of 4 if m % 4) -> conv-BN-ReLU ->
    16 patch tokens of width C + position embedding -> Transformer blocks -> LayerNorm -> mean of the
    4x4 token grid -> MLP -> num_classes logits.
    """

    def __init__(self, channels: int, map_size: int, cfg: NetConfig) -> None:
        super().__init__()
        grid = GRID * max(1, (map_size + 1) // GRID)  # nearest multiple of 4, ties down
        patch = grid // GRID
        self.resize = nn.Identity() if grid == map_size else nn.AdaptiveAvgPool2d(grid)
        self.conv = conv_bn_relu(channels, channels)
        self.embed = nn.Conv2d(channels, channels, patch, stride=patch)  # flatten each patch + linear
        self.pos = nn.Parameter(torch.zeros(1, GRID * GRID, channels))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(
            *(TransformerBlock(channels, cfg.transformer_heads, cfg.dropout) for _ in range(cfg.transformer_layers))
        )
        self.norm = nn.LayerNorm(channels)
        self.head = nn.Sequential(
            nn.Linear(channels, channels // 4),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Linear(channels // 4, cfg.num_classes),
        )

    def tokens(self, bottleneck: Tensor) -> Tensor:
        """[B,C,m,m] -> [B,16,C] position-embedded patch tokens."""
        x = self.embed(self.conv(self.resize(bottleneck)))
        return x.flatten(2).transpose(1, 2) + self.pos

    def forward(self, bottleneck: Tensor) -> Tensor:
        x = self.norm(self.blocks(self.tokens(bottleneck)))
        return self.head(x.mean(dim=1))


class RegionWeighting(nn.Module):
    """Core / rim / surroundings weighting of the classifier's input (the breast paper's ROI module).

    From the network's own GTV probability p (detached: the segmentation learns from its own
    loss): core = p eroded, rim = p dilated minus core, surroundings = a wider dilation minus the
    rim's, background = the rest; each region has a learnable positive weight (softplus), all 1
    at the start, so the weighting begins as the identity. The weight map, averaged down to the
    bottleneck, multiplies the bottleneck features the classifier reads.
    """

    def __init__(self, rim_px: int = 2, surroundings_px: int = 6) -> None:
        super().__init__()
        self.rim_px, self.surroundings_px = rim_px, surroundings_px
        self.logits = nn.Parameter(torch.full((4,), math.log(math.e - 1.0)))  # softplus = 1

    def forward(self, probability: Tensor, size: int) -> Tensor:
        p = probability.detach().float()
        dilate = lambda x, r: F.max_pool2d(x, 2 * r + 1, stride=1, padding=r)  # noqa: E731
        core = -dilate(-p, self.rim_px)
        near = dilate(p, self.rim_px)
        far = dilate(p, self.surroundings_px)
        w = F.softplus(self.logits)
        weight = w[0] * core + w[1] * (near - core) + w[2] * (far - near) + w[3] * (1.0 - far)
        return F.adaptive_avg_pool2d(weight, size)


class MTSANet(nn.Module):
    """MTSA-Net. ``forward(x[B,in_channels,S,S]) -> (seg_logits[B,1,S,S] | None, cls_logits[B,K] | None)``.

    S must be ``cfg.input_size``. A branch switched off in ``cfg`` (segmentation-only or
    classification-only baseline) is not built and its output is None. Initialisation is PyTorch's
    default (plus a truncated-normal position embedding and the GTV head's prior bias), so
    ``torch.manual_seed`` fixes it.
    """

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.base_width * 2**i for i in range(STAGES)]
        self.encoder = Encoder(cfg.in_channels, widths, cfg.strip_kernels)
        self.decoder = Decoder(widths) if cfg.segmentation else None
        bottleneck = cfg.input_size // 2 ** (STAGES - 1)
        self.classifier = Classifier(widths[-1], bottleneck, cfg) if cfg.classification else None
        self.regions = RegionWeighting() if cfg.roi_weighting else None

    def forward(self, x: Tensor) -> tuple[Tensor | None, Tensor | None]:
        feats = self.encoder(x)
        seg = self.decoder(feats) if self.decoder is not None else None
        cls = None
        if self.classifier is not None:
            bottleneck = feats[-1]
            if self.regions is not None and seg is not None:
                bottleneck = bottleneck * self.regions(torch.sigmoid(seg), bottleneck.shape[-1])
            cls = self.classifier(bottleneck)
        return seg, cls

    @torch.jit.export
    def predict_proba(self, x: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """GTV probability per pixel (sigmoid) and class probabilities (softmax over classes)."""
        seg, cls = self.forward(x)
        return (
            torch.sigmoid(seg) if seg is not None else None,
            torch.softmax(cls, dim=1) if cls is not None else None,
        )


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy with each (transposed) convolution directly followed by a BatchNorm folded into it.

    Only sibling pairs inside one container are fused (where the BN acts on the conv output alone); the
    BN is replaced by an Identity, so module names and the state-dict layout stay recognisable.
    """
    fused = copy.deepcopy(model).eval()
    for parent in fused.modules():
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d):
                new_conv = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                setattr(parent, conv_name, new_conv)
                setattr(parent, bn_name, nn.Identity())
    return fused
