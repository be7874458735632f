"""Any set of heads: the task list in the configuration and the checkpoint, per-head outputs,
patient-level answers, training from cases.csv columns, and metrics per head."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import read_rows, write_rows, write_tiny_cohort
from MTSASegmenterLib.config import (
    DEFAULT_TASKS,
    NetConfig,
    PreprocessConfig,
    TaskSpec,
    check_compatible,
    head_slices,
)
from MTSASegmenterLib.errors import CheckpointError
from MTSASegmenterLib.inference.pipeline import predict_volume
from MTSASegmenterLib.io.imageio import read_image
from MTSASegmenterLib.model.checkpoint import load_checkpoint, save_checkpoint
from MTSASegmenterLib.model.network import MTSANet
from MTSASegmenterLib.postprocess.heads import head_answer, slice_values

from training.data.cohort import read_cohort
from training.evaluation.evaluate import CaseSelection, EvalSettings, evaluate_model
from training.train.cli import main as train_main

GTV = DEFAULT_TASKS[0]
BREAST = [
    GTV,
    TaskSpec("ER", "binary", ("negative", "positive")),
    TaskSpec("Subtype", "multiclass", ("luminal A", "luminal B", "basal")),
    TaskSpec("Ki-67", "regression", column="ki67", unit="%", scale=100.0),
]


def test_task_spec_rules() -> None:
    assert [t.outputs for t in BREAST] == [0, 2, 3, 1]
    assert head_slices(BREAST) == {"ER": slice(0, 2), "Subtype": slice(2, 5), "Ki-67": slice(5, 6)}
    assert BREAST[3].encode("25") == pytest.approx(0.25) and BREAST[3].encode(" ") is None
    assert BREAST[2].encode("basal") == 2.0
    with pytest.raises(ValueError, match="not one of"):
        BREAST[1].encode("maybe")
    with pytest.raises(ValueError, match="exactly 2 classes"):
        TaskSpec("X", "binary", ("a", "b", "c"))
    with pytest.raises(ValueError, match="kind"):
        TaskSpec("X", "survival")
    assert TaskSpec.from_dict(BREAST[3].to_dict()) == BREAST[3]


def test_each_task_field_belongs_to_its_kinds() -> None:
    """One flat TaskSpec (checkpoints store all 14 fields), but a field set on the wrong kind is refused."""
    assert len(GTV.to_dict()) == 14 and TaskSpec.from_dict(GTV.to_dict()) == GTV
    with pytest.raises(ValueError, match=r"segmentation task has no classes \(for binary/multiclass\), threshold"):
        TaskSpec("GTV", "segmentation", classes=("a", "b"), threshold=0.3)
    with pytest.raises(ValueError, match="regression task has no min_peak"):
        TaskSpec("Ki-67", "regression", min_peak=0.5)
    with pytest.raises(ValueError, match="multiclass task has no threshold"):
        TaskSpec("Subtype", "multiclass", ("a", "b"), threshold=0.7)
    with pytest.raises(ValueError, match="needs its patient_model"):
        TaskSpec("EGFR", "binary", ("wild-type", "mutant"), aggregation="lesion_logistic")
    with pytest.raises(ValueError, match="aggregation must be one of"):
        TaskSpec("Subtype", "multiclass", ("a", "b"), aggregation="median")
    with pytest.raises(ValueError, match="task names must differ"):
        check_compatible(NetConfig(in_channels=3, num_classes=4), PreprocessConfig(), [GTV, BREAST[1], TaskSpec("er", "binary", ("a", "b"))])


def test_checkpoint_keeps_the_task_list_and_refuses_a_mismatch(tmp_path: Path) -> None:
    net_cfg = NetConfig(in_channels=3, base_width=4, input_size=64, num_classes=6)
    prep = PreprocessConfig(spacing_mm=3.0, input_size=64, min_slice_mm=3.0)
    path = save_checkpoint(tmp_path / "breast.pt", MTSANet(net_cfg), net_cfg, prep, BREAST)
    assert load_checkpoint(path).tasks == BREAST
    with pytest.raises(CheckpointError, match="classifier has 6 outputs but the heads .* need 2"):
        save_checkpoint(tmp_path / "bad.pt", MTSANet(net_cfg), net_cfg, prep, DEFAULT_TASKS)
    assert not (tmp_path / "bad.pt").exists()


def test_each_head_gets_its_own_softmax_and_answer() -> None:
    logits = {3: np.array([0.0, 2.0, 1.0, 1.0, 1.0, 0.3]), 4: np.array([1.0, 0.0, 0.0, 5.0, 0.0, 0.1]),
              9: np.array([0.0, 0.0, 0.0, 0.0, 9.0, 0.9])}
    values = slice_values(BREAST, logits)
    assert values["ER"][3] == pytest.approx([1 / (1 + np.e**2), np.e**2 / (1 + np.e**2)])
    assert values["Subtype"][3] == pytest.approx([1 / 3] * 3) and values["Ki-67"][4] == pytest.approx([10.0])
    areas = {3: 50.0, 4: 40.0, 9: 0.0}  # slice 9 shows no GTV: never used
    positions = {3: 6.0, 4: 8.0, 9: 18.0}
    subtype = head_answer(BREAST[2], values["Subtype"], areas, positions)
    assert subtype.slices_used == [3] and subtype.call == "luminal A" and subtype.text() == "Subtype luminal A (p=0.33)"
    ki67 = head_answer(BREAST[3], values["Ki-67"], areas, positions)
    assert ki67.slices_used == [3] and ki67.value == pytest.approx(30.0) and ki67.text() == "Ki-67 30.0 %"
    er = head_answer(BREAST[1], values["ER"], areas, positions)
    assert er.call == "positive" and er.text() == f"ER positive (p={np.e**2 / (1 + np.e**2):.2f})"
    entry = er.to_dict()
    assert entry["classes"] == ["negative", "positive"] and entry["kind"] == "binary" and "evidence" not in entry
    assert entry["slice_gtv_area_mm2"] == {"3": 50.0, "4": 40.0} and entry["slice_position_mm"] == {"3": 6.0, "4": 8.0, "9": 18.0}
    none = head_answer(BREAST[3], values["Ki-67"], {3: 0.0}, positions)
    assert none.value is None and none.slices_used == [] and none.text() == "Ki-67 indeterminate"
    assert head_answer(BREAST[2], values["Subtype"], {}, positions).to_dict()["probabilities"] is None


def test_a_binary_head_calls_positive_only_above_its_threshold() -> None:
    task = TaskSpec("Response", "binary", ("non-response", "response"), threshold=0.5)
    at = head_answer(task, {1: np.array([0.5, 0.5])}, {1: 10.0}, {1: 0.0})
    above = head_answer(task, {1: np.array([0.4, 0.6])}, {1: 10.0}, {1: 0.0})
    empty = head_answer(task, {1: np.array([0.4, 0.6])}, {1: 0.0}, {1: 0.0})
    assert (at.call, above.call, empty.call, empty.probability) == ("non-response", "response", "indeterminate", None)
    assert above.text() == "Response response (p=0.60)" and empty.text() == "Response indeterminate"


def _breast_cohort(folder: Path) -> Path:
    """The tiny cohort with the breast paper's kind of labels instead of EGFR; one training patient
    (c3 in the seed-1 split) has no Ki-67, so validation still scores it."""
    write_tiny_cohort(folder, n=6)
    rows = read_rows(folder / "cases.csv")
    subtypes = ["luminal A", "luminal B", "basal"]
    for i, row in enumerate(rows):
        del row["egfr"]
        row.update(er=("negative", "positive")[i % 2], subtype=subtypes[i % 3], ki67="" if i == 3 else str(10 + 7 * i))
    write_rows(folder / "cases.csv", rows)
    return folder


def test_train_predict_and_evaluate_a_model_with_several_heads(tmp_path: Path) -> None:
    cohort = _breast_cohort(tmp_path / "cohort")
    tasks_json = tmp_path / "tasks.json"
    tasks_json.write_text(json.dumps([t.to_dict() for t in BREAST]))
    torch.manual_seed(0)
    code = train_main(["--data", str(cohort), "--out", str(tmp_path / "run"), "--tasks", str(tasks_json), "--epochs", "1",
                       "--input-size", "64", "--width", "4", "--batch-size", "4", "--val-fraction", "0.25", "--test-fraction", "0.2",
                       "--workers", "0", "--no-augment", "--no-progress", "--device", "cpu", "--seed", "1"])
    assert code == 0
    model = load_checkpoint(tmp_path / "run" / "best.pt")
    assert model.tasks == BREAST and model.net_config.num_classes == 6
    metrics = model.info.metrics
    assert {"sigma_gtv", "sigma_er", "sigma_subtype", "sigma_ki-67"} <= set(metrics)
    assert {"val_er_accuracy", "val_subtype_accuracy", "val_ki-67_mae"} <= set(metrics)
    log = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert {"train_er", "train_subtype", "train_ki-67"} <= set(log[0])

    case = read_cohort(cohort)[0]
    report = predict_volume(read_image(case.image), model, device="cpu").report.to_dict()
    assert report["heads"] == ["er", "subtype", "ki-67"] and "egfr" not in report
    assert report["ki-67"]["kind"] == "regression" and report["subtype"]["classes"] == list(BREAST[2].classes)

    selection = CaseSelection(tuple(read_cohort(cohort)), "all", False, False)
    summary = evaluate_model(model, selection, tmp_path / "eval", EvalSettings(device="cpu", n_boot=20, synthetic=False,
                                                                                  progress_bar=False, pictures=False))
    heads = summary["heads"]
    assert set(heads) == {"er", "subtype", "ki-67"}
    assert heads["er"]["patients"] == 6 and "accuracy" in heads["er"]
    assert heads["ki-67"]["patients"] == 5 and heads["ki-67"]["unit"] == "%"  # one Ki-67 cell is empty
    assert "mae" in heads["ki-67"] and "accuracy" in heads["subtype"]
    table = (tmp_path / "eval" / "heads.md").read_text().splitlines()
    assert table[2].startswith("Segmentation: Dice ") and table[4] == "| Head | Kind | Patients | Accuracy | AUC | MAE | Best possible |"
    assert table[6].startswith("| ER | binary | 6 |") and table[8].startswith("| Ki-67 | regression | 5 | — | — | ")
    assert table[8].endswith("% | — |")  # not a synthetic cohort: no best possible
