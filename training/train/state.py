"""What carries a run over from one epoch to the next and through ``last.pt``: the early-stopping
counters, the random generators, and the resumable training state as plain data (loadable with
``weights_only=True``), so an interrupted run resumes exactly where it stopped."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from MTSASegmenterLib.errors import MTSAError
from MTSASegmenterLib.io.outputs import atomic_outputs
from torch import nn

from .config import RESUMABLE, TrainConfig, learning_rate

LAST_FORMAT = "mtsa-train-state-1"


@dataclass
class TrainState:
    """Early stopping's bookkeeping (stored in ``last.pt``)."""

    epoch: int = -1
    best_val: float = float("inf")
    best_epoch: int = -1
    since_best: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Weights, dropout and DataLoader base seeds come from the global generators: fix all three."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def save_last(path: Path, cfg: TrainConfig, state: TrainState, modules: dict[str, Any]) -> None:
    """Write ``last.pt`` atomically: ``modules`` maps net, loss, optimizer and scaler to their objects."""
    payload = {
        "format": LAST_FORMAT,
        "config": cfg.to_dict(),
        **{name: module.state_dict() for name, module in modules.items()},
        "state": asdict(state),
        "rng": rng_state(),
    }
    with atomic_outputs([path]) as (tmp,):
        torch.save(payload, tmp)


def _same_setting(saved: dict[str, Any], key: str, now: Any, default: Any) -> bool:
    """``now`` equals ``saved[key]``, counting a setting the trainer gained after the run started
    (absent from ``saved``, at the top or inside a group such as ``loss``) as equal while it holds its
    default: an upgrade alone must not block a resume. A group's setting since removed still differs."""
    if key not in saved:
        return now == default
    value = saved[key]
    if isinstance(value, dict) and isinstance(now, dict) and isinstance(default, dict):
        return set(value) <= set(now) and all(_same_setting(value, k, now[k], default.get(k)) for k in now)
    return value == now


def load_last(path: Path, cfg: TrainConfig, modules: dict[str, nn.Module | Any]) -> TrainState:
    """Restore the modules and the random generators from ``last.pt``; refused (naming the file)
    unless it is this trainer's and was written with the same settings."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("format") != LAST_FORMAT:
        raise MTSAError(f"{path}: not a training state of this trainer ({saved.get('format')!r})")
    old, now = saved["config"], cfg.to_dict()
    defaults = TrainConfig(data=cfg.data, out=cfg.out).to_dict()
    differing = sorted(k for k in now if k not in RESUMABLE and not _same_setting(old, k, now[k], defaults[k]))
    if differing:
        raise MTSAError(f"{path}: cannot resume with different {', '.join(differing)} than the interrupted run")
    done = saved["state"]["epoch"] + 1
    if any(learning_rate(old["lr"], old["epochs"], old.get("lr_decay_epochs", 0), e) != cfg.learning_rate(e) for e in range(done)):
        raise MTSAError(f"{path}: cannot resume with epochs and lr_decay_epochs that change the learning rate of the "
                        f"{done} epochs already trained")
    for name, module in modules.items():
        module.load_state_dict(saved[name])
    set_rng_state(saved["rng"])
    return TrainState(**saved["state"])
