"""Running the network over a stack of model slices: device, batches, progress, cancel.

Memory stays bounded by the volume itself: slices are stacked one batch at a time and only the
GTV probability (one float32 per model voxel) and the heads' few outputs per slice are kept.

Speed: the network runs as an inference copy (BatchNorm folded into the convolutions, weights and
activations channels-last), prepared once per network, device and set of weights and cached, so
that Slicer, which predicts many volumes with one loaded model, pays for it once.
``benchmarks/predict_speed.py`` holds the measurements behind these choices.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import torch

from ..config import DEVICES, NetConfig
from ..errors import Cancelled, MTSAError
from ..model.network import fuse_batchnorm
from ..postprocess.lesions import label_components
from ..progress import Progress, ShouldCancel
from .preprocess import stack_context


def available_devices() -> list[str]:
    """Devices this machine can run on, best first after the CPU."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def select_device(name: str = "auto") -> torch.device:
    """``auto`` prefers CUDA, then MPS, then the CPU; a named device that is absent is an error."""
    found = available_devices()
    if name == "auto":
        return torch.device("cuda" if "cuda" in found else "mps" if "mps" in found else "cpu")
    if name not in DEVICES:
        raise MTSAError(f"device {name!r}: unknown; choose auto, cpu, cuda or mps")
    if name not in found:
        raise MTSAError(f"device {name!r}: not available on this machine (found: {', '.join(found)})")
    return torch.device(name)


_CPU_BATCH_PIXELS = 4 * 160 * 160 * 12  # batch x input_size^2 x base_width that stays in the CPU's caches


def default_batch_size(device: torch.device, net_config: NetConfig | None = None) -> int:
    """16 slices on a GPU; on the CPU as many as keep the activations cache-sized (measured:
    the paper's 384 x 384 width-32 network runs 1.3x faster one slice at a time than four)."""
    if device.type != "cpu":
        return 16
    if net_config is None:
        return 4
    per_slice = net_config.input_size**2 * net_config.base_width
    return int(min(8, max(1, _CPU_BATCH_PIXELS // per_slice)))


@dataclass
class SliceOutputs:
    """Per-slice network outputs on the model grid; skipped slices hold zeros and no head value."""

    gtv_probability: np.ndarray  # float32 [z, y, x]
    predicted: np.ndarray  # indices of the slices the network saw
    class_logits: dict[int, np.ndarray] = field(default_factory=dict)  # slice -> all heads' raw outputs (heads.py splits them)


_PREPARED: "weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple, torch.nn.Module]]" = weakref.WeakKeyDictionary()


def _weights_key(net: torch.nn.Module, device: torch.device) -> tuple:
    """Changes when the weights are moved, replaced or updated in place (optimiser steps bump ``_version``)."""
    tensors = chain(net.parameters(), net.buffers())
    return (str(device), tuple((t.data_ptr(), t._version) for t in tensors))


def inference_net(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``net`` ready for prediction on ``device``: an eval-mode copy, BatchNorm folded, channels-last; cached.

    The copy costs one more set of weights, so it is only made for a network with BatchNorm (every
    MTSA-Net); one without runs as it is, in eval mode, moved to ``device``. The loaded network
    itself stays where it was, so a GPU holds one copy of the weights, not two. The cache follows
    the weights: a network trained further, reloaded or moved is prepared again.
    """
    net.eval()
    if not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()):
        return net.to(device)
    key = _weights_key(net, device)
    cached = _PREPARED.get(net)
    if cached is None or cached[0] != key:
        prepared = fuse_batchnorm(net).to(device)
        if device.type == "cpu":
            prepared = prepared.to(memory_format=torch.channels_last)
        _PREPARED[net] = cached = (key, prepared)
    return cached[1]


def predict_slices(
    net: torch.nn.Module,
    volume: np.ndarray,
    slices: np.ndarray,
    context: int,
    device: torch.device,
    batch_size: int,
    progress: Progress | None = None,
    should_cancel: ShouldCancel | None = None,
    *,
    prepare: bool = True,
    flip: bool = False,
    gammas: tuple[float, ...] = (),
    clip_max: float = 4.0,
) -> SliceOutputs:
    """Predict the listed slices of ``volume`` [z, y, x] in batches under ``torch.inference_mode``.

    ``prepare=False`` runs ``net`` exactly as given (eval mode only): the reference that the
    prepared network (see ``inference_net``) is tested and benchmarked against. ``flip`` averages
    each slice's prediction with that of its left-right mirror image (GTV probabilities and head
    logits), as nnU-Net mirrors at test time: twice the network's work for a steadier answer.
    """
    out = SliceOutputs(gtv_probability=np.zeros(volume.shape, dtype=np.float32), predicted=np.asarray(slices))
    net = inference_net(net, device) if prepare else net.eval()
    raised = np.zeros_like(out.gtv_probability) if gammas else None
    total = len(slices)
    with torch.inference_mode():
        for start in range(0, total, batch_size):
            if should_cancel is not None and should_cancel():
                raise Cancelled("prediction cancelled")
            batch_z = np.asarray(slices[start : start + batch_size])
            x = torch.from_numpy(stack_context(volume, batch_z, context)).to(device)
            gtv, logits, raised_gtv = _run(net, x, flip, gammas, clip_max)
            if gtv is not None:
                out.gtv_probability[batch_z] = gtv.float().cpu().numpy()
            if raised_gtv is not None:
                raised[batch_z] = raised_gtv.float().cpu().numpy()
            if logits is not None:
                out.class_logits.update({int(z): v for z, v in zip(batch_z, logits.float().cpu().numpy())})
            if progress is not None:
                done = min(start + batch_size, total)
                progress(done / total, f"slice {done}/{total}")
    if raised is not None:
        out.gtv_probability = grown(out.gtv_probability, raised)
    return out


def grown(plain: np.ndarray, raised: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """``plain``, with the higher of both probabilities inside each component of their union (at
    ``threshold``) that holds a voxel ``plain`` marks. Why: the raised view sees more of a faint lesion
    the plain view found, but also faint enhancing anatomy; it may grow lesions, not add components."""
    top = np.maximum(plain, raised)
    labels, _ = label_components(top >= threshold)
    found = np.unique(labels[plain >= threshold])
    return np.where(np.isin(labels, found[found > 0]), top, plain)


def _run(net: torch.nn.Module, x: torch.Tensor, flip: bool, gammas: tuple[float, ...] = (),
         clip_max: float = 4.0) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(GTV probability [B, H, W], head logits [B, K], highest GTV probability of the ``gammas`` views or None)."""
    gtv, cls = _run_view(net, x, flip)
    raised = None
    for gamma in gammas if gtv is not None else ():
        view = _run_view(net, x.clamp(min=0).pow(gamma).clamp(max=clip_max), flip)[0]
        raised = view if raised is None else torch.maximum(raised, view)
    return gtv, cls, raised


def _run_view(net: torch.nn.Module, x: torch.Tensor, flip: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(GTV probability [B, H, W], head logits [B, K]) of a batch, averaged with its mirror image when ``flip``."""
    seg, cls = net(x)
    gtv = None if seg is None else torch.sigmoid(seg[:, 0])
    if flip:
        seg_m, cls_m = net(torch.flip(x, dims=(-1,)))
        gtv = None if seg_m is None else (gtv + torch.flip(torch.sigmoid(seg_m[:, 0]), dims=(-1,))) / 2
        cls = None if cls_m is None else (cls + cls_m) / 2
    return gtv, cls
