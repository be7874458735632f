"""The trainer: the paper's recipe (Adam 3e-4, multi-task loss, early stopping after 20 epochs
without validation-loss improvement) on a cohort folder, on one device or several via torchrun.

``Trainer.run`` reads like nnU-Net's ``run_training``: a loop over hooks (``on_train_start``,
``train_step``, ``validation_step``, ``on_epoch_end``, ``on_train_end``), each doing one thing.

Outputs in ``out``: ``best.pt`` (a checkpoint for ``mtsa predict``, best validation loss, with
provenance), ``final.pt`` (the same for the last epoch trained: the model of a run whose learning
rate anneals, when the noisy validation loss no longer tells epochs apart), ``last.pt`` (everything
needed to resume, see ``state``), ``log.csv``, ``tb/`` (TensorBoard), and the slice cache
(``slice_cache/`` unless ``cache_dir`` is given, so that ablations can share one). The command line
is ``cli.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import MTSASegmenterLib
import torch
from MTSASegmenterLib.config import ModelInfo, head_slices, head_tasks
from MTSASegmenterLib.errors import InputError, MTSAError
from MTSASegmenterLib.model.checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from MTSASegmenterLib.model.network import MTSANet
from MTSASegmenterLib.progress import Progress
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..data.augmentation import default_augmentation
from ..data.cohort import Case, cohort_fingerprint, read_cohort, split_cohort
from ..data.slices import SliceCache, SliceDataset
from . import ddp
from .config import TrainConfig
from .epoch_log import EpochLog
from .losses import MultiTaskLoss
from .state import TrainState, load_last, save_last, seed_everything


def code_version() -> str:
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


class Trainer:
    """One training run. Only the main process writes files, logs and progress."""

    def __init__(self, cfg: TrainConfig, d: ddp.Dist, progress: Progress | None = None) -> None:
        self.cfg, self.d, self.progress = cfg, d, progress
        self.out = Path(cfg.out)
        self.last_path, self.best_path, self.final_path = (self.out / f"{n}.pt" for n in ("last", "best", "final"))
        self.tasks = cfg.active_tasks
        self.heads = head_tasks(self.tasks)
        self.use_amp = cfg.amp and d.device.type == "cuda"
        self.state = TrainState()
        self.log: EpochLog | None = None
        self.final_metrics: dict[str, float] | None = None  # the last epoch trained by this call

    def run(self) -> Path:
        """Train; returns the path of the best checkpoint (lowest validation loss)."""
        self.on_train_start()
        for epoch in range(self.first_epoch, self.cfg.epochs):
            if self.should_stop(epoch):
                break
            self.on_train_epoch_start(epoch)
            for step, batch in enumerate(self.train_batches):
                self.train_step(batch, step)
            self.on_validation_epoch_start()
            for batch in self.val_loader:
                self.validation_step(batch)
            self.on_epoch_end()
        self.on_train_end()
        return self.best_path

    # ------------------------------------------------------------------ start and end

    def on_train_start(self) -> None:
        cfg = self.cfg
        cases = read_cohort(cfg.data, cfg.gtv_labels, cfg.labels)  # bad input refused before anything is written
        init = initial_model(cfg) if cfg.init else None  # refused before anything is written; kept only until loaded
        self.init_sha256 = init.sha256 if init else None
        if self.d.main:
            self.out.mkdir(parents=True, exist_ok=True)
        if self.last_path.exists() and not cfg.resume:
            raise MTSAError(f"{self.out}: holds a previous run (last.pt); pass --resume to continue it or choose another --out")
        seed_everything(cfg.seed)
        self._prepare_data(cases)
        self._build_model(init)
        if cfg.resume and self.last_path.exists():
            self.state = load_last(self.last_path, cfg, self._resumable())
        self.provenance = self._provenance()
        self.code_version = code_version()  # once per run, not a git subprocess per improved epoch
        if self.d.main:
            self.log = EpochLog(self.out, echo=cfg.progress_bar)
        self.first_epoch = self.state.epoch + 1
        self.run_started = time.perf_counter()

    def _prepare_data(self, cases: list[Case]) -> None:
        """Patient-level split, then slices from the cache (built by the main process only)."""
        cfg, d = self.cfg, self.d
        self.split = split_cohort(
            cases, cfg.split, cfg.seed, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
            cutoff=cfg.cutoff, test_sites=cfg.test_sites, stratify=cfg.stratify_task,
        )
        if not self.split.val:
            raise MTSAError(f"{cfg.data}: the {cfg.split} split leaves no validation case; early stopping needs one")
        # every label cell is checked before minutes of caching
        train_targets, val_targets = ([c.targets(self.heads) for c in group] for group in (self.split.train, self.split.val))
        cache = SliceCache(cfg.cache_dir or self.out / "slice_cache", cfg.preprocess)
        if d.main:
            for case in tqdm(self.split.train + self.split.val, desc="caching slices", disable=not cfg.progress_bar, leave=False):
                cache.get(case)
        ddp.barrier(d)
        augment = default_augmentation(cfg.preprocess.clip_max) if cfg.augment else None
        context = cfg.preprocess.context_slices
        self.train_set = SliceDataset([cache.get(c) for c in self.split.train], context, cfg.free_share, augment, cfg.seed,
                                      train_targets)
        val_set = SliceDataset([cache.get(c) for c in self.split.val], context, cfg.free_share, None, cfg.seed, val_targets)
        if not len(self.train_set) or not len(val_set):
            raise MTSAError(f"{cfg.data}: no tumour-bearing slices in the training or validation cases (empty masks?)")
        # One sampler type for one or many processes: seeded by (seed, epoch), so a resumed run replays.
        self.train_sampler = DistributedSampler(self.train_set, d.world_size, d.rank, shuffle=True, seed=cfg.seed)
        loader_args = {"batch_size": cfg.batch_size, "num_workers": cfg.num_workers, "pin_memory": d.device.type == "cuda"}
        self.train_loader = DataLoader(self.train_set, sampler=self.train_sampler, **loader_args)
        self.val_loader = DataLoader(val_set, sampler=DistributedSampler(val_set, d.world_size, d.rank, shuffle=False), **loader_args)

    def _build_model(self, init: LoadedModel | None) -> None:
        cfg, d = self.cfg, self.d
        self.net = MTSANet(cfg.net).to(memory_format=torch.channels_last)  # ~1.8x faster convolutions on CPU
        self.loss = MultiTaskLoss(cfg.loss, self.tasks)
        self.objective: nn.Module = Objective(self.net, self.loss).to(d.device)
        if d.world_size > 1:
            self.objective = DistributedDataParallel(self.objective, device_ids=[d.device.index] if d.device.type == "cuda" else None)
        self.optimizer = torch.optim.Adam([p for p in self.objective.parameters() if p.requires_grad], lr=cfg.lr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        if init is not None:
            self.net.load_state_dict(init.net.state_dict())

    def _resumable(self) -> dict[str, Any]:
        """What ``last.pt`` holds besides the counters and the random generators."""
        return {"net": self.net, "loss": self.loss, "optimizer": self.optimizer, "scaler": self.scaler}

    def _provenance(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "data": str(Path(cfg.data).resolve()),
            "cases_csv_sha256": cohort_fingerprint(cfg.data, cfg.gtv_labels, cfg.labels),
            "split": self.split.summary(),
            "slices": {"train": len(self.train_set), "val": len(self.val_loader.dataset)},
            "seed": cfg.seed,
            "init_sha256": self.init_sha256,
            "command": cfg.command,
            "config": cfg.to_dict(),
            "world_size": self.d.world_size,
            "device": str(self.d.device),
            "torch": str(torch.__version__),
        }

    def should_stop(self, epoch: int) -> bool:
        """Early-stopped (also when resuming a finished run), or the time budget is spent."""
        cfg = self.cfg
        if self.state.since_best >= cfg.patience:
            return True
        if cfg.max_minutes is not None and time.perf_counter() - self.run_started > 60 * cfg.max_minutes:
            if self.d.main:
                tqdm.write(f"time budget of {cfg.max_minutes:g} min spent: stopping before epoch {epoch + 1}")
            return True
        return False

    def on_train_end(self) -> None:
        if self.log is not None:
            self.log.close()
        if self.final_metrics is not None and self.d.main:
            self._save_checkpoint(self.final_path, self.final_metrics)
        if self.progress is not None and self.d.main:
            self.progress(1.0, f"best epoch {self.state.best_epoch}: validation loss {self.state.best_val:.4f}")

    # ------------------------------------------------------------------ one epoch

    def on_train_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch
        self.epoch_started = time.perf_counter()
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.learning_rate(epoch)
        self.train_set.set_epoch(epoch)
        self.train_sampler.set_epoch(epoch)
        self.objective.train()
        self.train_sums: dict[str, float] = {}
        self.seen = 0
        self.skipped = 0
        self.train_batches = tqdm(self.train_loader, desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                                  disable=not (self.d.main and self.cfg.progress_bar), leave=False)

    def _inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, mask, targets = (batch[k].to(self.d.device, non_blocking=True) for k in ("image", "mask", "targets"))
        return image.contiguous(memory_format=torch.channels_last), mask, targets

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> None:
        image, mask, targets = self._inputs(batch)
        # one NaN sample would poison every weight and, through batch norm, every statistic
        finite = ddp.all_reduce_sum(self.d, torch.tensor([float(torch.isfinite(image).all())], dtype=torch.float64))
        if int(finite.item()) < self.d.world_size:
            self.skipped += 1
            return
        with torch.autocast(self.d.device.type, dtype=torch.float16, enabled=self.use_amp):
            total, parts, _, _ = self.objective(image, mask, targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        n = image.shape[0]
        self.seen += n
        for k, v in parts.items():
            self.train_sums[k] = self.train_sums.get(k, 0.0) + float(v) * n
        mean_loss = self.train_sums["total"] / self.seen
        self.train_batches.set_postfix(loss=f"{mean_loss:.4f}")
        if self.progress is not None and self.d.main:
            done = (self.epoch - self.first_epoch + (step + 1) / len(self.train_loader)) / (self.cfg.epochs - self.first_epoch)
            self.progress(done, f"epoch {self.epoch + 1}: loss {mean_loss:.4f}")

    def on_validation_epoch_start(self) -> None:
        if self.skipped:
            if self.skipped == len(self.train_loader):
                raise MTSAError(f"{self.cfg.data}: every batch of epoch {self.epoch + 1} was non-finite; check the images")
            if self.d.main:
                tqdm.write(f"epoch {self.epoch + 1}: skipped {self.skipped} of {len(self.train_loader)} batches with a non-finite image",
                           file=sys.stderr)
        self.train_seconds = time.perf_counter() - self.epoch_started
        self.objective.eval()
        # loss sum, slices, intersection, predicted + true pixels, then per head: score sum, labelled slices
        self.val_sums = torch.zeros(4 + 2 * len(self.heads), dtype=torch.float64)

    def validation_step(self, batch: dict[str, torch.Tensor]) -> None:
        """Adds the batch's loss, hard-Dice counts and per head the slice-level accuracy
        (classification) or absolute error in the head's unit (regression) to the epoch's sums."""
        image, mask, targets = self._inputs(batch)
        sums = self.val_sums
        with torch.no_grad(), torch.autocast(self.d.device.type, dtype=torch.float16, enabled=self.use_amp):
            total, _, seg, cls = self.objective(image, mask, targets)
        n = image.shape[0]
        sums[0] += float(total) * n
        sums[1] += n
        if seg is not None:
            pred = seg.float() > 0
            sums[2] += float((pred & (mask > 0.5)).sum())
            sums[3] += float(pred.sum() + (mask > 0.5).sum())
        if cls is None:
            return
        columns = head_slices(self.heads)
        for i, task in enumerate(self.heads):
            target = targets[:, i]
            known = torch.isfinite(target)
            logits = cls[:, columns[task.name]].float()[known]
            if task.kind == "regression":
                sums[4 + 2 * i] += float((logits[:, 0] - target[known]).abs().sum()) * task.scale
            else:
                sums[4 + 2 * i] += float((logits.argmax(1) == target[known].long()).sum())
            sums[5 + 2 * i] += float(known.sum())

    def _validation_metrics(self) -> dict[str, float]:
        """Validation loss (slice-weighted mean), pooled hard Dice, and per head accuracy or MAE, over all processes."""
        sums = ddp.all_reduce_sum(self.d, self.val_sums)
        out = {"val_loss": float(sums[0] / sums[1])}
        if sums[3] > 0:
            out["val_dice"] = float(2 * sums[2] / sums[3])
        for i, task in enumerate(self.heads):
            if sums[5 + 2 * i] > 0:
                out[f"val_{task.key}_{'mae' if task.kind == 'regression' else 'accuracy'}"] = float(sums[4 + 2 * i] / sums[5 + 2 * i])
        return out

    def on_epoch_end(self) -> None:
        """Log the epoch, keep the best checkpoint, count epochs without improvement, write last.pt."""
        epoch, state = self.epoch, self.state
        row: dict[str, Any] = {"epoch": epoch + 1, **{f"train_{k}": v / self.seen for k, v in self.train_sums.items()}}
        row.update(self._validation_metrics())
        sigmas = {f"sigma_{k}": v for k, v in self.loss.sigmas().items()}
        row.update(**sigmas, lr=self.optimizer.param_groups[0]["lr"],
                   train_slices_per_s=self.seen * self.d.world_size / self.train_seconds,
                   seconds=time.perf_counter() - self.epoch_started)
        state.epoch = epoch
        val = {k: v for k, v in row.items() if k.startswith("val_")}
        self.final_metrics = {"epoch": epoch + 1, **val, **sigmas}
        if row["val_loss"] < state.best_val:
            state.best_val, state.best_epoch, state.since_best = row["val_loss"], epoch + 1, 0
            state.best_metrics = val
            if self.d.main:
                self._save_checkpoint(self.best_path, {"best_epoch": state.best_epoch, **val, **sigmas})
        else:
            state.since_best += 1
        if self.log is not None:
            self.log.write(row)
            save_last(self.last_path, self.cfg, state, self._resumable())

    def _save_checkpoint(self, path: Path, metrics: dict[str, float]) -> None:
        cfg = self.cfg
        info = ModelInfo(
            name=cfg.model_name, version=MTSASegmenterLib.__version__, synthetic_only=cfg.synthetic_only,
            training=self.provenance, metrics=metrics, code_version=self.code_version,
        )
        save_checkpoint(path, self.net, cfg.net, cfg.preprocess, self.tasks, info)


def initial_model(cfg: TrainConfig) -> LoadedModel:
    """The checkpoint a fine-tuning run starts from, refused unless it has the run's network and preprocessing
    (but for the thick-slice limit: moving a network onto interpolated slices is what such a fine-tune is for)."""
    model = load_checkpoint(cfg.init)
    limit = {"max_slice_mm": cfg.preprocess.max_slice_mm}
    for what, a, b in (("network", model.net_config.to_dict(), cfg.net.to_dict()),
                       ("preprocessing", {**model.preprocess.to_dict(), **limit}, cfg.preprocess.to_dict())):
        if a != b:
            differ = ", ".join(f"{k} {a[k]} (run: {b[k]})" for k in a if a[k] != b.get(k))
            raise InputError(f"{cfg.init}: its {what} differs from this run's: {differ}")
    return model


def train(cfg: TrainConfig, progress: Progress | None = None) -> Path:
    """Train; returns the path of the best checkpoint (lowest validation loss)."""
    d = ddp.setup(cfg.device)
    try:
        best = Trainer(cfg, d, progress).run()
        # Leave together: a rank that tears down while rank 0 still writes aborts in gloo's threads.
        ddp.barrier(d)
        return best
    finally:
        ddp.teardown(d)
