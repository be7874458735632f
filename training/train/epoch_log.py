"""The run's log: one row per epoch in ``log.csv`` and in TensorBoard (``tb/``), and a line on the
terminal. Only the main process logs."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from MTSASegmenterLib.io.outputs import atomic_outputs
from tqdm import tqdm


class EpochLog:
    def __init__(self, out: Path, echo: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported late: only the main process logs

        self.path = out / "log.csv"
        self.echo = echo
        self.writer = SummaryWriter(str(out / "tb"))

    def write(self, row: dict[str, Any]) -> None:
        """Append one epoch to log.csv (rewritten whole, atomically, as the columns may change) and to TensorBoard."""
        rows = []
        if self.path.exists():
            with open(self.path, newline="") as f:
                rows = list(csv.DictReader(f))
        rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with atomic_outputs([self.path]) as (tmp,), open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(rows)
        for k, v in row.items():
            if k != "epoch":
                self.writer.add_scalar(k.replace("_", "/", 1), v, row["epoch"])
        self.writer.flush()
        if self.echo:
            dice = f"  dice {row['val_dice']:.3f}" if "val_dice" in row else ""
            tqdm.write(f"epoch {row['epoch']}: train {row['train_total']:.4f}  val {row['val_loss']:.4f}{dice}"
                       f"  ({row['train_slices_per_s']:.1f} slices/s)")

    def close(self) -> None:
        self.writer.close()
