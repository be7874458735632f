"""One checkpoint file: weights plus everything needed to use them the way they were trained.

A checkpoint is data, never code: it is read with ``torch.load(weights_only=True)`` and holds only
tensors, numbers, strings, lists and dicts. The configurations stored in it rebuild the network
and the preprocessing, so training and prediction cannot disagree.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import (
    DEFAULT_TASKS,
    ModelInfo,
    NetConfig,
    PreprocessConfig,
    TaskSpec,
    check_compatible,
    head_tasks,
)
from ..errors import CheckpointError
from ..io.outputs import atomic_outputs
from .network import MTSANet

FORMAT = "mtsa-checkpoint"
FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    net: MTSANet
    net_config: NetConfig
    preprocess: PreprocessConfig
    tasks: list[TaskSpec]
    info: ModelInfo
    sha256: str
    path: Path
    extra: dict[str, Any]

    def task(self, kind: str) -> TaskSpec | None:
        """The first task of this kind (``"segmentation"``: the model's GTV task, if it has one)."""
        return next((t for t in self.tasks if t.kind == kind), None)

    @property
    def heads(self) -> list[TaskSpec]:
        """The patient-level heads, in the classifier's (and the report's) order."""
        return head_tasks(self.tasks)


def save_checkpoint(
    path: str | Path,
    net: torch.nn.Module,
    net_config: NetConfig,
    preprocess: PreprocessConfig,
    tasks: list[TaskSpec] | tuple[TaskSpec, ...] = DEFAULT_TASKS,
    info: ModelInfo | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves half a checkpoint."""
    _check_compatible(net_config, preprocess, tasks, str(path))
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "net_config": net_config.to_dict(),
        "preprocess": preprocess.to_dict(),
        "tasks": [t.to_dict() for t in tasks],
        "info": (info or ModelInfo()).to_dict(),
        "extra": extra or {},
    }
    path = Path(path)
    with atomic_outputs([path]) as (tmp,):
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load, check and build the network; every failure is a ``CheckpointError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "disallowed object"
        raise CheckpointError(f"{path}: refused: holds objects that are not plain data ({reason[:160]})") from None
    except Exception as exc:  # truncated zip, not a torch file, ...
        raise CheckpointError(f"{path}: damaged or not a checkpoint ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an MTSASegmenter checkpoint (no '{FORMAT}' format tag)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {payload.get('format_version')} differs from this code's {FORMAT_VERSION}"
        )
    try:
        net_config = NetConfig.from_dict(payload["net_config"])
        preprocess = PreprocessConfig.from_dict(payload["preprocess"])
        tasks = [TaskSpec.from_dict(t) for t in payload["tasks"]]
        info = ModelInfo.from_dict(payload["info"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: configuration does not match this code ({exc})") from None
    _check_compatible(net_config, preprocess, tasks, str(path))
    net = MTSANet(net_config)
    _load_weights(net, payload["state_dict"], path)
    net.to(device).eval()
    return LoadedModel(
        net=net,
        net_config=net_config,
        preprocess=preprocess,
        tasks=tasks,
        info=info,
        sha256=file_sha256(path),
        path=path,
        extra=payload.get("extra", {}),
    )


def _check_compatible(net_config: NetConfig, preprocess: PreprocessConfig, tasks, name: str) -> None:
    try:
        check_compatible(net_config, preprocess, tasks)
    except ValueError as exc:
        raise CheckpointError(f"{name}: {exc}") from None


def _load_weights(net: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Name the first differences (missing, unexpected, or shape) instead of torch's long dump."""
    expected = net.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k} has shape {tuple(state[k].shape)} in the checkpoint but {tuple(v.shape)} in MTSANet"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CheckpointError(f"{path}: weights do not match the stored configuration: {'; '.join(problems[:3])}{more}")
    net.load_state_dict(state, strict=True)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
