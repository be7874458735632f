"""``mtsa ablations``: two variants for one epoch on a tiny cohort give the tables, with "—" where a task is absent."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from helpers import write_tiny_cohort
from MTSASegmenterLib.cli import main as mtsa
from MTSASegmenterLib.errors import EXIT_ERROR

from training.evaluation.tables import CSV_COLUMNS, TABLE_COLUMNS
from training.train.ablations import (
    VARIANTS,
    build_parser,
    chosen_variants,
    variant_config,
)
from training.train.cli import config_from_args
from training.train.config import TrainConfig


def test_two_variants_write_their_tables(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cohort = write_tiny_cohort(tmp_path / "cohort", n=5)
    out = tmp_path / "ablations"
    argv = ["ablations", "--data", str(cohort), "--out", str(out), "--only", "mtsa,seg-only", "--epochs", "1",
            "--input-size", "64", "--width", "4", "--batch-size", "4", "--workers", "0", "--device", "cpu",
            "--n-boot", "20", "--no-progress"]
    assert mtsa(argv) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "table3.md"), str(out / "table4.md"), str(out / "table5.md")]
    assert (out / "slice_cache").is_dir() and not (out / "seg-only" / "slice_cache").exists()  # one shared cache

    table3 = (out / "table3.md").read_text().splitlines()
    assert table3[2] == "| " + " | ".join(TABLE_COLUMNS) + " |"
    seg_only = next(line for line in table3 if line.startswith("| Segmentation only |")).split(" | ")
    egfr_cells = [seg_only[TABLE_COLUMNS.index(c)] for c in ("EGFR Accuracy", "EGFR F1", "Best possible accuracy")]
    assert egfr_cells[:2] == ["—", "—"] and egfr_cells[2] != "—"  # the cohort's limit is shown on every row
    assert "not clinical validation" in (out / "table3.md").read_text()
    for stem, labels in (("table3", ["Segmentation only", "MTSA-Net"]), ("table4", ["γ = 2, α = 0.8 (MTSA-Net)"]),
                         ("table5", ["Uncertainty weights (MTSA-Net)"])):
        with open(out / f"{stem}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert tuple(rows[0]) == CSV_COLUMNS and [r["Model"] for r in rows] == labels, stem
    assert (out / "mtsa" / "eval" / "metrics.json").is_file() and (out / "seg-only" / "best.pt").is_file()

    # a second run finds both variants finished: nothing is retrained, the tables are rewritten
    stamp = (out / "mtsa" / "best.pt").stat().st_mtime_ns
    assert mtsa(argv) == 0
    assert (out / "mtsa" / "best.pt").stat().st_mtime_ns == stamp


def test_variants_and_bad_names(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = TrainConfig(data=tmp_path, out=tmp_path / "out")
    configs = {v.key: variant_config(base, v) for v in VARIANTS}
    assert not configs["seg-only"].net.classification and not configs["cls-only"].net.segmentation
    assert configs["equal"].loss.weighting == "equal" and configs["mtsa"].loss.weighting == "uncertainty"
    assert [configs[k].loss.focal_alpha for k in ("alpha-0.7", "mtsa", "alpha-0.9")] == [0.7, 0.8, 0.9]
    assert configs["mtsa"].out == tmp_path / "out" / "mtsa"
    assert [v.key for v in chosen_variants("equal,mtsa")] == ["mtsa", "equal"]
    assert mtsa(["ablations", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--only", "mtsa,unet"]) == EXIT_ERROR
    assert capsys.readouterr().err.strip() == (
        "error: --only unet: unknown variant(s); choose from mtsa, seg-only, cls-only, equal, alpha-0.7, alpha-0.9"
    )


def test_ablations_train_every_variant_as_mtsa_train_would(tmp_path: Path) -> None:
    """The run options are mtsa train's own: the demo model's recipe (thick slices, tumour-free
    share, breast preset) reaches every variant, and the cls-only variant drops the ROI weighting
    it cannot compute."""
    argv = ["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--min-slice-mm", "2.0", "--max-slice-mm", "3", "--free-share", "0.35",
            "--context", "2", "--preset", "breast-dce"]
    base = config_from_args(build_parser("mtsa ablations").parse_args(argv))
    assert (base.preprocess.min_slice_mm, base.preprocess.max_slice_mm, base.free_share, base.net.in_channels, base.resume) == (2.0, 3.0, 0.35, 5, True)
    assert base.net.roi_weighting and base.loss.weighting == "uncertainty" and base.loss.focal_alpha == 0.8
    configs = {v.key: variant_config(base, v) for v in VARIANTS}
    assert configs["mtsa"].net.roi_weighting and not configs["cls-only"].net.roi_weighting
    assert configs["cls-only"].preprocess == base.preprocess and configs["cls-only"].tasks == base.tasks
