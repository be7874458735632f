"""The report: built once by the pipeline, typed, versioned; its JSON keeps the contract's keys."""

from __future__ import annotations

import json
import time

import SimpleITK as sitk

from helpers import lesion_volume, stand_in
from MTSASegmenterLib.config import DEFAULT_TASKS
from MTSASegmenterLib.inference.pipeline import predict_volume
from MTSASegmenterLib.inference.report import REPORT_VERSION, Report
from MTSASegmenterLib.postprocess.heads import BinaryAnswer


def test_the_json_has_the_contract_keys_in_order_and_a_version():
    image, _ = lesion_volume(spacing=(0.8, 0.8, 2.5))  # tissue within the stand-in's 64 mm field
    report = predict_volume(image, stand_in(), device="cpu", case="p1", source="p1.nrrd").report
    assert isinstance(report, Report) and isinstance(report.heads["egfr"], BinaryAnswer)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert list(data) == ["report_version", "case", "input", "model", "gtv", "slices", "heads", "egfr", "device", "timing", "cautions"]
    assert data["report_version"] == REPORT_VERSION == 1 and data["case"] == "p1" and data["heads"] == ["egfr"]
    assert list(data["input"]) == ["path", "size", "spacing", "origin", "direction", "orientation"]
    assert data["input"]["size"] == list(image.GetSize()) and data["input"]["orientation"] == "LPS"
    assert list(data["model"]) == ["name", "version", "sha256", "synthetic_only"] and data["model"]["name"] == "brightness rule"
    assert list(data["gtv"]) == ["segment", "volume_ml", "lesions", "postprocessing"] and len(data["gtv"]["lesions"]) == 1
    assert data["gtv"]["volume_ml"] == round(sum(les["volume_ml"] for les in data["gtv"]["lesions"]), 4) > 0
    assert set(data["gtv"]["lesions"][0]) >= {"id", "volume_ml", "max_diameter_mm", "centroid_ras"}
    assert list(data["egfr"])[:6] == ["name", "kind", "probability", "call", "threshold", "slices_used"]
    assert {"classes", "slice_probabilities", "slice_gtv_area_mm2", "slice_position_mm"} <= set(data["egfr"])
    assert data["egfr"]["call"] in ("mutant", "wild-type") and data["egfr"]["slices_used"]
    assert list(data["slices"]) == ["count", "predicted", "spacing_mm", "note"] and data["device"] == "cpu"
    assert list(data["timing"]) == ["total_s", "inference_s"]
    assert data["cautions"] == []  # 2.5 mm slices


def test_thick_slices_carry_a_caution():
    """5-10 mm lesions in 6 mm slices are lost more often (model card): the report says so, naming the thickness."""
    image, _ = lesion_volume(size=(64, 72, 16), spacing=(0.8, 0.8, 6.0))
    cautions = predict_volume(image, stand_in(), device="cpu").report.to_dict()["cautions"]
    assert len(cautions) == 1 and cautions[0].startswith("6.0 mm slices: lesions under about 12 mm lie in one or two slices")


def test_signed_data_carries_a_caution_naming_the_level_read_as_no_signal():
    """A scan with negative values was not stored as the MR magnitudes the model learnt: the report says which level it read as none."""
    image, _ = lesion_volume(spacing=(0.8, 0.8, 2.5))
    signed = sitk.Cast(image, sitk.sitkFloat32) - 1000.0
    (caution,) = predict_volume(signed, stand_in(), device="cpu").report.to_dict()["cautions"]
    assert caution.startswith("not stored as MR magnitudes (signed, offset or z-scored data): -1000 read as no signal;")


def test_tissue_wider_than_the_field_carries_a_caution_naming_spans_and_spacing():
    """A header with the wrong spacing (1 mm for a 0.4 mm, 512 matrix) makes a head 500 mm wide, of which the model sees
    its central field only: the report says so instead of a silently partial GTV."""
    wide, _ = lesion_volume()  # 90 x 100 mm of tissue, the stand-in sees 64 mm
    (caution,) = predict_volume(wide, stand_in(), device="cpu").report.to_dict()["cautions"]
    assert caution.startswith("the tissue spans 88 x 98 mm in-plane, wider than the 64 mm the model sees")
    assert caution.endswith("the header's voxel spacing (1.5 x 1.5 x 2.5 mm) is wrong")


def test_total_time_counts_from_the_callers_start():
    """The command line starts the clock before reading the input; the report's total includes that."""
    report = predict_volume(lesion_volume()[0], stand_in(), device="cpu", started=time.perf_counter() - 100.0).report
    assert report.timing.total_s >= 100.0 > report.timing.inference_s


def test_a_model_without_segmentation_reports_no_postprocessing():
    heads_only = [t for t in DEFAULT_TASKS if t.is_head]
    data = predict_volume(lesion_volume()[0], stand_in(tasks=heads_only), device="cpu").report.to_dict()
    assert "postprocessing" not in data["gtv"] and data["heads"] == ["egfr"]
