"""The trainer: the paper's recipe (Adam 3e-4, multi-task loss, early stopping after 20 epochs
without validation-loss improvement) on a cohort folder, on one device or several via torchrun.

Outputs in ``out``: ``best.pt`` (a checkpoint for ``mtsa predict``, best validation loss, with
provenance), ``last.pt`` (everything needed to resume: weights, optimiser, epoch, RNG states, as
plain data loadable with ``weights_only=True``), ``log.csv``, ``tb/`` (TensorBoard), and the slice
cache (``slice_cache/`` unless ``cache_dir`` is given, so that ablations can share one).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any, Callable

import MTSASegmenterLib
import numpy as np
import torch
from MTSASegmenterLib.config import (
    DEFAULT_TASKS,
    NORMALISATIONS,
    ModelInfo,
    NetConfig,
    PreprocessConfig,
    TaskSpec,
    check_compatible,
    head_slices,
    head_tasks,
)
from MTSASegmenterLib.errors import MTSAError
from MTSASegmenterLib.io.outputs import atomic_outputs
from MTSASegmenterLib.model.checkpoint import save_checkpoint
from MTSASegmenterLib.model.network import MTSANet
from MTSASegmenterLib.model.presets import PRESETS
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..data.augmentation import default_augmentation
from ..data.cohort import SPLIT_KINDS, cohort_fingerprint, read_cohort, split_cohort
from ..data.formats import add_cohort_options
from ..data.slices import SliceCache, SliceDataset
from . import ddp
from .losses import WEIGHTINGS, LossConfig, MultiTaskLoss

Progress = Callable[[float, str], None]
LAST_FORMAT = "mtsa-train-state-1"
# Fields that may change between an interrupted run and its resumption.
_RESUMABLE = {"epochs", "patience", "resume", "device", "num_workers", "progress_bar", "command", "cache_dir", "max_minutes", "model_name"}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; stored in the checkpoint's provenance."""

    data: Path
    out: Path
    split: str = "random"  # random | temporal | site
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    cutoff: date | None = None  # temporal split: test = acquired on or after this date
    test_sites: tuple[str, ...] | None = None  # site split: default every site but the most common
    gtv_labels: tuple[int, ...] | None = None  # nnU-Net / BraTS folders: the mask labels that are the GTV (formats.py)
    labels: Path | None = None  # nnU-Net / BraTS folders: the labels CSV (default: labels.csv in the folder)
    seed: int = 0
    epochs: int = 200  # at most; early stopping usually ends the run first
    patience: int = 20
    max_minutes: float | None = None  # wall-clock budget: no new epoch starts after it
    lr: float = 3e-4
    batch_size: int = 16
    net: NetConfig = field(default_factory=NetConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    tasks: tuple[TaskSpec, ...] = DEFAULT_TASKS  # those the network's branches leave active are trained
    free_share: float = 0.0  # share of tumour-free tissue slices among training slices (paper: 0)
    augment: bool = True
    cache_dir: Path | None = None
    device: str = "auto"  # auto | cpu | cuda | mps
    amp: bool = True  # mixed precision, on CUDA only
    num_workers: int = 2
    resume: bool = False
    synthetic_only: bool = True  # the data are the phantom: the model is stamped not for clinical use
    model_name: str = "MTSA-Net"  # as checkpoint and reports name the model (a preset's name by default)
    command: str = ""
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if self.split not in SPLIT_KINDS:
            raise ValueError(f"split must be one of {', '.join(SPLIT_KINDS)}, got {self.split!r}")
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise ValueError("epochs, patience and batch_size must be positive")
        if sum(t.kind == "segmentation" for t in self.tasks) != 1:
            raise ValueError("the task list needs exactly one segmentation task")
        check_compatible(self.net, self.preprocess, self.active_tasks)

    @property
    def active_tasks(self) -> list[TaskSpec]:
        """The tasks this network trains: the segmentation if it segments, the heads if it classifies."""
        return [t for t in self.tasks if (self.net.segmentation if t.kind == "segmentation" else self.net.classification)]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (NetConfig, PreprocessConfig)):
                value = value.to_dict()
            elif f.name == "tasks":
                value = [t.to_dict() for t in value]
            elif isinstance(value, LossConfig):
                value = asdict(value)
            elif isinstance(value, (Path, date)):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            d[f.name] = value
        return d


def seed_everything(seed: int) -> None:
    """Weights, dropout and DataLoader base seeds come from the global generators: fix all three."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def _code_version() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return MTSASegmenterLib.__version__ + (f"+{sha}" if sha else "")


class Objective(nn.Module):
    """Network and loss in one module, so DDP also averages the gradients of the learnable sigmas."""

    def __init__(self, net: MTSANet, loss: MultiTaskLoss) -> None:
        super().__init__()
        self.net = net
        self.loss = loss

    def forward(self, image: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor):
        seg, cls = self.net(image)
        total, parts = self.loss(seg, cls, mask, targets)
        return total, parts, seg, cls


@dataclass
class _State:
    """What carries over between epochs (and through ``last.pt``)."""

    epoch: int = -1
    best_val: float = float("inf")
    best_epoch: int = -1
    since_best: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)


def _validate(objective: nn.Module, loader: DataLoader, d: ddp.Dist, use_amp: bool, heads: list[TaskSpec]) -> dict[str, float]:
    """Validation loss (slice-weighted mean), pooled hard Dice, and per head the slice-level
    accuracy (classification) or mean absolute error in the head's unit (regression)."""
    objective.eval()
    columns = head_slices(heads)
    # loss sum, slices, intersection, predicted + true pixels, then per head: score sum, labelled slices
    sums = torch.zeros(4 + 2 * len(heads), dtype=torch.float64)
    with torch.no_grad():
        for batch in loader:
            image, mask, targets = (batch[k].to(d.device, non_blocking=True) for k in ("image", "mask", "targets"))
            image = image.contiguous(memory_format=torch.channels_last)
            with torch.autocast(d.device.type, dtype=torch.float16, enabled=use_amp):
                total, _, seg, cls = objective(image, mask, targets)
            n = image.shape[0]
            sums[0] += float(total) * n
            sums[1] += n
            if seg is not None:
                pred = seg.float() > 0
                sums[2] += float((pred & (mask > 0.5)).sum())
                sums[3] += float(pred.sum() + (mask > 0.5).sum())
            if cls is None:
                continue
            for i, task in enumerate(heads):
                target = targets[:, i]
                known = torch.isfinite(target)
                logits = cls[:, columns[task.name]].float()[known]
                if task.kind == "regression":
                    sums[4 + 2 * i] += float((logits[:, 0] - target[known]).abs().sum()) * task.scale
                else:
                    sums[4 + 2 * i] += float((logits.argmax(1) == target[known].long()).sum())
                sums[5 + 2 * i] += float(known.sum())
    sums = ddp.all_reduce_sum(d, sums)
    out = {"val_loss": float(sums[0] / sums[1])}
    if sums[3] > 0:
        out["val_dice"] = float(2 * sums[2] / sums[3])
    for i, task in enumerate(heads):
        if sums[5 + 2 * i] > 0:
            out[f"val_{task.key}_{'mae' if task.kind == 'regression' else 'accuracy'}"] = float(sums[4 + 2 * i] / sums[5 + 2 * i])
    return out


def train(cfg: TrainConfig, progress: Progress | None = None) -> Path:
    """Train; returns the path of the best checkpoint (lowest validation loss)."""
    d = ddp.setup(cfg.device)
    try:
        best = _train(cfg, d, progress)
        # Leave together: a rank that tears down while rank 0 still writes aborts in gloo's threads.
        ddp.barrier(d)
        return best
    finally:
        ddp.teardown(d)


def _train(cfg: TrainConfig, d: ddp.Dist, progress: Progress | None) -> Path:
    out = Path(cfg.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
    if last_path.exists() and not cfg.resume:
        raise MTSAError(f"{out}: holds a previous run (last.pt); pass --resume to continue it or choose another --out")
    seed_everything(cfg.seed)

    # Data: patient-level split, then slices from the cache (built by the main process only).
    split = split_cohort(
        read_cohort(cfg.data, cfg.gtv_labels, cfg.labels), cfg.split, cfg.seed,
        val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, cutoff=cfg.cutoff, test_sites=cfg.test_sites,
        stratify=next((t.label_column for t in cfg.tasks if t.kind in ("binary", "multiclass")), "egfr"),
    )
    if not split.val:
        raise MTSAError(f"{cfg.data}: the {cfg.split} split leaves no validation case; early stopping needs one")
    cache = SliceCache(cfg.cache_dir or out / "slice_cache", cfg.preprocess)
    if d.main:
        for case in tqdm(split.train + split.val, desc="caching slices", disable=not cfg.progress_bar, leave=False):
            cache.get(case)
    ddp.barrier(d)
    augment = default_augmentation(cfg.preprocess.clip_max) if cfg.augment else None
    context = cfg.preprocess.context_slices
    tasks = cfg.active_tasks
    heads = head_tasks(tasks)
    train_set = SliceDataset([cache.get(c) for c in split.train], context, cfg.free_share, augment, cfg.seed,
                             [c.targets(heads) for c in split.train])
    val_set = SliceDataset([cache.get(c) for c in split.val], context, cfg.free_share, None, cfg.seed,
                           [c.targets(heads) for c in split.val])
    if not len(train_set) or not len(val_set):
        raise MTSAError(f"{cfg.data}: no tumour-bearing slices in the training or validation cases (empty masks?)")
    # One sampler type for one or many processes: seeded by (seed, epoch), so a resumed run replays.
    train_sampler = DistributedSampler(train_set, d.world_size, d.rank, shuffle=True, seed=cfg.seed)
    val_sampler = DistributedSampler(val_set, d.world_size, d.rank, shuffle=False)
    loader_args = {"batch_size": cfg.batch_size, "num_workers": cfg.num_workers, "pin_memory": d.device.type == "cuda"}
    train_loader = DataLoader(train_set, sampler=train_sampler, **loader_args)
    val_loader = DataLoader(val_set, sampler=val_sampler, **loader_args)

    net = MTSANet(cfg.net).to(memory_format=torch.channels_last)  # ~1.8x faster convolutions on CPU
    loss = MultiTaskLoss(cfg.loss, tasks)
    objective: nn.Module = Objective(net, loss).to(d.device)
    if d.world_size > 1:
        objective = DistributedDataParallel(objective, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    optimizer = torch.optim.Adam([p for p in objective.parameters() if p.requires_grad], lr=cfg.lr)
    use_amp = cfg.amp and d.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    state = _State()
    if cfg.resume and last_path.exists():
        saved = torch.load(last_path, map_location="cpu", weights_only=True)
        _check_resumable(saved, cfg, last_path)
        net.load_state_dict(saved["net"])
        loss.load_state_dict(saved["loss"])
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        state = _State(**saved["state"])
        _set_rng_state(saved["rng"])

    provenance = {
        "data": str(Path(cfg.data).resolve()),
        "cases_csv_sha256": cohort_fingerprint(cfg.data, cfg.gtv_labels, cfg.labels),
        "split": split.summary(),
        "slices": {"train": len(train_set), "val": len(val_set)},
        "seed": cfg.seed,
        "command": cfg.command,
        "config": cfg.to_dict(),
        "world_size": d.world_size,
        "device": str(d.device),
        "torch": str(torch.__version__),
    }
    code_version = _code_version()  # once per run, not a git subprocess per improved epoch
    writer = None
    log_path = out / "log.csv"
    if d.main:
        from torch.utils.tensorboard import (
            SummaryWriter,  # imported late: only the main process logs
        )

        writer = SummaryWriter(str(out / "tb"))
    first = state.epoch + 1
    run_started = time.perf_counter()
    for epoch in range(first, cfg.epochs):
        if state.since_best >= cfg.patience:  # early-stopped (also when resuming a finished run)
            break
        if cfg.max_minutes is not None and time.perf_counter() - run_started > 60 * cfg.max_minutes:
            if d.main:
                tqdm.write(f"time budget of {cfg.max_minutes:g} min spent: stopping before epoch {epoch + 1}")
            break
        started = time.perf_counter()
        train_set.set_epoch(epoch)
        train_sampler.set_epoch(epoch)
        objective.train()
        sums: dict[str, float] = {}
        seen = 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (d.main and cfg.progress_bar), leave=False)
        for step, batch in enumerate(bar):
            image, mask, targets = (batch[k].to(d.device, non_blocking=True) for k in ("image", "mask", "targets"))
            image = image.contiguous(memory_format=torch.channels_last)
            with torch.autocast(d.device.type, dtype=torch.float16, enabled=use_amp):
                total, parts, _, _ = objective(image, mask, targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            scaler.step(optimizer)
            scaler.update()
            n = image.shape[0]
            seen += n
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            bar.set_postfix(loss=f"{sums['total'] / seen:.4f}")
            if progress is not None and d.main:
                done = (epoch - first + (step + 1) / len(train_loader)) / (cfg.epochs - first)
                progress(done, f"epoch {epoch + 1}: loss {sums['total'] / seen:.4f}")
        train_seconds = time.perf_counter() - started
        row: dict[str, Any] = {"epoch": epoch + 1}
        row.update({f"train_{k}": v / seen for k, v in sums.items()})
        row.update(_validate(objective, val_loader, d, use_amp, heads))
        sigmas = {f"sigma_{k}": v for k, v in loss.sigmas().items()}
        row.update(
            **sigmas, lr=optimizer.param_groups[0]["lr"],
            train_slices_per_s=seen * d.world_size / train_seconds, seconds=time.perf_counter() - started,
        )
        state.epoch = epoch
        if row["val_loss"] < state.best_val:
            state.best_val, state.best_epoch, state.since_best = row["val_loss"], epoch + 1, 0
            state.best_metrics = {k: v for k, v in row.items() if k.startswith("val_")}
            if d.main:
                info = ModelInfo(
                    name=cfg.model_name,
                    version=MTSASegmenterLib.__version__,
                    synthetic_only=cfg.synthetic_only,
                    training=provenance,
                    metrics={"best_epoch": epoch + 1, **state.best_metrics, **sigmas},
                    code_version=code_version,
                )
                save_checkpoint(best_path, net, cfg.net, cfg.preprocess, tasks, info)
        else:
            state.since_best += 1
        if d.main:
            _log(log_path, writer, row)
            _save_last(last_path, net, loss, optimizer, scaler, state, cfg)
            if cfg.progress_bar:
                dice = f"  dice {row['val_dice']:.3f}" if "val_dice" in row else ""
                tqdm.write(
                    f"epoch {epoch + 1}: train {row['train_total']:.4f}  val {row['val_loss']:.4f}{dice}"
                    f"  ({row['train_slices_per_s']:.1f} slices/s)"
                )
    if writer is not None:
        writer.close()
    if progress is not None and d.main:
        progress(1.0, f"best epoch {state.best_epoch}: validation loss {state.best_val:.4f}")
    return best_path


def _log(path: Path, writer, row: dict[str, Any]) -> None:
    """Append one epoch to log.csv (header rewritten if the columns change) and to TensorBoard."""
    rows = list(csv.DictReader(open(path, newline=""))) if path.exists() else []
    rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    for k, v in row.items():
        if k != "epoch":
            writer.add_scalar(k.replace("_", "/", 1), v, row["epoch"])
    writer.flush()


def _save_last(path: Path, net: nn.Module, loss: nn.Module, optimizer, scaler, state: _State, cfg: TrainConfig) -> None:
    payload = {
        "format": LAST_FORMAT,
        "config": cfg.to_dict(),
        "net": net.state_dict(),
        "loss": loss.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "state": asdict(state),
        "rng": _rng_state(),
    }
    with atomic_outputs([path]) as (tmp,):
        torch.save(payload, tmp)


def _check_resumable(saved: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    if saved.get("format") != LAST_FORMAT:
        raise MTSAError(f"{path}: not a training state of this trainer ({saved.get('format')!r})")
    now = cfg.to_dict()
    differing = sorted(k for k in now if k not in _RESUMABLE and saved["config"].get(k) != now[k])
    if differing:
        raise MTSAError(f"{path}: cannot resume with different {', '.join(differing)} than the interrupted run")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options of one training run that ``mtsa train`` and ``mtsa ablations`` share: everything but
    the branches, the loss weighting and focal alpha (an ablation sets those per variant) and --resume."""
    p.add_argument("--data", type=Path, required=True, help="cohort folder: cases.csv, an nnU-Net raw dataset or BraTS-style folders")
    add_cohort_options(p)
    p.add_argument("--split", choices=SPLIT_KINDS, default="random")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--cutoff", type=date.fromisoformat, help="temporal split: first test date (YYYY-MM-DD)")
    p.add_argument("--test-sites", help="site split: comma-separated test sites")
    p.add_argument("--epochs", type=int, default=200, help="at most (early stopping, --patience)")
    p.add_argument("--patience", type=int, default=20)
    p.add_argument("--max-minutes", type=float, help="wall-clock budget; no epoch starts after it")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--input-size", type=int, default=384, help="model grid size S (multiple of 16)")
    p.add_argument("--width", type=int, default=32, help="channels of the first MSA block")
    p.add_argument("--spacing", type=float, default=1.0, help="in-plane spacing of the model grid (mm)")
    p.add_argument("--context", type=int, default=1, help="neighbour slices on each side (channels = 2*context+1)")
    p.add_argument("--min-slice-mm", type=float, default=1.0, help="thinnest axial slice spacing of the model grid (mm)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="mtsa-net",
                   help="task list, intensity mapping and network options of one of the papers' systems (see presets.py)")
    p.add_argument("--normalisation", choices=NORMALISATIONS,
                   help="intensity mapping (default: the preset's): tissue median (MR, the paper), tissue percentiles (MR) or a CT window (HU)")
    p.add_argument("--window", type=float, nargs=2, metavar=("LOW", "HIGH"), help="ct_window: HU range (default -100 250)")
    p.add_argument("--percentiles", type=float, nargs=2, metavar=("LOW", "HIGH"), help="percentile: tissue percentiles (default 1 99)")
    p.add_argument("--roi-weighting", action="store_true", help="core / rim / surroundings weighting of the classifier's input")
    p.add_argument("--tasks", type=Path, help="JSON list of tasks (config.TaskSpec fields); default: GTV + EGFR")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--beta", type=float, default=1 / 25000, help="weight of the summed focal loss")
    p.add_argument("--free-share", type=float, default=0.0, help="share of tumour-free tissue slices")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--cache-dir", type=Path)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--no-amp", action="store_true")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--real-data", action="store_true", help="the cohort is not synthetic (clears the not-for-clinical-use stamp)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--name", help="the model's name in its checkpoint and reports (default: the preset's, e.g. MTSA-Net)")


def build_parser(prog: str = "mtsa train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Train MTSA-Net on a cohort folder (cases.csv + volumes).")
    add_run_options(p)
    p.add_argument("--out", type=Path, required=True, help="output folder (best.pt, last.pt, log.csv, tb/)")
    p.add_argument("--task", choices=("both", "segmentation", "classification"), default="both",
                   help="train the GTV and the heads (both), or one branch only (the paper's baselines)")
    p.add_argument("--weighting", choices=WEIGHTINGS, default=LossConfig.weighting)
    p.add_argument("--focal-alpha", type=float, default=LossConfig.focal_alpha)
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    return p


def read_tasks(path: Path) -> tuple[TaskSpec, ...]:
    """A task list from JSON; errors name the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise ValueError("expected a JSON list of tasks")
        return tuple(TaskSpec.from_dict(t) for t in data)
    except OSError as exc:
        raise MTSAError(f"{path}: cannot read the task list ({exc.strerror})") from None
    except (ValueError, TypeError, MTSAError) as exc:
        raise MTSAError(f"{path}: not a valid task list ({exc})") from None


def config_from_args(args: argparse.Namespace, command: str = "") -> TrainConfig:
    preset = PRESETS[args.preset]
    tasks = read_tasks(args.tasks) if args.tasks else preset.tasks
    segmentation, classification = args.task != "classification", args.task != "segmentation"
    net = NetConfig(
        in_channels=2 * args.context + 1, base_width=args.width, input_size=args.input_size,
        num_classes=max(1, sum(t.outputs for t in head_tasks(tasks))), segmentation=segmentation, classification=classification,
        roi_weighting=(args.roi_weighting or preset.net.get("roi_weighting", False)) and segmentation and classification,
    )
    intensity = dict(preset.preprocess)
    if args.normalisation:
        intensity = {"normalisation": args.normalisation, "clip_max": 1.0 if args.normalisation == "ct_window" else PreprocessConfig.clip_max}
    intensity.update({k: tuple(v) for k, v in (("window", args.window), ("percentiles", args.percentiles)) if v})
    preprocess = PreprocessConfig(
        spacing_mm=args.spacing, input_size=args.input_size, context_slices=args.context, min_slice_mm=args.min_slice_mm, **intensity
    )
    return TrainConfig(
        data=args.data, out=args.out, split=args.split, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
        cutoff=args.cutoff, gtv_labels=args.gtv_labels, labels=args.labels, test_sites=tuple(s.strip() for s in args.test_sites.split(",")) if args.test_sites else None,
        seed=args.seed, epochs=args.epochs, patience=args.patience, max_minutes=args.max_minutes, lr=args.lr, batch_size=args.batch_size,
        net=net, preprocess=preprocess,
        loss=LossConfig(weighting=args.weighting, beta=args.beta, focal_alpha=args.focal_alpha), tasks=tasks,
        free_share=args.free_share, augment=not args.no_augment, cache_dir=args.cache_dir, device=args.device,
        amp=not args.no_amp, num_workers=args.workers, resume=args.resume, synthetic_only=not args.real_data,
        model_name=args.name or preset.name, command=command, progress_bar=not args.no_progress,
    )


def main(argv: list[str] | None = None, prog: str = "mtsa train") -> int:
    """``mtsa train``: exit 0 with the best checkpoint's path on stdout; one-line error otherwise.

    Several GPUs: ``torchrun --nproc_per_node N -m training.train.loop --data ... --out ...``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)
    try:
        cfg = config_from_args(args, command=" ".join([prog, *argv]))
        best = train(cfg)
    except (MTSAError, ValueError) as exc:  # ValueError: an inconsistent configuration
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":
        print(best)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and __name__ == "__main__":
        # Under torchrun, gloo's worker threads can abort the interpreter's finalisation after a
        # finished run (SIGABRT, "terminate called without an active exception"; seen on a busy
        # 2-core CPU): everything is written and the process group destroyed, so leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
